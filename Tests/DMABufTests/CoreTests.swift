import DMABuf
import DMACore
import DMADevices
import DMAMapping
import Testing

@Suite("DMA-BUF core rules (drivers/dma-buf/dma-buf.c)")
struct CoreTests {
    @Test("A static importer never has peer2peer: the kernel takes it from the importer's ops")
    func staticNeverP2P() throws {
        let rig = try Rig()
        let gpu = try rig.gpuBuffer()
        let attachment = try gpu.buffer.attach(try rig.nearNIC())
        #expect(!attachment.isDynamic && !attachment.peerToPeer)
        let dynamic = try gpu.buffer.attach(try rig.nearNIC(), importer: RecordingImporter())
        #expect(dynamic.isDynamic && dynamic.peerToPeer)
        let shy = try gpu.buffer.attach(try rig.nearNIC(), importer: RecordingImporter(allowPeerToPeer: false))
        #expect(!shy.peerToPeer)
    }

    @Test("Mapping needs the reservation lock held (dma_resv_assert_held); the unlocked call takes it")
    func lockRule() throws {
        let rig = try Rig()
        let gpu = try rig.gpuBuffer()
        let attachment = try gpu.buffer.attach(try rig.nearNIC(), importer: RecordingImporter())
        let unlocked = ReservationContext()
        let error = #expect(throws: DMAError.self) { try gpu.buffer.map(attachment, direction: .bidirectional, in: unlocked) }
        #expect(error?.code == .lockNotHeld)
        #expect(attachment.mappings.isEmpty)
        let mapping = try gpu.buffer.mapUnlocked(attachment, direction: .bidirectional)
        #expect(!gpu.buffer.resv.isHeld)
        #expect(throws: DMAError.self) { try gpu.buffer.unmap(attachment, mapping, direction: .bidirectional, in: unlocked) }
        try gpu.buffer.unmapUnlocked(attachment, mapping, direction: .bidirectional)
        try gpu.buffer.resv.lock(unlocked)
        #expect(gpu.buffer.resv.isHeld(by: unlocked))
        try gpu.buffer.resv.unlock(unlocked)
        let twice = #expect(throws: DMAError.self) { try gpu.buffer.resv.unlock(unlocked) }
        #expect(twice?.errno == .EPERM)
        #expect(throws: DMAError.self) { try gpu.buffer.invalidateMappings(in: unlocked) }
    }

    @Test("A static importer of a dynamic exporter pins on map and unpins on unmap (dma_buf_pin_on_map)")
    func pinOnMap() throws {
        let rig = try Rig()
        let gpu = try rig.gpuBuffer()
        let attachment = try gpu.buffer.attach(try rig.nearNIC())
        #expect(gpu.buffer.pinsOnMap(attachment))
        let mapping = try gpu.buffer.mapUnlocked(attachment, direction: .toDevice)
        #expect(gpu.isPinned && attachment.isPinned)
        // Pinned memory cannot move.
        let evict = #expect(throws: DMAError.self) { try gpu.buffer.resv.withLock { (context) throws(DMAError) in try gpu.evict(in: context) } }
        #expect(evict?.errno == .EBUSY)
        try gpu.buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
        #expect(!gpu.isPinned)
        let heap = try rig.machine.heapBuffer(name: "heap", size: 8192)
        #expect(!heap.buffer.pinsOnMap(try heap.buffer.attach(try rig.nearNIC())))  // a static exporter has no pin
    }

    @Test("Unmap must name a live mapping; detach with a live mapping is refused and changes nothing")
    func misuse() throws {
        let rig = try Rig()
        let heap = try rig.machine.heapBuffer(name: "heap", size: 8192)
        let attachment = try heap.buffer.attach(try rig.nearNIC())
        let mapping = try heap.buffer.mapUnlocked(attachment, direction: .toDevice)
        let busy = #expect(throws: DMAError.self) { try heap.buffer.detach(attachment) }
        #expect(busy?.errno == .EBUSY)
        #expect(heap.buffer.attachments.count == 1 && attachment.mappings.count == 1)
        try heap.buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
        let twice = #expect(throws: DMAError.self) { try heap.buffer.unmapUnlocked(attachment, mapping, direction: .toDevice) }
        #expect(twice?.errno == .EINVAL)
        try heap.buffer.detach(attachment)
        let gone = #expect(throws: DMAError.self) { try heap.buffer.mapUnlocked(attachment, direction: .toDevice) }
        #expect(gone?.errno == .ENODEV)
        #expect(throws: DMAError.self) { try heap.buffer.detach(attachment) }
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("Buffers are page multiples; DMA_NONE is refused for maps and CPU access")
    func shapes() throws {
        let rig = try Rig()
        let odd = #expect(throws: DMAError.self) { try rig.machine.heapBuffer(name: "odd", size: 1000) }
        #expect(odd?.errno == .EINVAL)
        #expect(throws: DMAError.self) { try rig.gpuBuffer(4097) }
        let heap = try rig.machine.heapBuffer(name: "heap", size: 4096)
        let attachment = try heap.buffer.attach(try rig.nearNIC())
        #expect(throws: DMAError.self) { try heap.buffer.mapUnlocked(attachment, direction: .none) }
        #expect(throws: DMAError.self) { try heap.buffer.beginCPUAccess(direction: .none) }
    }

    @Test("invalidate_mappings reaches every attachment that has it, and no static one")
    func invalidateReach() throws {
        let rig = try Rig()
        let gpu = try rig.gpuBuffer()
        let a = RecordingImporter()
        let b = RecordingImporter(allowPeerToPeer: false)
        let pinnedLike = RecordingImporter(canInvalidate: false)
        _ = try gpu.buffer.attach(try rig.nearNIC(), importer: a)
        _ = try gpu.buffer.attach(try rig.farNIC(), importer: b)
        _ = try gpu.buffer.attach(try rig.nearNIC(), importer: pinnedLike)
        _ = try gpu.buffer.attach(try rig.nearNIC())  // static
        let told = try gpu.buffer.resv.withLock { (context) throws(DMAError) in try gpu.evict(in: context) }
        #expect(told.count == 2)
        #expect(a.told == 1 && b.told == 1 && pinnedLike.told == 0)
        #expect(gpu.placement == .system)
        #expect(gpu.buffer.isRevocable(gpu.buffer.attachments[0]) && !gpu.buffer.isRevocable(gpu.buffer.attachments[2]))
    }

    @Test("A static importer waits for kernel fences before it may use a mapping; dynamic importers wait themselves")
    func fences() throws {
        let rig = try Rig()
        let gpu = try rig.gpuBuffer()
        let fence = DMAFence(context: 1, seqno: 1)
        try gpu.buffer.resv.withLock { (context) throws(DMAError) in try gpu.buffer.resv.addFence(fence, usage: .kernel, by: context) }
        #expect(!gpu.buffer.resv.isIdle(for: .read))
        let staticAttachment = try gpu.buffer.attach(try rig.nearNIC())
        let blocked = #expect(throws: DMAError.self) { try gpu.buffer.mapUnlocked(staticAttachment, direction: .toDevice) }
        #expect(blocked?.errno == .ETIMEDOUT && blocked?.code == .timedOut)
        #expect(staticAttachment.mappings.isEmpty && !gpu.isPinned)
        let dynamic = try gpu.buffer.attach(try rig.nearNIC(), importer: RecordingImporter())
        let mapping = try gpu.buffer.mapUnlocked(dynamic, direction: .toDevice)
        fence.signal()
        #expect(gpu.buffer.resv.isIdle(for: .bookkeep))
        let now = try gpu.buffer.mapUnlocked(staticAttachment, direction: .toDevice)
        try gpu.buffer.unmapUnlocked(staticAttachment, now, direction: .toDevice)
        try gpu.buffer.unmapUnlocked(dynamic, mapping, direction: .toDevice)
        #expect(throws: DMAError.self) { try gpu.buffer.resv.addFence(DMAFence(context: 1, seqno: 2), usage: .write, by: ReservationContext()) }
    }
}

@Suite("Release: the last dma_buf_put")
struct ReleaseTests {
    @Test("Release frees the memory and breaks the exporter ↔ buffer cycle; it is refused while attached")
    func release() throws {
        let rig = try Rig()
        weak var weakBuffer: DMABuffer?
        weak var weakExporter: GPUVRAMExporter?
        let freeBefore = try rig.machine.vramHeap("0000:03:00.0").freeBytes
        do {
            let gpu = try rig.gpuBuffer()
            weakBuffer = gpu.buffer
            weakExporter = gpu
            let attachment = try gpu.buffer.attach(try rig.nearNIC())
            let busy = #expect(throws: DMAError.self) { try gpu.buffer.release() }
            #expect(busy?.errno == .EBUSY)
            try gpu.buffer.detach(attachment)
            let buffer = gpu.buffer
            try buffer.release()
            try buffer.release()  // a second call does nothing
            #expect(buffer.isReleased)
            #expect(try rig.machine.vramHeap("0000:03:00.0").freeBytes == freeBefore)
        }
        _ = rig.machine.finish()
        #expect(weakBuffer == nil)
        #expect(weakExporter == nil)
    }
}

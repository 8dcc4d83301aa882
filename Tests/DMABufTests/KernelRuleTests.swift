import DMABuf
import DMACore
import DMADevices
import DMAMapping
import DMAScenario
import Testing

/// One test per version-dependent rule (``KernelRule``), each naming the kernel file and the
/// release it follows; the same calls under the two kernels most users meet, Debian's 6.12
/// (CONFIG_DMABUF_MOVE_NOTIFY off) and 7.1.
@Suite("Rules per kernel version")
struct KernelRuleTests {
    static let debian612 = KernelRules(KernelVersion(6, 12))
    static let linux71 = KernelRules(KernelVersion(7, 1))

    @Test("drivers/dma-buf/dma-buf.c, 6.12 without CONFIG_DMABUF_MOVE_NOTIFY: a dynamic importer's map pins the buffer; 7.1: it does not")
    func mapPinsWithoutMoveNotify() throws {
        for (rules, pins) in [(Self.debian612, true), (KernelRules(KernelVersion(6, 12), moveNotify: true), false), (Self.linux71, false)] {
            let rig = try Rig(rules: rules)
            let gpu = try rig.gpuBuffer()
            #expect(gpu.buffer.rules == rules)
            let attachment = try gpu.buffer.attach(try rig.nearNIC(), importer: RecordingImporter())
            #expect(gpu.buffer.pinsOnMap(attachment) == pins, "\(rules)")
            let mapping = try gpu.buffer.mapUnlocked(attachment, direction: .toDevice)
            #expect(gpu.isPinned == pins && attachment.isPinned == pins, "\(rules)")
            try gpu.buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
            #expect(!gpu.isPinned)
            try gpu.buffer.detach(attachment)
            #expect(rig.machine.finish().isEmpty)
        }
    }

    @Test("drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c (amdgpu_dma_buf_pin), 6.12 without MOVE_NOTIFY: pinned in GTT even when every importer has P2P; 7.1: pinned in VRAM")
    func amdgpuPinsInGTTOnly() throws {
        let old = try Rig(rules: Self.debian612)
        let oldGPU = try old.gpuBuffer()
        let oldMR = try RDMANIC(name: "nic", device: try old.nearNIC()).registerMR(oldGPU.buffer, pinned: true)
        #expect(oldMR.mapping?.placement == .system && oldMR.mapping?.peerToPeer == false && oldGPU.placement == .system)
        #expect(oldMR.mapping?.migratedBytes == 64 << 10, "the pin's move is what the map cost")
        try oldMR.deregister()

        let new = try Rig(rules: Self.linux71)
        let newGPU = try new.gpuBuffer()
        let newMR = try RDMANIC(name: "nic", device: try new.nearNIC()).registerMR(newGPU.buffer, pinned: true)
        #expect(newMR.mapping?.placement == .vram && newMR.mapping?.peerToPeer == true && newMR.mapping?.migratedBytes == 0)
        try newMR.deregister()
    }

    @Test("6.12 without MOVE_NOTIFY: a dynamic MR under the GPU's switch gets system pages (2 MiB migrated), never VRAM P2P; 7.1: bus addresses")
    func dynamicMRUnderOneSwitch() throws {
        for (rules, placement) in [(Self.debian612, DMABufPlacement.system), (Self.linux71, .vram)] {
            let rig = try Rig(rules: rules)
            let gpu = try rig.gpuBuffer(2 << 20)
            let mr = try RDMANIC(name: "nic", device: try rig.nearNIC(ops: "iommu")).registerMR(gpu.buffer)
            try mr.write([9], offset: 0)
            #expect(mr.mapping?.placement == placement, "\(rules)")
            #expect(mr.mapping?.peerToPeer == (placement == .vram))
            #expect(mr.mapping?.migratedBytes == (placement == .vram ? 0 : 2 << 20))
            // Pinned on 6.12: the GPU cannot evict it; on 7.1 it can, and the MR is told.
            let toldBefore = mr.invalidations
            let evicted = Result { () throws(DMAError) in try gpu.buffer.resv.withLock { (c) throws(DMAError) in try gpu.evict(in: c) } }
            if placement == .system {
                #expect(gpu.isPinned && mr.invalidations == toldBefore)
                #expect(throws: DMAError.self) { try evicted.get() }
            } else {
                #expect((try? evicted.get())?.count == 1 && mr.invalidations == toldBefore + 1)
            }
            try mr.deregister()
        }
    }

    @Test("drivers/dma-buf/dma-buf.c before 6.15: a static importer of a GPU buffer is pinned and mapped bidirectionally at attach, every map returns that table, unmap leaves it, detach unmaps and unpins; 6.15: nothing at attach")
    func mappingCacheAtAttachBefore615() throws {
        let old = try Rig(rules: KernelRules(KernelVersion(6, 14), moveNotify: true))
        let gpu = try old.gpuBuffer()
        let attachment = try gpu.buffer.attach(try old.farNIC())
        let cached = try #require(attachment.cachedMapping)
        #expect(gpu.isPinned && gpu.placement == .system && cached.migratedBytes == 64 << 10, "the far NIC cannot reach VRAM: pinned in system memory at attach")
        #expect(attachment.mappings == [cached])
        let mapping = try gpu.buffer.mapUnlocked(attachment, direction: .toDevice)
        #expect(mapping == cached && attachment.mappings.count == 1)
        try gpu.buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
        #expect(attachment.mappings == [cached] && gpu.isPinned, "unmap leaves the cached table")
        try gpu.buffer.detach(attachment)
        #expect(!gpu.isPinned && attachment.cachedMapping == nil)
        #expect(old.machine.finish().isEmpty, "detach unmapped it: no leak")

        let new = try Rig(rules: KernelRules(KernelVersion(6, 15), moveNotify: true))
        let newGPU = try new.gpuBuffer()
        let plain = try newGPU.buffer.attach(try new.farNIC())
        #expect(plain.cachedMapping == nil && plain.mappings.isEmpty && !newGPU.isPinned && newGPU.placement == .vram)
        try newGPU.buffer.detach(plain)
    }

    @Test("kernel/dma/mapping.c: P2P through the host bridge is mapped with dma_map_resource before 6.18 and dma_map_phys(DMA_ATTR_MMIO) from 6.18")
    func mmioMapCall() throws {
        for (rules, call) in [(KernelRules(KernelVersion(6, 17), moveNotify: true), "dma_map_resource"), (KernelRules(KernelVersion(6, 18), moveNotify: true), "dma_map_phys(DMA_ATTR_MMIO)")] {
            let rig = try Rig(rules: rules)
            let gpu = try rig.gpuBuffer()
            let attachment = try gpu.buffer.attach(try rig.bridgeNIC(), importer: RecordingImporter())
            let mapping = try gpu.buffer.mapUnlocked(attachment, direction: .toDevice)
            #expect(mapping.mapType == .throughHostBridge && mapping.mmioMapCall == call, "\(rules)")
            try gpu.buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
            let near = try gpu.buffer.attach(try rig.nearNIC(), importer: RecordingImporter())
            let bus = try gpu.buffer.mapUnlocked(near, direction: .toDevice)
            // amdgpu_vram_mgr_alloc_sgt maps VRAM through the DMA API whatever the route.
            #expect(bus.mapType == .busAddress && bus.mmioMapCall == call, "\(rules)")
            try gpu.buffer.unmapUnlocked(near, bus, direction: .toDevice)
        }
    }

    @Test("drivers/vfio/pci/vfio_pci_dmabuf.c came in 6.19: before, VFIO_DEVICE_FEATURE_DMA_BUF is ENOTTY with an error naming the versions")
    func vfioExportFrom619() throws {
        let range = [VFIOBARExporter.Range(offset: 0, length: 4096)]
        let old = try Rig(rules: KernelRules(KernelVersion(6, 18)))
        let error = #expect(throws: DMAError.self) { try old.machine.vfioBuffer(name: "bar", device: "0000:09:00.0", bar: 2, ranges: range) }
        #expect(error?.code == .notInKernelVersion && error?.errno == .ENOTTY)
        #expect(error?.message.contains("6.18") == true && error?.message.contains("6.19") == true, "\(String(describing: error))")
        let new = try Rig(rules: KernelRules(KernelVersion(6, 19)))
        #expect(try new.machine.vfioBuffer(name: "bar", device: "0000:09:00.0", bar: 2, ranges: range).buffer.size == 4096)
    }

    @Test("drivers/dma-buf/dma-buf.c, 7.1 (dma_buf_attach_revocable): VFIO refuses an importer that cannot be revoked at attach; 6.19 and 7.0 let it attach and refuse its pin (vfio_pci_dma_buf_pin)")
    func revocableAttachmentsFrom71() throws {
        let range = [VFIOBARExporter.Range(offset: 0, length: 4096)]
        let new = try Rig(rules: Self.linux71)
        let vfio71 = try new.machine.vfioBuffer(name: "bar", device: "0000:09:00.0", bar: 2, ranges: range)
        let refused = #expect(throws: DMAError.self) {
            try vfio71.buffer.attach(try new.nearNIC(), importer: RecordingImporter(canInvalidate: false))
        }
        #expect(refused?.errno == .EOPNOTSUPP)
        let pinnedMR = #expect(throws: DMAError.self) { try RDMANIC(name: "nic", device: try new.nearNIC()).registerMR(vfio71.buffer, pinned: true) }
        #expect(pinnedMR?.errno == .EOPNOTSUPP && pinnedMR?.message.contains("dma_buf_attach_revocable") == true)
        // 7.0 (with CONFIG_DMABUF_MOVE_NOTIFY, so that maps work at all): VFIO checks peer2peer
        // only at attach; its pin refuses the pinned MR, which is torn down.
        let old = try Rig(rules: KernelRules(KernelVersion(7, 0), moveNotify: true))
        let vfio70 = try old.machine.vfioBuffer(name: "bar", device: "0000:09:00.0", bar: 2, ranges: range)
        let atPin = #expect(throws: DMAError.self) { try RDMANIC(name: "nic", device: try old.nearNIC()).registerMR(vfio70.buffer, pinned: true) }
        #expect(atPin?.errno == .EOPNOTSUPP && atPin?.message.contains("vfio_pci_dma_buf_pin") == true, "\(String(describing: atPin))")
        #expect(vfio70.buffer.attachments.isEmpty)
        // The pinned MR's move_notify before 7.1 only warns (ib_umem_dmabuf_unsupported_move_notify):
        // an exporter that moves pinned memory anyway is told, and the MR keeps its mapping.
        let gpu = try old.gpuBuffer()
        let mr = try RDMANIC(name: "nic", device: try old.nearNIC()).registerMR(gpu.buffer, pinned: true)
        let told = try gpu.buffer.resv.withLock { (c) throws(DMAError) in try gpu.buffer.invalidateMappings(in: c) }
        #expect(told.count == 1 && mr.unsupportedInvalidations == 1 && mr.invalidations == 0 && mr.mapping != nil, "the stub warns and keeps the mapping")
        try mr.deregister()
    }

    @Test("drivers/dma-buf/dma-buf.c before 7.1: a dynamic importer without move_notify is EINVAL at attach (WARN_ON in dma_buf_dynamic_attach); from 7.1 the callback is optional")
    func moveNotifyRequiredBefore71() throws {
        let old = try Rig(rules: KernelRules(KernelVersion(6, 12)))
        let gpu = try old.gpuBuffer()
        let error = #expect(throws: DMAError.self) { try gpu.buffer.attach(try old.nearNIC(), importer: RecordingImporter(canInvalidate: false)) }
        #expect(error?.errno == .EINVAL && error?.message.contains("move_notify") == true)
        #expect(gpu.buffer.attachments.isEmpty)
        let new = try Rig(rules: Self.linux71)
        let newGPU = try new.gpuBuffer()
        let attachment = try newGPU.buffer.attach(try new.nearNIC(), importer: RecordingImporter(canInvalidate: false))
        try newGPU.buffer.detach(attachment)
    }
}

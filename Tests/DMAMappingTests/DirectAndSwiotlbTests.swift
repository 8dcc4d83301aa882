import DMACore
import DMAMapping
import Testing

@Suite("Direct mapping (kernel/dma/direct.c)")
struct DirectTests {
    @Test("DMA address = physical + the device's bus offset; the device reaches the page through it")
    func offset() throws {
        let machine = try Machine()
        let device = try machine.device(DirectDMAOps(), dmaOffset: 0x8000_0000_0000)
        let page = try machine.discontiguousPages(1)[0]
        let address = try device.mapPhys(page, direction: .fromDevice)
        #expect(address.rawValue == page.start.rawValue + 0x8000_0000_0000)
        device.debug.mappingError(address, device: device)
        try device.dmaWrite([1, 2, 3, 4], at: address)
        #expect(try machine.memory.read(page.start, count: 4) == [1, 2, 3, 4])
        try device.unmapPhys(address, length: page.length, direction: .fromDevice)
        #expect(device.debug.reports.isEmpty)
    }

    @Test("Beyond the mask with no bounce pool: an error (ENOMEM from dma_mapping_error), nothing mapped")
    func beyondMaskNoPool() throws {
        let machine = try Machine()
        let device = try machine.device(DirectDMAOps(), mask: 32)
        let page = try machine.discontiguousPages(1)[0]
        let error = #expect(throws: DMAError.self) { try device.mapPhys(page, direction: .toDevice) }
        #expect(error?.code == .notDMACapable)
        #expect(error?.errno == .ENOMEM)
        #expect(device.debug.liveEntries.isEmpty)
    }

    @Test("Beyond the mask with a pool: bounced into a slot the device can reach")
    func beyondMaskBounces() throws {
        let machine = try Machine()
        let device = try machine.device(DirectDMAOps(), mask: 32, pool: true)
        let page = try machine.discontiguousPages(1)[0]
        try machine.memory.write(pattern(1, 4096), at: page.start)
        let address = try device.mapPhys(page, direction: .toDevice)
        #expect(address.rawValue <= 0xffff_ffff)
        #expect(device.swiotlb!.contains(PhysicalAddress(address.rawValue)))
        #expect(try device.dmaRead(at: address, count: 4096) == pattern(1, 4096))
        device.debug.mappingError(address, device: device)
        try device.unmapPhys(address, length: 4096, direction: .toDevice)
        #expect(device.swiotlb!.usage.used == 0)
    }

    @Test("DMA_ATTR_MMIO: physical address as is, never bounced; beyond the mask an error even with a pool (6.18)")
    func mmio() throws {
        let machine = try Machine()
        let bar = try machine.vramRange(offset: 0x1000, length: 0x1000)
        let wide = try machine.device(DirectDMAOps(), pool: true, dmaOffset: 0x1000_0000_0000)
        let address = try wide.mapPhys(bar, direction: .bidirectional, attributes: .mmio)
        #expect(address.rawValue == bar.start.rawValue)  // no phys_to_dma offset for MMIO
        wide.debug.mappingError(address, device: wide)
        try wide.unmapPhys(address, length: 0x1000, direction: .bidirectional, attributes: .mmio)
        let narrow = try machine.device(DirectDMAOps(), mask: 32, pool: true)
        let error = #expect(throws: DMAError.self) { try narrow.mapPhys(bar, direction: .toDevice, attributes: .mmio) }
        #expect(error?.code == .notDMACapable)
        #expect(narrow.swiotlb!.usage.used == 0)
        let forced = try machine.device(DirectDMAOps.swiotlb, pool: true)
        #expect(throws: DMAError.self) { try forced.mapPhys(bar, direction: .toDevice, attributes: .mmio) }
    }

    @Test("A failing segment unwinds the ones before it; the list fails with EIO (dma_direct_map_sg)")
    func allOrNothing() throws {
        let machine = try Machine()
        let device = try machine.device(DirectDMAOps(), mask: 32)
        let low = try machine.discontiguousPages(3, high: false)
        let high = try machine.discontiguousPages(1)
        let error = #expect(throws: DMAError.self) { try device.mapScatterList(try ScatterList.host(low + high), direction: .toDevice) }
        #expect(error?.errno == .EIO)
        #expect(error?.message.contains("segment 3 of 4") == true)
        #expect(device.debug.liveEntries.isEmpty)
    }

    @Test("Through the host bridge, P2P segments take the page path: physical address + bus offset (0 here)")
    func throughHostBridge() throws {
        let machine = try Machine()
        let device = try machine.device(DirectDMAOps(), topology: .throughHostBridge)
        let list = try ScatterList.peerToPeer([try machine.vramRange(offset: 0, length: 0x2000)], provider: machine.vram)
        let table = try device.mapScatterList(list, direction: .fromDevice)
        #expect(table.p2pMapType == .throughHostBridge)
        #expect(table.segments == [DMASegment(address: DMAAddress(machine.vram.cpuRange.start.rawValue), length: 0x2000)])
        try device.dmaWrite([9, 9], at: table.segments[0].address)
        #expect(try machine.memory.read(machine.vram.cpuRange.start, count: 2) == [9, 9])
        try device.unmapScatterList(table, direction: .fromDevice)
        #expect(device.debug.reports.isEmpty)
    }
}

@Suite("swiotlb bounce buffers (kernel/dma/swiotlb.c)")
struct SwiotlbTests {
    static let directions: [DMADirection] = [.toDevice, .fromDevice, .bidirectional]

    /// A device that bounces everything, a 4 KiB buffer of RAM filled with `pattern(1)`, mapped.
    static func mapped(_ direction: DMADirection, attributes: DMAAttributes = []) throws -> (Machine, DMADevice, PhysicalRange, DMAAddress) {
        let machine = try Machine()
        let device = try machine.device(DirectDMAOps.swiotlb, pool: true)
        let buffer = try machine.memory.allocate(length: 4096)
        try machine.memory.write(pattern(1, 4096), at: buffer.start)
        let address = try device.mapPhys(buffer, direction: direction, attributes: attributes)
        device.debug.mappingError(address, device: device)
        return (machine, device, buffer, address)
    }

    @Test("Map always copies original → bounce, whatever the direction", arguments: directions)
    func mapCopiesIn(direction: DMADirection) throws {
        let (machine, device, buffer, address) = try Self.mapped(direction)
        #expect(PhysicalAddress(address.rawValue) != buffer.start)
        #expect(try machine.memory.read(PhysicalAddress(address.rawValue), count: 4096) == pattern(1, 4096))
        try device.unmapPhys(address, length: 4096, direction: direction)
    }

    @Test("Sync for the CPU copies bounce → original only for FROM_DEVICE and BIDIRECTIONAL", arguments: directions)
    func syncForCPU(direction: DMADirection) throws {
        let (machine, device, buffer, address) = try Self.mapped(direction)
        try machine.memory.write(pattern(2, 4096), at: PhysicalAddress(address.rawValue))  // the device's data lands in the slot
        try device.syncForCPU(address, length: 4096, direction: direction)
        let expected = direction.deviceWrites ? pattern(2, 4096) : pattern(1, 4096)
        #expect(try machine.memory.read(buffer.start, count: 4096) == expected)
        try device.unmapPhys(address, length: 4096, direction: direction, attributes: .skipCPUSync)
    }

    @Test("Sync for the device copies original → bounce only for TO_DEVICE and BIDIRECTIONAL", arguments: directions)
    func syncForDevice(direction: DMADirection) throws {
        let (machine, device, buffer, address) = try Self.mapped(direction)
        try machine.memory.write(pattern(3, 4096), at: buffer.start)  // the CPU updates its buffer
        try device.syncForDevice(address, length: 4096, direction: direction)
        let expected = direction.deviceReads ? pattern(3, 4096) : pattern(1, 4096)
        #expect(try device.dmaRead(at: address, count: 4096) == expected)
        try device.unmapPhys(address, length: 4096, direction: direction, attributes: .skipCPUSync)
    }

    @Test("Unmap copies back for FROM_DEVICE and BIDIRECTIONAL, unless SKIP_CPU_SYNC", arguments: directions, [false, true])
    func unmapCopiesBack(direction: DMADirection, skip: Bool) throws {
        let (machine, device, buffer, address) = try Self.mapped(direction)
        try device.dmaWrite(pattern(4, 4096), at: address)
        try device.unmapPhys(address, length: 4096, direction: direction, attributes: skip ? .skipCPUSync : [])
        let expected = direction.deviceWrites && !skip ? pattern(4, 4096) : pattern(1, 4096)
        #expect(try machine.memory.read(buffer.start, count: 4096) == expected)
        #expect(device.swiotlb!.usage.used == 0)
        #expect(device.debug.reports.isEmpty)
    }

    @Test("A partial device write keeps the original bytes around it (FROM_DEVICE)")
    func partialWrite() throws {
        let (machine, device, buffer, address) = try Self.mapped(.fromDevice)
        try device.dmaWrite([0xEE, 0xEE], at: try address.advanced(by: 100))
        try device.unmapPhys(address, length: 4096, direction: .fromDevice)
        var expected = pattern(1, 4096)
        expected[100] = 0xEE
        expected[101] = 0xEE
        #expect(try machine.memory.read(buffer.start, count: 4096) == expected)
    }

    @Test("Slots are 2 KiB; a page or more is page-aligned; min_align_mask bits of the original are kept")
    func alignment() throws {
        let machine = try Machine()
        let pool = try SwiotlbPool(memory: machine.memory, slotCount: 256)
        let small = try PhysicalRange(start: try machine.memory.allocate(length: 4096).start.advanced(by: 0x123), length: 100)
        let a = try pool.map(small, minAlignMask: 0)
        #expect(a.rawValue % SwiotlbPool.slotSize == 0)
        let b = try pool.map(small, minAlignMask: 0)
        #expect(b.rawValue - a.rawValue == SwiotlbPool.slotSize)  // the cursor moves on one slot
        let page = try machine.memory.allocate(length: 8192)
        let c = try pool.map(page, minAlignMask: 0)
        #expect(c.rawValue % pageSize == 0)
        let nvme = try PhysicalRange(start: try page.start.advanced(by: 0xa10), length: 512)
        let d = try pool.map(nvme, minAlignMask: 0xfff)
        #expect(d.rawValue & 0xfff == 0xa10)
        #expect(pool.usage.used == 1 + 1 + 4 + 1)
    }

    @Test("At most 128 slots (256 KiB) a mapping; a full pool fails with nothing taken")
    func limits() throws {
        let machine = try Machine()
        let pool = try SwiotlbPool(memory: machine.memory, slotCount: 256)
        #expect(pool.maxMappingSize(minAlignMask: 0) == 256 << 10)
        #expect(pool.maxMappingSize(minAlignMask: 0xfff) == (256 << 10) - 4096)
        let big = try machine.memory.allocate(length: 512 << 10)
        #expect(try pool.map(try big.subrange(offset: 0, length: 256 << 10), minAlignMask: 0).rawValue % pageSize == 0)
        let tooBig = #expect(throws: DMAError.self) { try pool.map(try big.subrange(offset: 0, length: (256 << 10) + 1), minAlignMask: 0) }
        #expect(tooBig?.code == .resourceExhausted)
        _ = try pool.map(try big.subrange(offset: 0, length: 256 << 10), minAlignMask: 0)
        #expect(pool.usage.used == 256)
        let full = #expect(throws: DMAError.self) { try pool.map(try big.subrange(offset: 0, length: 1), minAlignMask: 0) }
        #expect(full?.message.contains("swiotlb buffer is full") == true)
        #expect(pool.liveMappings == 2)
    }

    @Test("A run never crosses a 128-slot segment, even when enough slots are free in total")
    func segments() throws {
        let machine = try Machine()
        let pool = try SwiotlbPool(memory: machine.memory, slotCount: 256)
        let buffer = try machine.memory.allocate(length: 512 << 10)
        // Four 96 KiB maps (48 slots each): two fill 96 slots of each segment, 32 stay free at the end of each.
        var live: [PhysicalAddress] = []
        for i in 0..<4 {
            live.append(try pool.map(try buffer.subrange(offset: UInt64(i) * (96 << 10), length: 96 << 10), minAlignMask: 0))
        }
        #expect(pool.usage.used == 192)
        #expect(live[2].rawValue - pool.start.rawValue == 128 * SwiotlbPool.slotSize)
        // 64 slots are free (32 at the end of each segment), but no 48-slot run exists.
        let error = #expect(throws: DMAError.self) { try pool.map(try buffer.subrange(offset: 0, length: 96 << 10), minAlignMask: 0) }
        #expect(error?.code == .resourceExhausted)
        #expect(try pool.map(try buffer.subrange(offset: 0, length: 64 << 10), minAlignMask: 0).rawValue != 0)
        for address in live { try pool.unmap(address, length: 96 << 10, direction: .toDevice, attributes: []) }
        #expect(throws: DMAError.self) { try pool.unmap(live[0], length: 96 << 10, direction: .toDevice, attributes: []) }
    }

    @Test("A scatter-list that exhausts the pool at any segment leaves nothing mapped", arguments: [1, 2, 3])
    func exhaustion(failingAt: Int) throws {
        let machine = try Machine()
        let device = try machine.device(DirectDMAOps.swiotlb, pool: true)
        let pool = device.swiotlb!
        let buffer = try machine.memory.allocate(length: 1 << 20)
        // Pre-fill the pool so that exactly `failingAt` 128 KiB segments still fit.
        var hogs: [PhysicalAddress] = []
        for i in 0..<(4 - failingAt) {
            hogs.append(try pool.map(try buffer.subrange(offset: UInt64(i) << 17, length: 128 << 10), minAlignMask: 0))
        }
        let ranges = try (0..<4).map { try buffer.subrange(offset: UInt64($0) << 17, length: 128 << 10) }
        let before = pool.usage.used
        let error = #expect(throws: DMAError.self) { try device.mapScatterList(try ScatterList.host(ranges), direction: .toDevice) }
        #expect(error?.errno == .EIO)
        #expect(error?.message.contains("segment \(failingAt) of 4") == true)
        #expect(pool.usage.used == before)
        #expect(device.debug.liveEntries.isEmpty)
    }
}

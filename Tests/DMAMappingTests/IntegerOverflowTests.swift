import DMACore
import DMAMapping
import Testing

/// Issue [O] class 5 in the mapping layer: sums and subtractions of addresses and lengths that a
/// caller's input can reach are checked, never trapped on.
@Suite("Integer overflow in the IOMMU ops: entries past max_seg_size, lengths near 2^64")
struct IntegerOverflowTests {
    @Test("scatter-list entries longer than max_seg_size (1 MiB ranges, a 64 KiB device) map unmerged, without a trap")
    func entryLongerThanMaxSegment() throws {
        let machine = try Machine()
        let domain = try IOMMUDomain()
        let device = try machine.device(IOMMUDMAOps(), iommu: domain, maxSegmentSize: 64 << 10)
        let block = try machine.memory.allocate(length: 3 << 20, below: nil)
        let ranges = try (0..<3).map { try block.subrange(offset: UInt64($0) << 20, length: 1 << 20) }
        let table = try device.mapScatterList(try ScatterList.host(ranges), direction: .bidirectional)
        #expect(table.segments.count == 3)
        #expect(table.segments.allSatisfy { $0.length == 1 << 20 })
        try device.dmaWrite([1, 2, 3], at: table.segments[2].address)
        #expect(try machine.memory.read(ranges[2].start, count: 3) == [1, 2, 3])
        try device.unmapScatterList(table, direction: .bidirectional)
        #expect(domain.liveAllocations == 0 && domain.mappedPages == 0)
    }

    @Test("an unmap or a two-step IOVA call with a length or offset near 2^64 is EOVERFLOW, not a trap")
    func lengthsNearTheTop() throws {
        let machine = try Machine()
        let domain = try IOMMUDomain()
        let ops = IOMMUDMAOps()
        let device = try machine.device(ops, iommu: domain)
        let page = try machine.discontiguousPages(1)[0]
        let address = try ops.mapPhys(page, direction: .toDevice, attributes: [], device: device)
        let error = #expect(throws: DMAError.self) {
            try ops.unmapPhys(address, length: UInt64.max - 10, direction: .toDevice, attributes: [], device: device)
        }
        #expect(error?.code == .addressOverflow && error?.errno == .EOVERFLOW)
        try ops.unmapPhys(address, length: page.length, direction: .toDevice, attributes: [], device: device)
        let state = try #require(try ops.iovaTryAlloc(page.start, size: 1 << 20, device: device))
        let sync = #expect(throws: DMAError.self) { try ops.iovaSync(state, offset: UInt64.max - 4, length: 16, device: device) }
        #expect(sync?.errno == .EOVERFLOW)
        let destroy = #expect(throws: DMAError.self) {
            try ops.iovaDestroy(state, mappedLength: UInt64.max, direction: .toDevice, attributes: [], device: device)
        }
        #expect(destroy?.errno == .EOVERFLOW)
        try ops.iovaDestroy(state, mappedLength: 0, direction: .toDevice, attributes: [], device: device)
        #expect(domain.liveAllocations == 0)
    }

    /// kernel/dma/debug.c `check_sync` matches by containment: no mapping holds 2^64 − 8 bytes, so
    /// the sync is "has not allocated" (it was "outside allocated range" before).
    @Test("a sync whose length is near 2^64 is reported by the debug layer, not trapped on while it is described")
    func syncLengthNearTheTop() throws {
        let machine = try Machine()
        let device = try machine.device(DirectDMAOps())
        let page = try machine.discontiguousPages(1)[0]
        let address = try device.mapPhys(page, direction: .fromDevice)
        try? device.syncForCPU(try address.advanced(by: 16), length: UInt64.max - 8, direction: .fromDevice)
        #expect(device.debug.reports.contains { $0.kind == .syncNotMapped })
        try device.unmapPhys(address, length: page.length, direction: .fromDevice)
    }
}

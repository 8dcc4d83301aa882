import DMACore
import DMAMapping
import Testing

/// Direct ops map a bus-address P2P list in one pass (Benchmarks/ row 1): every segment is the
/// provider's bus address of its range, in order, marked as a bus address, and unmap touches
/// nothing.
@Suite("Direct ops: the bus-address P2P fast path")
struct DirectBusAddressFastPathTests {
    @Test("segments are phys + bus offset, one per range, marked bus-address")
    func segments() throws {
        let provider = try P2PProvider(
            owner: try PCIAddress(parsing: "0000:03:00.0"), barIndex: 0, cpuRange: PhysicalRange(start: 0x4000_0000_0000, length: 1 << 24),
            busAddress: 0x6000_0000_0000)
        let memory = SimulatedMemory()
        try memory.addBAR(name: "bar", provider: provider)
        let device = try DMADevice(
            name: "0000:04:00.0", memory: memory, ops: DirectDMAOps(), topology: UniformP2PTopology(.busAddress))
        // Unordered, unequal, unaligned ranges.
        let ranges = try [(0x3000, 0x1000), (0x10, 0x20), (0x80_0001, 0x7fff), (0xff_f000, 0x1000)].map {
            try PhysicalRange(start: PhysicalAddress(0x4000_0000_0000 + $0.0), length: UInt64($0.1))
        }
        let list = try ScatterList.peerToPeer(ranges, provider: provider)
        let table = try device.mapScatterList(list, direction: .bidirectional)
        #expect(table.p2pMapType == .busAddress)
        #expect(table.segments == ranges.map { DMASegment(address: provider.busAddress(of: $0.start), length: $0.length, isBusAddress: true) })
        #expect(table.list == list)
        try device.unmapScatterList(table, direction: .bidirectional)
        #expect(memory.materialisedPages == 0)
    }
}

import DMACore
import DMAMapping

/// A small machine for the tests: 16 MiB of RAM below 4 GiB, 16 MiB above, and a 16 MiB GPU BAR.
struct Machine {
    let memory = SimulatedMemory()
    let vram: P2PProvider

    init() throws {
        try memory.addRAM(name: "low", start: 0x1000_0000, length: 16 << 20)
        try memory.addRAM(name: "high", start: 0x2_0000_0000, length: 16 << 20)
        vram = try P2PProvider(
            owner: try PCIAddress(parsing: "0000:03:00.0"), barIndex: 0, cpuRange: try PhysicalRange(start: 0x40_0000_0000, length: 16 << 20),
            busAddress: 0x40_0000_0000)
        try memory.addBAR(name: "vram", provider: vram)
    }

    /// A device with the given ops, wrapped in the debug layer.
    func device(
        _ ops: any DMAOps, name: String = "0000:04:00.0", mask: Int = 64, pool: Bool = false, iommu: IOMMUDomain? = nil,
        topology: P2PMapType = .busAddress, debug: DMADebug = DMADebug(), minAlignMask: UInt64 = 0,
        maxSegmentSize: UInt64 = 65536, dmaOffset: UInt64 = 0, segmentBoundaryMask: UInt64 = 0xffff_ffff,
        kernel: KernelRules = .newest
    ) throws -> DMADevice {
        try DMADevice(
            name: name, memory: memory, ops: DMADebugOps(wrapping: ops, debug: debug), mask: try DMAMask(bits: mask),
            dmaOffset: dmaOffset, minAlignMask: minAlignMask, maxSegmentSize: maxSegmentSize,
            segmentBoundaryMask: segmentBoundaryMask, iommu: iommu,
            swiotlb: pool ? try SwiotlbPool(memory: memory, slotCount: 256) : nil,
            topology: UniformP2PTopology(topology), kernel: kernel)
    }

    /// `count` pages of RAM, every other page of a block, so no two are adjacent.
    func discontiguousPages(_ count: Int, high: Bool = true) throws -> [PhysicalRange] {
        let block = try memory.allocate(length: UInt64(2 * count) * pageSize, below: high ? nil : 0xffff_ffff)
        return try (0..<count).map { i in
            try PhysicalRange(start: try block.start.advanced(by: UInt64(2 * i) * pageSize), length: pageSize)
        }
    }

    func vramRange(offset: UInt64, length: UInt64) throws -> PhysicalRange {
        try vram.cpuRange.subrange(offset: offset, length: length)
    }
}

func pattern(_ seed: UInt8, _ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: Int(seed) &* 37 &+ $0 &* 11 &+ $0 >> 8) }
}

/// The debug state behind a device built by `Machine.device`.
extension DMADevice {
    var debug: DMADebug { (ops as! DMADebugOps).debug }
}

/// A third party's ops, to show they plug in like the built-in ones: the seven members, the
/// scatter-list map and unmap from the protocol's defaults.
struct IdentityTestOps: DMAOps {
    var name: String { "identity-test" }
    var p2pSupported: Bool { false }
    func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) -> DMAAddress {
        DMAAddress(range.start.rawValue)
    }
    func unmapPhys(_ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) {}
    func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}
    func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}
    func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress {
        PhysicalAddress(address.rawValue)
    }
}

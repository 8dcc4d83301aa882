import Benchmark
import CBaselines
import DMACore
import DMAMapping

/// 1 GiB as 262,144 segments of 4 KiB.
let segmentCount = 262_144
let segmentSize: UInt64 = 4096

/// A 1 GiB BAR at 0x4000_0000_0000 whose bus address differs from its CPU address, so the
/// bus-address arithmetic is not a no-op.
func bigProvider() -> P2PProvider {
    try! P2PProvider(
        owner: PCIAddress(parsing: "0000:03:00.0"), barIndex: 0, cpuRange: PhysicalRange(start: 0x4000_0000_0000, length: 1 << 30),
        busAddress: 0x6000_0000_0000)
}

func ranges(from start: UInt64) -> [PhysicalRange] {
    (0..<segmentCount).map { try! PhysicalRange(start: PhysicalAddress(start + UInt64($0) * segmentSize), length: segmentSize) }
}

func mappingBenchmarks() {
    // Row 1 baseline: the same arithmetic in C, into a preallocated array.
    let provider = bigProvider()
    let p2pRanges = ranges(from: provider.cpuRange.start.rawValue)
    let cIn = UnsafeMutableBufferPointer<cb_range>.allocate(capacity: segmentCount)
    let cOut = UnsafeMutableBufferPointer<cb_segment>.allocate(capacity: segmentCount)
    for (i, r) in p2pRanges.enumerated() { cIn[i] = cb_range(start: r.start.rawValue, length: r.length) }
    nonisolated(unsafe) let cInput = cIn
    nonisolated(unsafe) let cOutput = cOut
    Benchmark("C map+unmap 262144 segments", configuration: configuration()) { benchmark in
        for _ in benchmark.scaledIterations {
            let n = cb_map_bus_address(cInput.baseAddress, segmentCount, provider.busOffset, cOutput.baseAddress)
            blackHole(cb_unmap_walk(cOutput.baseAddress, n))
        }
    }

    // Row 1: a P2P scatter-list that a bus-address topology maps by bus address, direct ops.
    let memory = SimulatedMemory()
    try! memory.addBAR(name: "bar", provider: provider)
    try! memory.addRAM(name: "low", start: 0x1000_0000, length: 256 << 20)
    try! memory.addRAM(name: "high", start: 0x1_0000_0000, length: 2 << 30)
    let p2pList = try! ScatterList.peerToPeer(p2pRanges, provider: provider)
    let direct = try! DMADevice(
        name: "0000:04:00.0", memory: memory, ops: DirectDMAOps(), topology: UniformP2PTopology(.busAddress))
    Benchmark("Direct P2P map+unmap 262144 segments", configuration: configuration()) { benchmark in
        for _ in benchmark.scaledIterations {
            let table = try direct.mapScatterList(p2pList, direction: .bidirectional)
            try direct.unmapScatterList(table, direction: .bidirectional)
            blackHole(table)
        }
    }

    // The same list of host RAM through direct ops: each segment is checked against the memory
    // map and given phys + bus offset.
    let hostRanges = ranges(from: 0x1_0000_0000)
    let hostList = try! ScatterList.host(hostRanges)
    Benchmark("Direct host map+unmap 262144 segments", configuration: configuration()) { benchmark in
        for _ in benchmark.scaledIterations {
            let table = try direct.mapScatterList(hostList, direction: .bidirectional)
            try direct.unmapScatterList(table, direction: .bidirectional)
            blackHole(table)
        }
    }

    // Row 2: host RAM through IOMMU ops: one IOVA allocation, 262,144 page-table entries.
    let domain = try! IOMMUDomain()
    let iommu = try! DMADevice(name: "0000:06:00.0", memory: memory, ops: IOMMUDMAOps(), iommu: domain)
    Benchmark("IOMMU host map+unmap 262144 segments", configuration: configuration(maxIterations: 200)) { benchmark in
        for _ in benchmark.scaledIterations {
            let table = try iommu.mapScatterList(hostList, direction: .bidirectional)
            try iommu.unmapScatterList(table, direction: .bidirectional)
            blackHole(table)
        }
    }
}

/// Copies per iteration of the bandwidth rows: 1 MiB in all.
func copiesPerIteration(_ kib: Int) -> Int { 1024 / kib }

/// Row 3: bounce copies through a swiotlb pool against memcpy of the same size.
func swiotlbBenchmarks() {
    let memory = SimulatedMemory()
    try! memory.addRAM(name: "low", start: 0x1000_0000, length: 64 << 20)
    try! memory.addRAM(name: "high", start: 0x1_0000_0000, length: 64 << 20)
    let pool = try! SwiotlbPool(memory: memory, slotCount: 1024)
    let source = try! PhysicalRange(start: 0x1_0000_0000, length: 256 << 10)
    try! memory.fill(source.start, count: Int(source.length), with: 0xa5)
    let cSource = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 4096)
    let cDestination = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 4096)
    cSource.initializeMemory(as: UInt8.self, repeating: 0xa5)
    cDestination.initializeMemory(as: UInt8.self, repeating: 0)
    nonisolated(unsafe) let src = cSource
    nonisolated(unsafe) let dst = cDestination
    for kib in [4, 16, 64, 256] {
        let size = kib << 10
        // Bandwidth is measured over 1 MiB of back-to-back copies per iteration on both sides
        // (256 of 4 KiB … 4 of 256 KiB), so that neither side's time holds the clock reads of a
        // single short copy; report.py divides by `copiesPerIteration(kib)`.
        let copies = copiesPerIteration(kib)
        Benchmark("memcpy \(kib) KiB", configuration: configuration()) { benchmark in
            for _ in benchmark.scaledIterations {
                for _ in 0..<copies { cb_memcpy(dst.baseAddress, src.baseAddress, size) }
                blackHole(dst.baseAddress)
            }
        }
        let range = try! PhysicalRange(start: source.start, length: UInt64(size))
        // One bounce copy of a live mapping, original → bounce (swiotlb_sync_single_for_device).
        Benchmark("swiotlb sync \(kib) KiB", configuration: configuration()) { benchmark in
            let bounce = try pool.map(range, minAlignMask: 0)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                for _ in 0..<copies { try pool.syncForDevice(bounce, length: UInt64(size), direction: .toDevice) }
            }
            benchmark.stopMeasurement()
            try pool.unmap(bounce, length: UInt64(size), direction: .toDevice, attributes: .skipCPUSync)
        }
        // A whole bounce mapping: slots found, original copied in, slots freed.
        Benchmark("swiotlb map+unmap \(kib) KiB", configuration: configuration()) { benchmark in
            for _ in benchmark.scaledIterations {
                let bounce = try pool.map(range, minAlignMask: 0)
                try pool.unmap(bounce, length: UInt64(size), direction: .toDevice, attributes: .skipCPUSync)
            }
        }
    }
}

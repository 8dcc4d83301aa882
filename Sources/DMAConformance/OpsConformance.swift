import DMACore
import DMAMapping
import Dispatch
import Synchronization

/// The conformance suite for any `DMAOps`: named checks of the contract the DMA-mapping API
/// promises drivers (`include/linux/dma-map-ops.h`, `kernel/dma/mapping.c`, `kernel/dma/debug.c`),
/// each run with real bytes through the simulated DMA engine on a fresh machine.
///
/// The suite drives the ops as a driver does: through the device's DMA API (`DMADevice.mapPhys`,
/// `mapScatterList`, their unmaps and syncs), which checks the direction before any ops is
/// reached, so the ops under test are never handed `DMA_NONE` and need no check of their own.
///
/// It imports no test framework (the shape of swift-nio's `ByteToMessageDecoderVerifier`): call
/// ``run()`` from Swift Testing, XCTest, the `dmabuf conformance` command or a SwiftPM plugin and
/// read the report. The devices it builds have everything an ops may use: an IOMMU domain, a
/// swiotlb pool, a P2P topology that routes by bus address.
public struct DMAOpsConformance: Sendable {
    /// The subject's name in the report.
    public let name: String
    private let makeOps: @Sendable () -> any DMAOps

    /// A suite for ops made fresh by `makeOps` for every check.
    public init(name: String? = nil, makeOps: @escaping @Sendable () -> any DMAOps) {
        self.name = name ?? makeOps().name
        self.makeOps = makeOps
    }

    /// The checks, in the order they run.
    public static let checks: [(name: ConformanceCheck, rule: String)] = [
        (.roundTripSingle, "dma_map_phys: bytes reach the device and come back, in every valid direction"),
        (.roundTripScatterList, "dma_map_sgtable: the same for 8 discontiguous pages"),
        (.dmaMask, "dma_capable: no address the device uses lies beyond its mask"),
        (.directionNone, "valid_dma_direction: DMA_NONE is the kernel's BUG_ON, refused by the DMA API (kernel-bug) with nothing changed; a DMA_NONE dma_iova_link refused"),
        (.badRanges, "unbacked ranges and address overflow refused, nothing mapped"),
        (.p2pPolicy, "a P2P list only for p2pSupported ops (EREMOTEIO otherwise), bus addresses untouched"),
        (.syncSemantics, "sync for the CPU shows device writes; sync for the device shows CPU writes"),
        (.allOrNothing, "a scatter-list map that runs out of IOVA or bounce slots leaves nothing mapped"),
        (.unmapReleases, "after unmap no IOVA, page-table entry or bounce slot is left"),
        (.debugClean, "the DMA-API debug layer reports nothing for a correct driver"),
        (.concurrency, "map/unmap from many threads: no overlapping live mappings, none lost"),
    ]

    /// Runs every check.
    public func run() -> ConformanceReport {
        let checks: [(ConformanceCheck, () throws -> String)] = [
            (.roundTripSingle, roundTripSingle), (.roundTripScatterList, roundTripList), (.dmaMask, dmaMask),
            (.directionNone, directionNone), (.badRanges, badRanges), (.p2pPolicy, p2pPolicy),
            (.syncSemantics, syncSemantics), (.allOrNothing, allOrNothing), (.unmapReleases, unmapReleases),
            (.debugClean, debugClean), (.concurrency, concurrency),
        ]
        var results: [ConformanceResult] = []
        for (check, body) in checks {
            do {
                results.append(ConformanceResult(check: check, passed: true, evidence: try body()))
            } catch let violation as Violation {
                results.append(ConformanceResult(check: check, passed: false, evidence: violation.message))
            } catch {
                results.append(ConformanceResult(check: check, passed: false, evidence: "unexpected error: \(error)"))
            }
        }
        return ConformanceReport(subject: name, results: results)
    }

    // MARK: The machine

    struct Violation: Error { let message: String }
    private func fail(_ message: String) -> Violation { Violation(message: message) }

    struct Rig {
        let memory: SimulatedMemory
        let provider: P2PProvider
        let ops: any DMAOps
        let debug: DMADebug
    }

    private func rig() throws -> Rig {
        let memory = SimulatedMemory()
        try memory.addRAM(name: "RAM low", start: 0x1000_0000, length: 64 << 20)
        try memory.addRAM(name: "RAM high", start: 0x2_0000_0000, length: 64 << 20)
        let provider = try P2PProvider(
            owner: try PCIAddress(parsing: "0000:03:00.0"), barIndex: 0, cpuRange: try PhysicalRange(start: 0x40_0000_0000, length: 1 << 20),
            busAddress: 0x80_0000_0000)
        try memory.addBAR(name: "peer BAR", provider: provider)
        return Rig(memory: memory, provider: provider, ops: makeOps(), debug: DMADebug(configuration: .init(checkMappingErrors: false)))
    }

    private func device(
        _ rig: Rig, mask: Int = 64, aperture: UInt64 = 0xffff_ffff_ffff, slots: Int = 1024, debug: Bool = false, name: String = "0000:04:00.0"
    ) throws -> DMADevice {
        try DMADevice(
            name: name, memory: rig.memory, ops: debug ? DMADebugOps(wrapping: rig.ops, debug: rig.debug) : rig.ops,
            mask: try DMAMask(bits: mask), iommu: try IOMMUDomain(apertureEnd: aperture),
            swiotlb: try SwiotlbPool(memory: rig.memory, slotCount: slots), topology: UniformP2PTopology(.busAddress))
    }

    private func pages(_ rig: Rig, _ count: Int) throws -> [PhysicalRange] {
        let block = try rig.memory.allocate(length: UInt64(2 * count) * pageSize)
        return try (0..<count).map { try PhysicalRange(start: try block.start.advanced(by: UInt64(2 * $0) * pageSize), length: pageSize) }
    }

    private static func pattern(_ seed: UInt8, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: Int(seed) &* 41 &+ $0 &* 3 &+ ($0 >> 9)) }
    }

    /// Resource state that must come back to where it was.
    private func footprint(_ device: DMADevice) -> String {
        "IOVA allocations \(device.iommu?.liveAllocations ?? 0), IOMMU pages \(device.iommu?.mappedPages ?? 0), bounce slots \(device.swiotlb?.usage.used ?? 0)"
    }

    // MARK: Checks

    private func segmentsOf(_ device: DMADevice, _ address: DMAAddress, _ length: UInt64) -> [DMASegment] {
        [DMASegment(address: address, length: length)]
    }

    /// Moves bytes both ways through `segments` as `direction` allows.
    private func exercise(_ rig: Rig, _ device: DMADevice, ranges: [PhysicalRange], segments: [DMASegment], direction: DMADirection,
                          syncForDevice: () throws -> Void, syncForCPU: () throws -> Void) throws {
        let total = Int(ranges.reduce(0) { $0 + $1.length })
        if direction.deviceReads {
            let sent = Self.pattern(1, total)
            var at = 0
            for range in ranges {
                try rig.memory.write(Array(sent[at..<(at + Int(range.length))]), at: range.start)
                at += Int(range.length)
            }
            try syncForDevice()
            var seen: [UInt8] = []
            for segment in segments { seen += try device.dmaRead(at: segment.address, count: Int(segment.length)) }
            guard seen == sent else { throw fail("\(direction): the device read other bytes than the CPU wrote (after sync for the device)") }
        }
        if direction.deviceWrites {
            let received = Self.pattern(2, total)
            var at = 0
            for segment in segments {
                try device.dmaWrite(Array(received[at..<(at + Int(segment.length))]), at: segment.address)
                at += Int(segment.length)
            }
            try syncForCPU()
            var seen: [UInt8] = []
            for range in ranges { seen += try rig.memory.read(range.start, count: Int(range.length)) }
            guard seen == received else { throw fail("\(direction): the CPU does not see what the device wrote (after sync for the CPU)") }
        }
    }

    private func roundTripSingle() throws -> String {
        for direction in [DMADirection.toDevice, .fromDevice, .bidirectional] {
            let rig = try rig()
            let device = try device(rig)
            let page = try pages(rig, 1)[0]
            let address = try device.mapPhys(page, direction: direction)
            try exercise(
                rig, device, ranges: [page], segments: [DMASegment(address: address, length: pageSize)], direction: direction,
                syncForDevice: { try device.syncForDevice(address, length: pageSize, direction: direction) },
                syncForCPU: { try device.syncForCPU(address, length: pageSize, direction: direction) })
            try device.unmapPhys(address, length: pageSize, direction: direction)
        }
        return "4 KiB through map_phys in DMA_TO_DEVICE, DMA_FROM_DEVICE and DMA_BIDIRECTIONAL"
    }

    private func roundTripList() throws -> String {
        var shapes: [Int] = []
        for direction in [DMADirection.toDevice, .fromDevice, .bidirectional] {
            let rig = try rig()
            let device = try device(rig)
            let ranges = try pages(rig, 8)
            let table = try device.mapScatterList(try ScatterList.host(ranges), direction: direction)
            guard table.mappedLength == 8 * pageSize else { throw fail("\(direction): the segments cover \(table.mappedLength) bytes, not \(8 * pageSize)") }
            shapes.append(table.segments.count)
            try exercise(
                rig, device, ranges: ranges, segments: table.segments, direction: direction,
                syncForDevice: { try device.syncForDevice(table, direction: direction) },
                syncForCPU: { try device.syncForCPU(table, direction: direction) })
            try device.unmapScatterList(table, direction: direction)
        }
        return "8 discontiguous pages in every valid direction (\(shapes[0]) segment(s))"
    }

    private func dmaMask() throws -> String {
        let rig = try rig()
        if rig.ops.addressesAreCPUVirtual { return "not applicable: the ops hand out CPU virtual addresses to a software device" }
        let device = try device(rig, mask: 32)
        let ranges = try pages(rig, 4)  // all above 4 GiB
        var mapped = 0
        var refused = 0
        for range in ranges {
            do {
                let address = try device.mapPhys(range, direction: .bidirectional)
                guard device.mask.isCapable(address, length: range.length) else {
                    throw fail("\(range) was mapped at \(address), beyond the device's 32-bit mask")
                }
                try device.unmapPhys(address, length: range.length, direction: .bidirectional)
                mapped += 1
            } catch let error as DMAError {
                refused += 1
                _ = error
            }
        }
        let table = try? device.mapScatterList(try ScatterList.host(ranges), direction: .toDevice)
        if let table {
            for segment in table.segments where !device.mask.isCapable(segment.address, length: segment.length) {
                throw fail("a scatter-list segment at \(segment.address) lies beyond the 32-bit mask")
            }
            try device.unmapScatterList(table, direction: .toDevice)
        }
        return "a 32-bit device and memory above 4 GiB: \(mapped) page(s) mapped within the mask, \(refused) refused with a typed error"
    }

    /// `DMA_NONE` through every DMA API entry a mapping meets is the kernel's
    /// `BUG_ON(!valid_dma_direction(dir))` (`kernel/dma/mapping.c`, 7.1): the model refuses it with
    /// `kernel-bug` before the ops, so nothing changes and a live mapping is left as it was. The
    /// part the ops own: `dma_iova_link` has no such check in the kernel, so ops that implement the
    /// two-step API must refuse a `DMA_NONE` link themselves (it would give the device an IOVA with
    /// no access, which x86 IOMMUs refuse with `EINVAL`), leaving nothing linked.
    private func directionNone() throws -> String {
        let rig = try rig()
        let device = try device(rig)
        let ranges = try pages(rig, 2)
        let before = footprint(device)
        let list = try ScatterList.host(ranges)
        let live = try device.mapScatterList(list, direction: .bidirectional)
        let mapped = footprint(device)
        let first = live.segments[0]
        let calls: [(String, () throws -> Void)] = [
            ("dma_map_phys", { _ = try device.mapPhys(ranges[0], direction: .none) }),
            ("dma_map_sgtable", { _ = try device.mapScatterList(list, direction: .none) }),
            ("dma_sync_single_for_cpu", { try device.syncForCPU(first.address, length: first.length, direction: .none) }),
            ("dma_sync_single_for_device", { try device.syncForDevice(first.address, length: first.length, direction: .none) }),
            ("dma_sync_sgtable_for_cpu", { try device.syncForCPU(live, direction: .none) }),
            ("dma_sync_sgtable_for_device", { try device.syncForDevice(live, direction: .none) }),
            ("dma_unmap_phys", { try device.unmapPhys(first.address, length: first.length, direction: .none) }),
            ("dma_unmap_sgtable", { try device.unmapScatterList(live, direction: .none) }),
        ]
        for (call, body) in calls {
            do {
                try body()
                throw fail("\(call) accepted DMA_NONE")
            } catch let error as DMAError {
                guard error.code == .kernelBug else {
                    throw fail("\(call) with DMA_NONE: \(error.code) (\(error.errno.name)), not kernel-bug, the kernel's BUG_ON")
                }
            }
        }
        guard footprint(device) == mapped else { throw fail("refusing DMA_NONE changed the device's state: \(footprint(device))") }
        guard try Self.deviceWriteReachesPages(live, list, seed: 0x5A, device: device, memory: rig.memory) else {
            throw fail("after the refused DMA_NONE calls the live mapping no longer reaches its pages")
        }
        try device.unmapScatterList(live, direction: .bidirectional)
        guard footprint(device) == before else { throw fail("the live mapping's unmap left \(footprint(device))") }
        var twoStep = "the ops have no two-step IOVA API"
        if let state = try device.ops.iovaTryAlloc(ranges[0].start, size: pageSize, device: device) {
            let pagesBefore = device.iommu?.mappedPages
            let linked = (try? device.ops.iovaLink(
                state, physical: ranges[0].start, offset: 0, length: pageSize, direction: .none, attributes: [], device: device)) != nil
            let left = device.iommu?.mappedPages != pagesBefore
            try? device.ops.iovaDestroy(state, mappedLength: linked ? pageSize : 0, direction: .bidirectional, attributes: [], device: device)
            guard !linked && !left else { throw fail("dma_iova_link with DMA_NONE linked a page (linked: \(linked), pages left: \(left))") }
            twoStep = "dma_iova_link with DMA_NONE refused, nothing linked"
        }
        guard footprint(device) == before else { throw fail("the two-step IOVA calls left \(footprint(device))") }
        return "kernel-bug from map_phys, map_sg, the four syncs and both unmaps; nothing changed, the live mapping intact; \(twoStep)"
    }

    private func badRanges() throws -> String {
        let rig = try rig()
        let device = try device(rig)
        let before = footprint(device)
        let unbacked = try PhysicalRange(start: 0x7_0000_0000, length: pageSize)
        do {
            let address = try device.mapPhys(unbacked, direction: .toDevice)
            throw fail("a range no memory backs was mapped at \(address)")
        } catch is DMAError {}
        let straddle = try PhysicalRange(start: PhysicalAddress(0x1000_0000 + (64 << 20) - pageSize), length: 2 * pageSize)
        do {
            let address = try device.mapPhys(straddle, direction: .toDevice)
            throw fail("a range running past the end of RAM was mapped at \(address)")
        } catch is DMAError {}
        guard footprint(device) == before else { throw fail("refused ranges left state behind: \(footprint(device))") }
        // An address that would wrap: the device's bus offset pushes RAM past 2^64.
        let wrapping = try DMADevice(
            name: "0000:05:00.0", memory: rig.memory, ops: rig.ops, dmaOffset: UInt64.max - 0x1000, iommu: try IOMMUDomain(),
            swiotlb: nil, topology: UniformP2PTopology(.busAddress))
        if let address = try? wrapping.mapPhys(try pages(rig, 1)[0], direction: .toDevice), !rig.ops.addressesAreCPUVirtual {
            let back = try? wrapping.resolve(address, access: .read)
            guard back != nil else { throw fail("a mapping at \(address) does not translate back: the address wrapped") }
            try? wrapping.unmapPhys(address, length: pageSize, direction: .toDevice)
        }
        return "unbacked and straddling ranges refused with typed errors; no wrapped address handed out"
    }

    private func p2pPolicy() throws -> String {
        let rig = try rig()
        let device = try device(rig)
        let list = try ScatterList.peerToPeer(
            [try rig.provider.cpuRange.subrange(offset: 0, length: pageSize), try rig.provider.cpuRange.subrange(offset: 8 * pageSize, length: pageSize)],
            provider: rig.provider)
        let before = footprint(device)
        do {
            let table = try device.mapScatterList(list, direction: .fromDevice)
            guard rig.ops.p2pSupported else {
                throw fail("ops without p2pSupported accepted a P2P scatter-list (\(table.segments.count) segments)")
            }
            let expected = list.map { rig.provider.busAddress(of: $0.start) }
            guard table.segments.map(\.address) == expected, table.segments.allSatisfy(\.isBusAddress) else {
                throw fail("bus-address P2P segments were changed: \(table.segments) instead of \(expected)")
            }
            try device.dmaWrite([0x42], at: table.segments[1].address)
            guard try rig.memory.read(list[1].start, count: 1) == [0x42] else { throw fail("a write to the bus address did not land in the BAR") }
            try device.unmapScatterList(table, direction: .fromDevice)
            return "P2P list mapped at its bus addresses, marked, bytes landed in the BAR"
        } catch let error as DMAError {
            guard !rig.ops.p2pSupported else { throw fail("p2pSupported ops refused a bus-address P2P list: \(error)") }
            guard error.errno == .EREMOTEIO else { throw fail("refused with \(error.errno.name), not EREMOTEIO") }
            guard footprint(device) == before else { throw fail("the refusal left state behind: \(footprint(device))") }
            return "not P2P capable: refused with EREMOTEIO, nothing mapped"
        }
    }

    private func syncSemantics() throws -> String {
        let rig = try rig()
        // A 32-bit device bounces memory above 4 GiB, so sync does real work; a software device of
        // virt ops has no bus mask.
        let device = try device(rig, mask: rig.ops.addressesAreCPUVirtual ? 64 : 32)
        let page = try pages(rig, 1)[0]
        let address: DMAAddress
        do { address = try device.mapPhys(page, direction: .bidirectional) } catch {
            return "not applicable: the ops refuse memory beyond a 32-bit mask (checked by dma-mask)"
        }
        guard rig.ops.addressesAreCPUVirtual || device.mask.isCapable(address, length: pageSize) else {
            try? device.unmapPhys(address, length: pageSize, direction: .bidirectional)
            return "not applicable: the mapping lies beyond the device's mask (reported by dma-mask)"
        }
        for round in 0..<3 {
            let cpu = Self.pattern(UInt8(10 + round), Int(pageSize))
            try rig.memory.write(cpu, at: page.start)
            try device.syncForDevice(address, length: pageSize, direction: .bidirectional)
            guard try device.dmaRead(at: address, count: Int(pageSize)) == cpu else { throw fail("round \(round): sync for the device did not show the CPU's bytes") }
            let dev = Self.pattern(UInt8(20 + round), Int(pageSize))
            try device.dmaWrite(dev, at: address)
            try device.syncForCPU(address, length: pageSize, direction: .bidirectional)
            guard try rig.memory.read(page.start, count: Int(pageSize)) == dev else { throw fail("round \(round): sync for the CPU did not show the device's bytes") }
        }
        try device.unmapPhys(address, length: pageSize, direction: .bidirectional)
        return "three rounds of CPU write → sync for device → device read, device write → sync for CPU → CPU read"
    }

    private func allOrNothing() throws -> String {
        let rig = try rig()
        // Small resources: 63 IOVA pages, 128 bounce slots (256 KiB).
        let device = try device(rig, mask: 32, aperture: 0x3_ffff, slots: 128)
        var failures = 0
        for count in [8, 40, 64, 80, 128] {
            let ranges = try pages(rig, count)
            let before = footprint(device)
            do {
                let table = try device.mapScatterList(try ScatterList.host(ranges), direction: .toDevice)
                try device.unmapScatterList(table, direction: .toDevice)
            } catch {
                failures += 1
                guard footprint(device) == before else {
                    throw fail("a failed map of \(count) pages left state behind: \(footprint(device)) (was \(before))")
                }
            }
            guard footprint(device) == before else { throw fail("map/unmap of \(count) pages left \(footprint(device))") }
        }
        return "lists of 8 to 128 pages against 63 IOVA pages and 128 slots: \(failures) failed cleanly, nothing left"
    }

    private func unmapReleases() throws -> String {
        let rig = try rig()
        let device = try device(rig, mask: 32)
        let before = footprint(device)
        for round in 0..<20 {
            let ranges = try pages(rig, 1 + round % 5)
            if let table = try? device.mapScatterList(try ScatterList.host(ranges), direction: .bidirectional) {
                try device.unmapScatterList(table, direction: .bidirectional)
            }
            if let address = try? device.mapPhys(ranges[0], direction: .fromDevice) {
                try device.unmapPhys(address, length: pageSize, direction: .fromDevice)
            }
        }
        guard footprint(device) == before else { throw fail("after 20 map/unmap rounds: \(footprint(device))") }
        if let iova = device.iommu, !iova.faults.isEmpty { throw fail("IOMMU faults during clean use: \(iova.faults[0])") }
        return "20 rounds of map_sg and map_phys: \(footprint(device))"
    }

    private func debugClean() throws -> String {
        let rig = try rig()
        let device = try device(rig, debug: true)
        let ranges = try pages(rig, 3)
        let table = try device.mapScatterList(try ScatterList.host(ranges), direction: .bidirectional)
        try device.syncForCPU(table, direction: .bidirectional)
        try device.syncForDevice(table, direction: .bidirectional)
        try device.unmapScatterList(table, direction: .bidirectional)
        let address = try device.mapPhys(ranges[0], direction: .toDevice)
        try device.syncForDevice(address, length: pageSize, direction: .toDevice)
        try device.unmapPhys(address, length: pageSize, direction: .toDevice)
        if rig.debug.deviceReleased(device) != nil || !rig.debug.reports.isEmpty {
            throw fail("the debug layer reported: \(rig.debug.reports.map(\.description).joined(separator: "; "))")
        }
        return "map_sg, sync both ways, unmap_sg, map_phys, sync, unmap_phys: no reports, no leaks"
    }

    /// The device writes a pattern through every segment of a mapping; after the sync for the
    /// CPU, do the mapping's own pages hold it? (An address handed to two live mappings sends the
    /// bytes elsewhere.)
    private static func deviceWriteReachesPages(
        _ table: DMAScatterTable, _ list: ScatterList, seed: UInt8, device: DMADevice, memory: SimulatedMemory
    ) throws -> Bool {
        let bytes = pattern(seed, Int(table.mappedLength))
        var at = 0
        for segment in table.segments {
            try device.dmaWrite(Array(bytes[at..<(at + Int(segment.length))]), at: segment.address)
            at += Int(segment.length)
        }
        try device.syncForCPU(table, direction: .bidirectional)
        var seen: [UInt8] = []
        for range in list { seen += try memory.read(range.start, count: Int(range.length)) }
        return seen == bytes
    }

    private func concurrency() throws -> String {
        let rig = try rig()
        let device = try device(rig)
        let workers = 8
        let rounds = 25
        let pagesPerWorker = try (0..<workers).map { _ in try pages(rig, 2) }
        let residentPages = try pages(rig, 2)
        let before = footprint(device)
        struct Shared {
            var live: [(DMAAddress, UInt64)] = []
            var problems: [String] = []
            var maps = 0
        }
        let shared = ModelMutex(Shared())
        let memory = rig.memory
        // One mapping stays live through every round, so an address handed out twice is caught
        // whatever the scheduler does: on two cores the workers may never overlap in time, but
        // each of them overlaps this one.
        let residentList = try ScatterList.host(residentPages)
        let resident = try device.mapScatterList(residentList, direction: .bidirectional)
        shared.withLock { $0.live = resident.segments.map { ($0.address, $0.length) } }
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for round in 0..<rounds {
                do {
                    let list = try ScatterList.host(pagesPerWorker[worker])
                    let table = try device.mapScatterList(list, direction: .bidirectional)
                    shared.withLock { s in
                        for segment in table.segments {
                            let end = segment.address.rawValue + segment.length
                            if let clash = s.live.first(where: { $0.0.rawValue < end && segment.address.rawValue < $0.0.rawValue + $0.1 }) {
                                s.problems.append("worker \(worker) round \(round): \(segment) overlaps live \(clash.0)+\(hex(clash.1))")
                            }
                        }
                        s.live += table.segments.map { ($0.address, $0.length) }
                        s.maps += 1
                    }
                    // Use the mapping while its record is live, as a driver does between map and
                    // unmap: the device writes this worker's bytes, which must reach this worker's
                    // own pages (an address handed to two live mappings sends them elsewhere).
                    let reached = try Self.deviceWriteReachesPages(
                        table, list, seed: UInt8(truncatingIfNeeded: 31 &* worker &+ round), device: device, memory: memory)
                    if !reached {
                        shared.withLock { $0.problems.append("worker \(worker) round \(round): the device's bytes did not reach the worker's own pages (another live mapping shares its addresses)") }
                    }
                    // The record goes only now, just before the unmap: it was live all the time
                    // the mapping was in use.
                    shared.withLock { s in
                        for segment in table.segments {
                            if let index = s.live.firstIndex(where: { $0.0 == segment.address && $0.1 == segment.length }) { s.live.remove(at: index) }
                        }
                    }
                    try device.unmapScatterList(table, direction: .bidirectional)
                } catch {
                    shared.withLock { $0.problems.append("worker \(worker) round \(round): \(error)") }
                }
            }
        }
        // The resident mapping still reaches its own pages after all that.
        if try !Self.deviceWriteReachesPages(resident, residentList, seed: 0xA7, device: device, memory: memory) {
            shared.withLock { $0.problems.append("the mapping held through every round no longer reaches its own pages") }
        }
        try device.unmapScatterList(resident, direction: .bidirectional)
        let result = shared.withLock { $0 }
        if let first = result.problems.first { throw fail(first + " (\(result.problems.count) problem(s))") }
        guard footprint(device) == before else { throw fail("after concurrent use: \(footprint(device)) (lost unmaps)") }
        return "\(workers) threads × \(rounds) map/unmap: \(result.maps) maps, no overlap, nothing left"
    }
}

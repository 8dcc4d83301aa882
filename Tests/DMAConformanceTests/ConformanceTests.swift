import DMAConformance
import DMACore
import DMAMapping
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The one DMA window every scatter-list map of `Broken(.sharesOneWindow)` hands out: the last
/// map's pages, as an IOVA allocator that never marks anything allocated would leave it.
final class SharedWindow: Sendable {
    static let base: UInt64 = 0xC000_0000
    private let entries = Mutex<[(dma: UInt64, length: UInt64, physical: PhysicalAddress)]>([])
    func set(_ list: ScatterList) -> [DMASegment] {
        var at = Self.base
        var made: [(dma: UInt64, length: UInt64, physical: PhysicalAddress)] = []
        for range in list {
            made.append((at, range.length, range.start))
            at += range.length
        }
        entries.withLock { $0 = made }
        return made.map { DMASegment(address: DMAAddress($0.dma), length: $0.length) }
    }
    func physical(_ address: DMAAddress) -> PhysicalAddress? {
        entries.withLock { entries in
            entries.first { address.rawValue >= $0.dma && address.rawValue - $0.dma < $0.length }
                .map { PhysicalAddress($0.physical.rawValue + (address.rawValue - $0.dma)) }
        }
    }
}

/// Ops that delegate to direct mapping but break one rule, to prove each check can fail. They
/// lean on the protocol's defaults where a vendor would.
struct Broken: DMAOps {
    enum Bug: Sendable {
        case ignoresMask, claimsNoP2PButMapsIt, leaksBounceSlots, wrongBytes
        /// The two-step IOVA API (an IOMMU's) links a `DMA_NONE` range as read-write, as
        /// `prot = dir == DMA_TO_DEVICE ? READ : READ | WRITE` does, instead of refusing it.
        case linksDirectionNone
        /// `map_phys` for DMA_TO_DEVICE maps the page after the one asked for.
        case mapsNeighbourPage
        /// A DMA_FROM_DEVICE scatter-list map hands its first two segments back swapped.
        case scramblesSegments
        /// `map_phys` maps a range no memory backs instead of refusing it.
        case acceptsUnbacked
        /// `unmap_sg` unmaps each segment through the public `dma_unmap_phys` API (so the debug
        /// layer sees an sg mapping freed as single ones).
        case unmapsThroughTheAPI
        /// Every scatter-list map gets the same DMA window (an allocator that marks nothing used).
        case sharesOneWindow
    }
    let bug: Bug
    let base = DirectDMAOps()
    let iommu = IOMMUDMAOps()
    let window = SharedWindow()
    var name: String { "broken-\(bug)" }
    var p2pSupported: Bool { bug != .claimsNoP2PButMapsIt }

    func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) -> DMAAddress {
        if bug == .ignoresMask {
            try checkMemoryKind(range, attributes: attributes, device: device)
            return DMAAddress(range.start.rawValue)
        }
        if bug == .mapsNeighbourPage, direction == .toDevice, !attributes.contains(.mmio) {
            let next = try PhysicalRange(start: try range.start.advanced(by: range.length), length: range.length)
            return try base.mapPhys(next, direction: direction, attributes: attributes, device: device)
        }
        if bug == .acceptsUnbacked, !(device.memory.region(containing: range.start).map { $0.range.contains(range) } ?? false) {
            return DMAAddress(range.start.rawValue &+ device.dmaOffset)
        }
        return try base.mapPhys(range, direction: direction, attributes: attributes, device: device)
    }
    func unmapPhys(_ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) {
        if bug == .leaksBounceSlots || bug == .ignoresMask { return }
        try base.unmapPhys(address, length: length, direction: direction, attributes: attributes, device: device)
    }
    func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) -> DMAScatterTable {
        if bug == .sharesOneWindow, !list.isPeerToPeer {
            let segments = window.set(list)
            usleep(300)  // a slower map: another thread's map lands in this window meanwhile
            return DMAScatterTable(list: list, segments: segments)
        }
        if bug == .scramblesSegments, direction == .fromDevice, !list.isPeerToPeer, list.count >= 2 {
            let table = try base.mapScatterList(list, direction: direction, attributes: attributes, device: device)
            var segments = table.segments
            if segments.count >= 2, segments[0].length == segments[1].length { segments.swapAt(0, 1) }
            return DMAScatterTable(list: list, segments: segments)
        }
        if bug == .claimsNoP2PButMapsIt, let provider = list.provider { return .busAddresses(list, provider: provider) }
        if bug == .ignoresMask { return try mapScatterListEntries(list, direction: direction, attributes: attributes, device: device) }
        return try base.mapScatterList(list, direction: direction, attributes: attributes, device: device)
    }
    func unmapScatterList(_ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) {
        if bug == .sharesOneWindow, !table.list.isPeerToPeer { return }
        if bug == .unmapsThroughTheAPI {
            for segment in table.segments where !segment.isBusAddress {
                try device.unmapPhys(segment.address, length: segment.length, direction: direction)
            }
            return
        }
        if bug == .leaksBounceSlots || bug == .claimsNoP2PButMapsIt && table.list.isPeerToPeer { return }
        if bug == .ignoresMask { return try unmapScatterListSegments(table, direction: direction, attributes: attributes, device: device) }
        try base.unmapScatterList(table, direction: direction, attributes: attributes, device: device)
    }
    func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {
        if bug == .wrongBytes { return }  // never copies the bounce buffer back
        try base.syncForCPU(address, length: length, direction: direction, device: device)
    }
    func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {
        try base.syncForDevice(address, length: length, direction: direction, device: device)
    }
    func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress {
        if bug == .ignoresMask { return PhysicalAddress(address.rawValue) }  // identity, like its maps
        if bug == .sharesOneWindow, let physical = window.physical(address) { return physical }
        return try base.translate(address, access: access, device: device)
    }
    func iovaTryAlloc(_ physical: PhysicalAddress, size: UInt64, device: DMADevice) throws(DMAError) -> DMAIOVAState? {
        bug == .linksDirectionNone ? try iommu.iovaTryAlloc(physical, size: size, device: device) : nil
    }
    func iovaLink(
        _ state: DMAIOVAState, physical: PhysicalAddress, offset: UInt64, length: UInt64, direction: DMADirection,
        attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        let direction = direction == .toDevice ? DMADirection.toDevice : .bidirectional  // the bug: DMA_NONE becomes read-write
        try iommu.iovaLink(state, physical: physical, offset: offset, length: length, direction: direction, attributes: attributes, device: device)
    }
    func iovaSync(_ state: DMAIOVAState, offset: UInt64, length: UInt64, device: DMADevice) throws(DMAError) {
        try iommu.iovaSync(state, offset: offset, length: length, device: device)
    }
    func iovaDestroy(
        _ state: DMAIOVAState, mappedLength: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        try iommu.iovaDestroy(state, mappedLength: mappedLength, direction: direction, attributes: attributes, device: device)
    }
}

@Suite("The conformance suite")
struct ConformanceTests {
    @Test("Every built-in ops conforms", arguments: ["direct", "iommu", "swiotlb", "virt"])
    func builtIn(name: String) throws {
        let ops = try DMAOpsRegistry.builtIn().ops(named: name)
        let report = DMAOpsConformance(makeOps: { ops }).run()
        #expect(report.passed, "\(report.text)")
        #expect(report.results.map(\.check) == DMAOpsConformance.checks.map(\.name))
    }

    @Test(
        "Each broken ops fails exactly the check for its bug",
        arguments: [
            (Broken.Bug.ignoresMask, ["dma-mask"]),
            (.claimsNoP2PButMapsIt, ["p2p-policy"]),
            (.leaksBounceSlots, ["all-or-nothing", "unmap-releases"]),
            (.linksDirectionNone, ["direction-none"]),
            (.wrongBytes, ["sync-semantics"]),
            (.mapsNeighbourPage, ["round-trip-single"]),
            (.scramblesSegments, ["round-trip-scatterlist"]),
            (.acceptsUnbacked, ["bad-ranges"]),
            (.unmapsThroughTheAPI, ["debug-clean"]),
            (.sharesOneWindow, ["concurrency"]),
        ])
    func broken(bug: Broken.Bug, failing: [String]) {
        let report = DMAOpsConformance(makeOps: { Broken(bug: bug) }).run()
        #expect(report.failedChecks.map(\.rawValue) == failing, "\(report.text)")
        #expect(!report.passed)
    }

    @Test("The runner's exit code follows the expected failures")
    func runner() {
        #expect(DMAConformanceRunner.main([.init(DirectDMAOps())], arguments: ["--json"]) == 0)
        #expect(DMAConformanceRunner.main([.init(Broken(bug: .ignoresMask), expectedFailures: [.dmaMask])], arguments: ["--json"]) == 0)
        #expect(DMAConformanceRunner.main([.init(Broken(bug: .ignoresMask))], arguments: ["--json"]) == 1)
        #expect(DMAConformanceRunner.main([.init(DirectDMAOps(), expectedFailures: [.dmaMask])], arguments: ["--json"]) == 1)
    }
}

/// Issue [N] item 7: check names are an enum, turned into the old strings only in the report's
/// text and JSON.
@Suite("Conformance check names: an enum with the old stable names")
struct ConformanceCheckNameTests {
    @Test("Every check's raw value is the name reports and JSON always used, in run order")
    func names() {
        #expect(DMAOpsConformance.checks.map(\.name.rawValue) == [
            "round-trip-single", "round-trip-scatterlist", "dma-mask", "direction-none", "bad-ranges", "p2p-policy",
            "sync-semantics", "all-or-nothing", "unmap-releases", "debug-clean", "concurrency",
        ])
        #expect(DMABufExporterConformance.checks.map(\.rawValue) == ["attach-map-detach", "static-pin", "invalidate-reaches-dynamic"])
        #expect(Set(DMAOpsConformance.checks.map(\.name) + DMABufExporterConformance.checks) == Set(ConformanceCheck.allCases))
    }

    @Test("A report's JSON carries the check's old string, and decodes back to the same check")
    func json() throws {
        let report = DMAOpsConformance(makeOps: { Broken(bug: .ignoresMask) }).run()
        let objects = try #require(
            try JSONSerialization.jsonObject(with: try JSONEncoder().encode(report)) as? [String: Any])
        let results = try #require(objects["results"] as? [[String: Any]])
        #expect(results.compactMap { $0["check"] as? String } == DMAOpsConformance.checks.map(\.name.rawValue))
        #expect(results.first { $0["passed"] as? Bool == false }?["check"] as? String == "dma-mask")
        #expect(try JSONDecoder().decode([ConformanceCheck].self, from: Data(#"["dma-mask","static-pin"]"#.utf8)) == [.dmaMask, .staticPin])
    }
}

import DMAConformance
import DMACore
import DMAMapping
import Testing

/// Ops that delegate to direct mapping but break one rule, to prove each check can fail.
struct Broken: DMAOps {
    enum Bug: Sendable { case ignoresMask, claimsNoP2PButMapsIt, leaksBounceSlots, acceptsDirectionNone, wrongBytes }
    let bug: Bug
    let base = DirectDMAOps()
    var name: String { "broken-\(bug)" }
    var p2pSupported: Bool { bug != .claimsNoP2PButMapsIt }

    func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) -> DMAAddress {
        if bug == .ignoresMask {
            guard direction.isValidForMapping else { throw .invalidDirection(direction, "map_phys") }
            try checkMemoryKind(range, attributes: attributes, device: device)
            return DMAAddress(range.start.rawValue)
        }
        if bug == .acceptsDirectionNone && direction == .none { return DMAAddress(range.start.rawValue) }
        return try base.mapPhys(range, direction: direction, attributes: attributes, device: device)
    }
    func unmapPhys(_ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) {
        if bug == .leaksBounceSlots { return }
        try base.unmapPhys(address, length: length, direction: direction, attributes: attributes, device: device)
    }
    func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) -> DMAScatterTable {
        if bug == .claimsNoP2PButMapsIt, let provider = list.provider {
            return DMAScatterTable(list: list, segments: list.map { DMASegment(address: provider.busAddress(of: $0.start), length: $0.length, isBusAddress: true) })
        }
        if bug == .ignoresMask || bug == .acceptsDirectionNone {
            if bug == .acceptsDirectionNone, direction == .none {
                return DMAScatterTable(list: list, segments: list.map { DMASegment(address: DMAAddress($0.start.rawValue), length: $0.length) })
            }
            if bug == .ignoresMask, !list.isPeerToPeer {
                _ = try checkScatterList(list, direction: direction, device: device)
                var segments: [DMASegment] = []
                for range in list { segments.append(DMASegment(address: try mapPhys(range, direction: direction, attributes: attributes, device: device), length: range.length)) }
                return DMAScatterTable(list: list, segments: segments)
            }
        }
        return try base.mapScatterList(list, direction: direction, attributes: attributes, device: device)
    }
    func unmapScatterList(_ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) {
        if bug == .leaksBounceSlots || bug == .claimsNoP2PButMapsIt && table.list.isPeerToPeer { return }
        if bug == .ignoresMask, !table.list.isPeerToPeer { return }
        if bug == .acceptsDirectionNone, direction == .none { return }
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
        return try base.translate(address, access: access, device: device)
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
            (.acceptsDirectionNone, ["direction-none"]),
            (.wrongBytes, ["sync-semantics"]),
        ])
    func broken(bug: Broken.Bug, failing: [String]) {
        let report = DMAOpsConformance(makeOps: { Broken(bug: bug) }).run()
        #expect(report.failedChecks == failing, "\(report.text)")
        #expect(!report.passed)
    }

    @Test("The runner's exit code follows the expected failures")
    func runner() {
        #expect(DMAConformanceRunner.main([.init(DirectDMAOps())], arguments: ["--json"]) == 0)
        #expect(DMAConformanceRunner.main([.init(Broken(bug: .ignoresMask), expectedFailures: ["dma-mask"])], arguments: ["--json"]) == 0)
        #expect(DMAConformanceRunner.main([.init(Broken(bug: .ignoresMask))], arguments: ["--json"]) == 1)
        #expect(DMAConformanceRunner.main([.init(DirectDMAOps(), expectedFailures: ["dma-mask"])], arguments: ["--json"]) == 1)
    }
}

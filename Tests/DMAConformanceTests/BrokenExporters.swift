import DMABuf
import DMAConformance
import DMACore
import DMAMapping
import Synchronization
import Testing

/// A moving exporter shaped like amdgpu's (`amdgpu_dma_buf.c`: VRAM or system pages, moved to
/// system memory for importers that cannot reach VRAM), small enough to break one rule at a time,
/// to prove that each exporter check fails for the reason it names.
final class MovingExporter: DMABufExporter {
    enum Bug: String, Sendable, CaseIterable, CustomTestStringConvertible {
        /// None: it conforms.
        case none
        /// `pin` does nothing: the memory stays in VRAM for an importer that cannot reach it.
        case emptyPin
        /// A map while pinned moves the memory to fresh pages anyway.
        case movesWhilePinned
        /// A move tells nobody (no `invalidate_mappings`).
        case movesSilently
        /// A move does not copy the bytes.
        case losesBytesOnMove
        var testDescription: String { rawValue }
    }

    private enum Backing {
        case vram(PhysicalRange)
        case system([PhysicalRange])
        case released
    }

    private struct State {
        var backing: Backing
        var pins = 0
    }

    let bug: Bug
    let memory: SimulatedMemory
    let provider: P2PProvider
    let exporterName = "moving"
    let isDynamic = true
    private let state: Mutex<State>

    init(bug: Bug, memory: SimulatedMemory, provider: P2PProvider, size: UInt64) throws {
        self.bug = bug
        self.memory = memory
        self.provider = provider
        state = Mutex(State(backing: .vram(try provider.cpuRange.subrange(offset: 0, length: size))))
    }

    var placement: DMABufPlacement {
        state.withLock {
            switch $0.backing {
            case .vram: .vram
            case .system: .system
            case .released: .released
            }
        }
    }

    func cpuRanges() throws(DMAError) -> [PhysicalRange] {
        switch state.withLock({ $0.backing }) {
        case .vram(let range): [range]
        case .system(let pages): pages
        case .released: throw DMAError(.noDevice, .ENODEV, "released")
        }
    }

    func attach(_ attachment: DMABufAttachment) throws(DMAError) {
        if attachment.peerToPeer, attachment.device.p2pMapType(to: provider) == .notSupported { attachment.disablePeerToPeer() }
    }

    func pin(_ attachment: DMABufAttachment, in context: ReservationContext) throws(DMAError) {
        if bug == .emptyPin { return }
        let everyoneP2P = attachment.peerToPeer && attachment.buffer.attachments.allSatisfy(\.peerToPeer)
        if !everyoneP2P, placement == .vram {
            guard state.withLock({ $0.pins }) == 0 else { throw DMAError(.busy, .EBUSY, "pinned in VRAM") }
            try move(attachment.buffer, context)
        }
        state.withLock { $0.pins += 1 }
    }

    func unpin(_ attachment: DMABufAttachment) { state.withLock { $0.pins = max(0, $0.pins - 1) } }

    func map(_ attachment: DMABufAttachment, direction: DMADirection, in context: ReservationContext) throws(DMAError) -> DMABufMapping {
        if case .vram(let range) = state.withLock({ $0.backing }) {
            if attachment.peerToPeer {
                let table = try attachment.device.mapScatterList(try ScatterList.peerToPeer([range], provider: provider), direction: direction)
                return DMABufMapping(table: table, placement: .vram)
            }
            guard state.withLock({ $0.pins }) == 0 else { throw DMAError(.busy, .EBUSY, "pinned in VRAM") }
            try move(attachment.buffer, context)
        } else if bug == .movesWhilePinned, state.withLock({ $0.pins }) > 0 {
            try move(attachment.buffer, context)
        }
        let table = try attachment.device.mapScatterList(try ScatterList.host(try cpuRanges()), direction: direction)
        return DMABufMapping(table: table, placement: .system)
    }

    func unmap(_ attachment: DMABufAttachment, _ mapping: DMABufMapping, direction: DMADirection) throws(DMAError) {
        try attachment.device.unmapScatterList(mapping.table, direction: direction)
    }

    /// Moves the memory to fresh system pages: tells the importers, copies, frees the old pages.
    private func move(_ buffer: DMABuffer, _ context: ReservationContext) throws(DMAError) {
        if bug != .movesSilently { try buffer.invalidateMappings(in: context) }
        let old = try cpuRanges()
        var pages: [PhysicalRange] = []
        for _ in 0..<(buffer.size / pageSize) { pages.append(try memory.allocate(length: pageSize)) }
        if bug != .losesBytesOnMove {
            var bytes: [UInt8] = []
            for range in old { bytes += try memory.read(range.start, count: Int(range.length)) }
            for (index, page) in pages.enumerated() {
                try memory.write(Array(bytes[(index * Int(pageSize))..<((index + 1) * Int(pageSize))]), at: page.start)
            }
        }
        if case .system(let previous) = state.withLock({ $0.backing }) { for page in previous { try? memory.free(page) } }
        state.withLock { $0.backing = .system(pages) }
    }

    func release() {
        let backing = state.withLock { state -> Backing in
            defer { state.backing = .released }
            return state.backing
        }
        if case .system(let pages) = backing { for page in pages { try? memory.free(page) } }
    }

    /// A fixture: a 64 KiB buffer in a 1 MiB VRAM BAR, a NIC that reaches the BAR by bus address
    /// and one that cannot reach it (`importers` chooses which).
    static func fixture(_ bug: Bug, importers: [String] = ["near", "far"]) throws -> ExporterFixture {
        let memory = SimulatedMemory()
        try memory.addRAM(name: "RAM", start: 0x1000_0000, length: 64 << 20)
        let provider = try P2PProvider(
            owner: try PCIAddress(parsing: "0000:03:00.0"), barIndex: 0, cpuRange: try PhysicalRange(start: 0x40_0000_0000, length: 1 << 20),
            busAddress: 0x80_0000_0000)
        try memory.addBAR(name: "VRAM", provider: provider)
        let exporter = try MovingExporter(bug: bug, memory: memory, provider: provider, size: 64 << 10)
        let buffer = try DMABuffer(name: "moving-\(bug.rawValue)", size: 64 << 10, exporter: exporter)
        let devices = try importers.map { which in
            try DMADevice(
                name: which == "near" ? "0000:04:00.0" : "0000:81:00.0", memory: memory, ops: DirectDMAOps(),
                topology: UniformP2PTopology(which == "near" ? .busAddress : .notSupported))
        }
        return ExporterFixture(buffer: buffer, memory: memory, importers: devices)
    }
}

@Suite("The exporter conformance suite can fail for the reason each check names")
struct ExporterConformanceTests {
    @Test(
        "Each broken exporter fails exactly the check for its bug",
        arguments: [
            (MovingExporter.Bug.none, [String]()),
            (.emptyPin, ["static-pin"]),
            (.movesWhilePinned, ["static-pin"]),
            (.movesSilently, ["invalidate-reaches-dynamic"]),
            (.losesBytesOnMove, ["invalidate-reaches-dynamic"]),
        ])
    func brokenExporter(bug: MovingExporter.Bug, failing: [String]) {
        let report = DMABufExporterConformance(name: "moving-\(bug.rawValue)", make: { try MovingExporter.fixture(bug) }).run()
        #expect(report.failedChecks.map(\.rawValue) == failing, "\(report.text)")
        #expect(report.results.map(\.check) == DMABufExporterConformance.checks)
    }

    @Test("A fixture where no importer attaches fails every check instead of passing with nothing checked")
    func noImporter() {
        let report = DMABufExporterConformance(name: "moving, no importer", make: { try MovingExporter.fixture(.none, importers: []) }).run()
        #expect(report.failedChecks == DMABufExporterConformance.checks, "\(report.text)")
    }

    @Test("Only importers that cannot reach VRAM: the suite still runs every check, and a correct exporter passes")
    func farOnly() {
        let report = DMABufExporterConformance(name: "moving, far only", make: { try MovingExporter.fixture(.none, importers: ["far"]) }).run()
        #expect(report.passed, "\(report.text)")
    }
}

import DMABuf
import DMACore
import DMAMapping
import Synchronization

/// What the exporter suite needs: a fresh buffer and two devices that can import it.
public struct ExporterFixture: Sendable {
    /// The buffer under test.
    public let buffer: DMABuffer
    /// The machine's memory (for the CPU's view of the bytes).
    public let memory: SimulatedMemory
    /// Devices that import it: every one is tried dynamically and statically where the exporter
    /// allows it.
    public let importers: [DMADevice]
    /// Creates a fixture.
    public init(buffer: DMABuffer, memory: SimulatedMemory, importers: [DMADevice]) {
        self.buffer = buffer
        self.memory = memory
        self.importers = importers
    }
}

/// The conformance suite for a dma-buf exporter (`struct dma_buf_ops`): attach, map, unmap and
/// detach move the right bytes; a static importer's map pins a moving exporter and unmap unpins
/// it; `invalidate_mappings` reaches every dynamic attachment and no static one.
public struct DMABufExporterConformance: Sendable {
    /// The subject's name in the report.
    public let name: String
    private let make: @Sendable () throws -> ExporterFixture

    /// A suite for fixtures made fresh by `make` for every check.
    public init(name: String, make: @escaping @Sendable () throws -> ExporterFixture) {
        self.name = name
        self.make = make
    }

    final class Counter: DMABufImporter {
        let allowPeerToPeer = true
        private let count = ModelMutex(0)
        var told: Int { count.withLock { $0 } }
        func invalidateMappings(_ attachment: DMABufAttachment, in context: ReservationContext) { count.withLock { $0 += 1 } }
    }

    struct Violation: Error { let message: String }

    /// Runs every check.
    public func run() -> ConformanceReport {
        let checks: [(String, () throws -> String)] = [
            ("attach-map-detach", roundTrip), ("static-pin", staticPin), ("invalidate-reaches-dynamic", invalidate),
        ]
        return ConformanceReport(
            subject: name,
            results: checks.map { (check, body) in
                do { return ConformanceResult(check: check, passed: true, evidence: try body()) } catch let v as Violation {
                    return ConformanceResult(check: check, passed: false, evidence: v.message)
                } catch {
                    return ConformanceResult(check: check, passed: false, evidence: "unexpected error: \(error)")
                }
            })
    }

    private func cpuBytes(_ fixture: ExporterFixture) throws -> [UInt8] {
        var out: [UInt8] = []
        for range in try fixture.buffer.exporter.cpuRanges() { out += try fixture.memory.read(range.start, count: Int(range.length)) }
        return out
    }

    private func roundTrip() throws -> String {
        let fixture = try make()
        var seen = 0
        for device in fixture.importers {
            let importer = Counter()
            let attachment = try fixture.buffer.attach(device, importer: importer)
            let mapping = try fixture.buffer.mapUnlocked(attachment, direction: .bidirectional)
            guard mapping.table.mappedLength == fixture.buffer.size else {
                throw Violation(message: "\(device.name): the mapping covers \(mapping.table.mappedLength) of \(fixture.buffer.size) bytes")
            }
            let expected = try cpuBytes(fixture)
            var read: [UInt8] = []
            for segment in mapping.table.segments { read += try device.dmaRead(at: segment.address, count: Int(segment.length)) }
            guard read == expected else { throw Violation(message: "\(device.name) read other bytes than the CPU sees") }
            try fixture.buffer.unmapUnlocked(attachment, mapping, direction: .bidirectional)
            try fixture.buffer.detach(attachment)
            seen += 1
        }
        guard fixture.buffer.attachments.isEmpty else { throw Violation(message: "attachments left after detach") }
        return "\(seen) importer(s) attached, mapped \(formatBytes(fixture.buffer.size)), read the CPU's bytes, unmapped, detached"
    }

    private func staticPin() throws -> String {
        let fixture = try make()
        guard fixture.buffer.exporter.isDynamic else { return "not applicable: the exporter does not move memory (no pin)" }
        guard let device = fixture.importers.first else { throw Violation(message: "the fixture has no importer") }
        let attachment = try fixture.buffer.attach(device)
        let mapping = try fixture.buffer.mapUnlocked(attachment, direction: .toDevice)
        guard fixture.buffer.isPinned else { throw Violation(message: "a static importer's map did not pin the buffer") }
        try fixture.buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
        guard !fixture.buffer.isPinned else { throw Violation(message: "unmap did not unpin the buffer") }
        try fixture.buffer.detach(attachment)
        return "a static importer's map pinned the buffer; unmap unpinned it"
    }

    private func invalidate() throws -> String {
        let fixture = try make()
        var counters: [Counter] = []
        var attachments: [DMABufAttachment] = []
        for device in fixture.importers {
            let counter = Counter()
            do {
                attachments.append(try fixture.buffer.attach(device, importer: counter))
                counters.append(counter)
            } catch {
                continue
            }
        }
        let told = try fixture.buffer.resv.withLock { (context) throws(DMAError) in try fixture.buffer.invalidateMappings(in: context) }
        guard told.count == counters.count, counters.allSatisfy({ $0.told == 1 }) else {
            throw Violation(message: "invalidate_mappings told \(told.count) of \(counters.count) dynamic attachments")
        }
        for attachment in attachments { try fixture.buffer.detach(attachment) }
        return "every one of \(counters.count) dynamic attachment(s) told exactly once"
    }
}

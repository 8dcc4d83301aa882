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

/// The conformance suite for a dma-buf exporter (`struct dma_buf_ops`, `include/linux/dma-buf.h`,
/// with the core's rules of `drivers/dma-buf/dma-buf.c`). Each check asserts what only the
/// exporter controls, so that an exporter that breaks the rule fails the check named for it:
/// - `attach-map-detach`: every importer's device reads, through its mapping, the bytes the CPU
///   sees in the exporter's memory;
/// - `static-pin` (moving exporters): `pin` for an importer without P2P first puts the memory
///   where that importer reaches it (system memory), a static importer's map gets system pages
///   and pins, and the memory's CPU ranges do not change while it is pinned, whoever maps it;
/// - `invalidate-reaches-dynamic`: whenever the exporter moves the memory (its CPU ranges change)
///   it has told every dynamic attachment that had a mapping (`invalidate_mappings`), and after
///   an invalidation and a re-map every importer reads the bytes written before.
/// A check that could attach no importer fails: passing with nothing checked would prove nothing.
public struct DMABufExporterConformance: Sendable {
    /// The subject's name in the report.
    public let name: String
    private let make: @Sendable () throws -> ExporterFixture

    /// A suite for fixtures made fresh by `make` for every check.
    public init(name: String, make: @escaping @Sendable () throws -> ExporterFixture) {
        self.name = name
        self.make = make
    }

    /// A dynamic importer that keeps at most one mapping and drops it when told, as a careful
    /// importer does (`ib_umem_dmabuf_unmap_pages` from `invalidate_mappings`).
    final class Recorder: DMABufImporter {
        let allowPeerToPeer: Bool
        private struct State {
            var told = 0
            var mapping: DMABufMapping?
        }
        private let state = ModelMutex(State())
        init(allowPeerToPeer: Bool = true) { self.allowPeerToPeer = allowPeerToPeer }
        var told: Int { state.withLock { $0.told } }
        var mapping: DMABufMapping? { state.withLock { $0.mapping } }
        func invalidateMappings(_ attachment: DMABufAttachment, in context: ReservationContext) {
            let live = state.withLock { state -> DMABufMapping? in
                state.told += 1
                defer { state.mapping = nil }
                return state.mapping
            }
            if let live { try? attachment.buffer.unmap(attachment, live, direction: .bidirectional, in: context) }
        }
        /// Maps under the reservation lock and keeps the mapping, in one locked step.
        func map(_ attachment: DMABufAttachment) throws(DMAError) -> DMABufMapping {
            let buffer = attachment.buffer
            return try buffer.resv.withLock { (context) throws(DMAError) in
                let mapping = try buffer.map(attachment, direction: .bidirectional, in: context)
                state.withLock { $0.mapping = mapping }
                return mapping
            }
        }
        /// Unmaps the kept mapping, if any.
        func unmap(_ attachment: DMABufAttachment) throws(DMAError) {
            let buffer = attachment.buffer
            try buffer.resv.withLock { (context) throws(DMAError) in
                guard let live = state.withLock({ state -> DMABufMapping? in defer { state.mapping = nil }; return state.mapping }) else { return }
                try buffer.unmap(attachment, live, direction: .bidirectional, in: context)
            }
        }
    }

    struct Violation: Error { let message: String }

    /// The checks' names, in the order they run.
    public static let checks: [ConformanceCheck] = [.attachMapDetach, .staticPin, .invalidateReachesDynamic]

    /// Runs every check.
    public func run() -> ConformanceReport {
        let checks: [(ConformanceCheck, () throws -> String)] = [
            (.attachMapDetach, roundTrip), (.staticPin, staticPin), (.invalidateReachesDynamic, invalidate),
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

    private func writeCPU(_ fixture: ExporterFixture, _ bytes: [UInt8]) throws {
        var at = 0
        for range in try fixture.buffer.exporter.cpuRanges() {
            try fixture.memory.write(Array(bytes[at..<(at + Int(range.length))]), at: range.start)
            at += Int(range.length)
        }
    }

    private func deviceBytes(_ device: DMADevice, _ mapping: DMABufMapping) throws -> [UInt8] {
        var read: [UInt8] = []
        for segment in mapping.table.segments { read += try device.dmaRead(at: segment.address, count: Int(segment.length)) }
        return read
    }

    private static func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ ($0 >> 12) &+ 1) } }

    private func roundTrip() throws -> String {
        let fixture = try make()
        guard !fixture.importers.isEmpty else { throw Violation(message: "the fixture has no importer: nothing was checked") }
        var seen = 0
        for device in fixture.importers {
            let importer = Recorder()
            let attachment = try fixture.buffer.attach(device, importer: importer)
            let mapping = try fixture.buffer.mapUnlocked(attachment, direction: .bidirectional)
            guard mapping.table.mappedLength == fixture.buffer.size else {
                throw Violation(message: "\(device.name): the mapping covers \(mapping.table.mappedLength) of \(fixture.buffer.size) bytes")
            }
            let expected = try cpuBytes(fixture)
            guard try deviceBytes(device, mapping) == expected else { throw Violation(message: "\(device.name) read other bytes than the CPU sees") }
            try fixture.buffer.unmapUnlocked(attachment, mapping, direction: .bidirectional)
            try fixture.buffer.detach(attachment)
            seen += 1
        }
        guard fixture.buffer.attachments.isEmpty else { throw Violation(message: "attachments left after detach") }
        return "\(seen) importer(s) attached, mapped \(formatBytes(fixture.buffer.size)), read the CPU's bytes, unmapped, detached"
    }

    private func staticPin() throws -> String {
        let fixture = try make()
        let buffer = fixture.buffer
        let exporter = buffer.exporter
        guard exporter.isDynamic else { return "not applicable: the exporter does not move memory (no pin)" }
        guard let device = fixture.importers.first else { throw Violation(message: "the fixture has no importer: nothing was checked") }
        // dma_buf_pin for a dynamic importer without P2P: the exporter must first put the memory
        // where that importer reaches it (amdgpu_dma_buf_pin: GTT unless every attachment has P2P).
        let shy = Recorder(allowPeerToPeer: false)
        let dynamic: DMABufAttachment
        do { dynamic = try buffer.attach(device, importer: shy) } catch {
            throw Violation(message: "\(device.name) could not attach without P2P (\(error)): nothing was checked")
        }
        try buffer.resv.withLock { (context) throws(DMAError) in try buffer.pin(dynamic, in: context) }
        guard exporter.placement == .system else {
            throw Violation(
                message: "after pin for \(device.name), an importer without P2P, the memory is in \(exporter.placement), which it cannot reach: pin must move it first")
        }
        let pinnedAt = try exporter.cpuRanges()
        // A static importer's map pins (dma_buf_pin_on_map) and gets system pages.
        let staticAttachment = try buffer.attach(device)
        let mapping = try buffer.mapUnlocked(staticAttachment, direction: .toDevice)
        guard staticAttachment.isPinned else { throw Violation(message: "a static importer's map did not pin the buffer") }
        guard !mapping.peerToPeer, mapping.placement == .system else {
            throw Violation(message: "a static importer (no P2P) got a \(mapping.mapType) mapping of \(mapping.placement) memory")
        }
        guard try exporter.cpuRanges() == pinnedAt else { throw Violation(message: "the memory moved while pinned (a static importer's map)") }
        // Nothing moves while pinned, whoever maps it: every importer, dynamic with P2P.
        for other in fixture.importers {
            let recorder = Recorder()
            guard let attachment = try? buffer.attach(other, importer: recorder) else { continue }
            _ = try recorder.map(attachment)
            let moved = try exporter.cpuRanges() != pinnedAt
            try recorder.unmap(attachment)
            try buffer.detach(attachment)
            guard !moved else { throw Violation(message: "the memory moved while pinned (a map for \(other.name))") }
        }
        try buffer.unmapUnlocked(staticAttachment, mapping, direction: .toDevice)
        guard !staticAttachment.isPinned else { throw Violation(message: "unmap did not unpin the buffer") }
        try buffer.resv.withLock { (context) throws(DMAError) in try buffer.unpin(dynamic, in: context) }
        guard !buffer.isPinned else { throw Violation(message: "unmap did not unpin the buffer") }
        try buffer.detach(staticAttachment)
        try buffer.detach(dynamic)
        return "a static importer's map pinned the buffer; unmap unpinned it"
    }

    private func invalidate() throws -> String {
        let fixture = try make()
        let buffer = fixture.buffer
        var entries: [(device: DMADevice, attachment: DMABufAttachment, recorder: Recorder)] = []
        for device in fixture.importers {
            let recorder = Recorder()
            guard let attachment = try? buffer.attach(device, importer: recorder) else { continue }
            entries.append((device, attachment, recorder))
        }
        guard !entries.isEmpty else { throw Violation(message: "no importer could attach dynamically: nothing was told, so nothing was checked") }
        let bytes = Self.pattern(Int(buffer.size))
        try writeCPU(fixture, bytes)
        // Map each in turn. An exporter that moves the memory for one importer (a GPU moving VRAM
        // to system memory for a device that cannot reach it) must tell the others first.
        for entry in entries {
            let before = try buffer.exporter.cpuRanges()
            let toldBefore = entries.map { $0.recorder.told }
            let mapped = entries.map { $0.recorder.mapping != nil }
            let mapping = try entry.recorder.map(entry.attachment)
            if try buffer.exporter.cpuRanges() != before {
                for (index, other) in entries.enumerated() where mapped[index] && other.recorder.told == toldBefore[index] {
                    throw Violation(
                        message: "the exporter moved the memory to map it for \(entry.device.name) without telling \(other.device.name), which had it mapped (invalidate_mappings)")
                }
            }
            guard try deviceBytes(entry.device, mapping) == bytes else {
                throw Violation(message: "\(entry.device.name) reads other bytes than were written before it mapped (the memory moved without them)")
            }
        }
        let toldBefore = entries.map { $0.recorder.told }
        let told = try buffer.resv.withLock { (context) throws(DMAError) in try buffer.invalidateMappings(in: context) }
        guard told.count == entries.count, zip(entries, toldBefore).allSatisfy({ $0.recorder.told == $1 + 1 }) else {
            throw Violation(message: "invalidate_mappings told \(told.count) of \(entries.count) dynamic attachments")
        }
        for entry in entries {
            let mapping = try entry.recorder.map(entry.attachment)
            guard try deviceBytes(entry.device, mapping) == bytes else {
                throw Violation(message: "after invalidate_mappings and a re-map, \(entry.device.name) reads other bytes than were written")
            }
        }
        for entry in entries {
            try entry.recorder.unmap(entry.attachment)
            try buffer.detach(entry.attachment)
        }
        return "every one of \(entries.count) dynamic attachment(s) told exactly once"
    }
}

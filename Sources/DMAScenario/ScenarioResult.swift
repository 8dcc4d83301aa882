import DMACore
import DMABuf

/// The outcome of one step, as `dmabuf simulate --json` prints it.
public struct StepResult: Sendable, Encodable {
    public var index: Int
    public var op: String
    public var ok: Bool
    /// The errno's name, `null` on success.
    public var errno: String?
    public var message: String
    public var line: Int?
    // For a map (and for attach/access that maps): what the importer got.
    public var peerToPeer: Bool?
    public var placement: DMABufPlacement?
    public var mapType: DMABufMapType?
    public var segments: Int?
    public var bouncedBytes: UInt64?
    public var migratedBytes: UInt64?
    /// For evict and revoke: the importers told.
    public var notified: [String]?
    /// `met`, or what was expected and not met; `null` when the step has no expectation.
    public var expectation: String?

    enum CodingKeys: String, CodingKey {
        case index, op, ok, errno, message, line, peerToPeer, placement, mapType, segments, bouncedBytes, migratedBytes, notified,
            expectation
    }

    /// Encodes `errno` always (null on success) and the rest when present.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(op, forKey: .op)
        try c.encode(ok, forKey: .ok)
        try c.encode(errno, forKey: .errno)
        try c.encode(message, forKey: .message)
        try c.encodeIfPresent(line, forKey: .line)
        try c.encodeIfPresent(peerToPeer, forKey: .peerToPeer)
        try c.encodeIfPresent(placement, forKey: .placement)
        try c.encodeIfPresent(mapType, forKey: .mapType)
        try c.encodeIfPresent(segments, forKey: .segments)
        try c.encodeIfPresent(bouncedBytes, forKey: .bouncedBytes)
        try c.encodeIfPresent(migratedBytes, forKey: .migratedBytes)
        try c.encodeIfPresent(notified, forKey: .notified)
        try c.encodeIfPresent(expectation, forKey: .expectation)
    }

    /// Whether the step went as the scenario says: its expectation met, or (without one) it succeeded.
    public var asExpected: Bool { expectation.map { $0 == "met" } ?? ok }
}

/// A whole run.
public struct ScenarioResult: Sendable {
    /// The scenario's title.
    public var title: String?
    /// One result per step (setup failures come first, with op `create-buffer`/`create-importer`).
    public var steps: [StepResult]
    /// DMA-API debug reports at the end (leaks, mismatches): none in a correct scenario.
    public var debugReports: [String]
    /// The kernel rules the run used when a kernel was named (by the runner's caller or the
    /// scenario's `kernel:`); `nil` when it ran under the default, the newest.
    public var kernel: KernelRules? = nil
    /// Whether every step went as expected and the debug layer reported nothing.
    public var ok: Bool { steps.allSatisfy(\.asExpected) && debugReports.isEmpty }
}

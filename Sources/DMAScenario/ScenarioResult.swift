import DMACore
import DMABuf

/// The outcome of one step, as `dmabuf simulate --json` prints it.
public struct StepResult: Sendable, Encodable {
    /// What a step did: a setup entry or one of the scenario's operations. Its ``name`` is what
    /// the trace and the JSON print.
    public enum Op: Hashable, Sendable, CustomStringConvertible {
        /// A buffer of the scenario's `buffers:` made (or refused): `create-buffer`.
        case createBuffer
        /// An importer of the scenario's `importers:` made (or refused): `create-importer`.
        case createImporter
        /// A step of the scenario's `steps:`, by its operation (`map`).
        case step(Scenario.Step.Op)

        /// `create-buffer`, `create-importer`, or the step's operation as the file names it.
        public var name: String {
            switch self {
            case .createBuffer: "create-buffer"
            case .createImporter: "create-importer"
            case .step(let op): op.rawValue
            }
        }

        /// Whether it is a setup entry rather than a step of the file.
        public var isSetup: Bool {
            if case .step = self { return false }
            return true
        }

        public var description: String { name }
    }

    /// Whether a step met what the scenario expected of it.
    public enum Expectation: Hashable, Sendable, CustomStringConvertible {
        /// Every expected outcome was seen: `met`.
        case met
        /// What was expected and not seen (`expected errno ENOMEM, got none`).
        case unmet(String)

        /// `met`, or what was expected and not met.
        public var text: String {
            switch self {
            case .met: "met"
            case .unmet(let misses): misses
            }
        }

        public var description: String { text }
    }

    public var index: Int
    public var op: Op
    public var ok: Bool
    /// The errno, `nil` on success (its name in the JSON, `null` on success).
    public var errno: Errno?
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
    /// `met`, or what was expected and not met; `nil` (not in the JSON) when the step has no
    /// expectation.
    public var expectation: Expectation?

    enum CodingKeys: String, CodingKey {
        case index, op, ok, errno, message, line, peerToPeer, placement, mapType, segments, bouncedBytes, migratedBytes, notified,
            expectation
    }

    /// Encodes `errno` always (null on success) and the rest when present.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(op.name, forKey: .op)
        try c.encode(ok, forKey: .ok)
        try c.encode(errno?.name, forKey: .errno)
        try c.encode(message, forKey: .message)
        try c.encodeIfPresent(line, forKey: .line)
        try c.encodeIfPresent(peerToPeer, forKey: .peerToPeer)
        try c.encodeIfPresent(placement, forKey: .placement)
        try c.encodeIfPresent(mapType, forKey: .mapType)
        try c.encodeIfPresent(segments, forKey: .segments)
        try c.encodeIfPresent(bouncedBytes, forKey: .bouncedBytes)
        try c.encodeIfPresent(migratedBytes, forKey: .migratedBytes)
        try c.encodeIfPresent(notified, forKey: .notified)
        try c.encodeIfPresent(expectation?.text, forKey: .expectation)
    }

    /// Whether the step went as the scenario says: its expectation met, or (without one) it succeeded.
    public var asExpected: Bool { expectation.map { $0 == .met } ?? ok }
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

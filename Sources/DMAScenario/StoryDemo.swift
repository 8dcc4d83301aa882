import DMACore
import DMABuf

/// One story's line in `dmabuf demo`: `{"story", "title", "ok", "placement", "mapType",
/// "bouncedBytes", "migratedBytes", "errno", "notified"}` plus what the kernel would do.
public struct StoryOutcome: Sendable, Encodable {
    public let story: Int
    public let title: String
    /// Every step as expected and no debug report.
    public let ok: Bool
    public let kernel: String
    public let placement: DMABufPlacement?
    public let mapType: DMABufMapType?
    public let bouncedBytes: UInt64
    public let migratedBytes: UInt64
    public let errno: Errno?
    public let notified: [String]?
    /// The whole trace.
    public let result: ScenarioResult
    /// The kernel rules the story ran under when a kernel was named (`dmabuf demo --kernel`);
    /// `nil` under the default (the newest), and then not in the JSON, so that the default output
    /// stays as it was.
    public var rules: KernelRules? = nil

    enum CodingKeys: String, CodingKey {
        case story, title, ok, kernel, placement, mapType, bouncedBytes, migratedBytes, errno, notified, kernelRules
    }

    /// Encodes every summary key (`null` where a story has no such fact).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(story, forKey: .story)
        try c.encode(title, forKey: .title)
        try c.encode(ok, forKey: .ok)
        try c.encode(kernel, forKey: .kernel)
        try c.encode(placement, forKey: .placement)
        try c.encode(mapType, forKey: .mapType)
        try c.encode(bouncedBytes, forKey: .bouncedBytes)
        try c.encode(migratedBytes, forKey: .migratedBytes)
        try c.encode(errno?.name, forKey: .errno)
        try c.encode(notified, forKey: .notified)
        try c.encodeIfPresent(rules, forKey: .kernelRules)
    }

    /// What the model did, in a few words.
    public var modelDid: String {
        var parts: [String] = []
        if let errno { parts.append("\(errno.name) where the kernel refuses") }
        if let notified { parts.append("told \(notified.joined(separator: ", "))") }
        if let mapType {
            if mapType != .host {
                parts.append("\(mapType) P2P from \(placement?.rawValue ?? "?")")
            } else {
                parts.append("\(placement?.rawValue ?? "system") pages mapped" + (bouncedBytes > 0 ? " through swiotlb bounce slots" : ""))
            }
        }
        return parts.joined(separator: "; ")
    }

    /// `zero-copy`, or the bytes copied.
    public var copies: String {
        var parts: [String] = []
        if migratedBytes > 0 { parts.append("\(formatBytes(migratedBytes)) migrated") }
        if bouncedBytes > 0 { parts.append("\(formatBytes(bouncedBytes)) bounced") }
        return parts.isEmpty ? "zero-copy" : parts.joined(separator: ", ")
    }
}

extension Story {
    /// Runs the story and sums it up from its key steps: under the newest rules when `rules` is
    /// `nil`, else under `rules`' kernel (the outcome then names them). A story that cannot
    /// happen in that kernel (``exists(in:)``) is its refusal: `ok` when the buffer's creation
    /// failed with the errno the kernel gives.
    public func run(rules: KernelRules? = nil) throws -> StoryOutcome {
        guard let rules else { return try run(scenario(), rules: nil) }
        let result = try ScenarioRunner.run(try scenario(for: rules))
        if !exists(in: rules) {
            let refusal = result.steps.first { $0.op == .createBuffer && !$0.ok }
            return StoryOutcome(
                story: number, title: title, ok: refusal?.errno == .ENOTTY, kernel: kernelBehaviour(for: rules), placement: nil,
                mapType: nil, bouncedBytes: 0, migratedBytes: 0, errno: refusal?.errno, notified: nil, result: result, rules: rules)
        }
        return summary(result, kernel: kernelBehaviour(for: rules), rules: rules)
    }

    private func run(_ scenario: Scenario, rules: KernelRules?) throws -> StoryOutcome {
        summary(try ScenarioRunner.run(scenario), kernel: kernelBehaviour, rules: rules)
    }

    private func summary(_ result: ScenarioResult, kernel: String, rules: KernelRules?) -> StoryOutcome {
        let steps = result.steps.filter { !$0.op.isSetup }
        let keys = keySteps.compactMap { $0 < steps.count ? steps[$0] : nil }
        return StoryOutcome(
            story: number, title: title, ok: result.ok, kernel: kernel,
            placement: keys.lazy.compactMap(\.placement).first, mapType: keys.lazy.compactMap(\.mapType).first,
            bouncedBytes: keys.lazy.compactMap(\.bouncedBytes).first ?? 0, migratedBytes: keys.lazy.compactMap(\.migratedBytes).first ?? 0,
            errno: keys.lazy.compactMap(\.errno).first, notified: keys.lazy.compactMap(\.notified).first, result: result, rules: rules)
    }
}

/// The outcome of one conformance check.
public struct ConformanceResult: Sendable, Encodable, Equatable {
    /// The check (its stable name, `dma-mask`, in the JSON).
    public let check: ConformanceCheck
    /// Whether the ops kept the contract.
    public let passed: Bool
    /// What was seen: on success what was verified, on failure the first violation.
    public let evidence: String
}

/// Every check's outcome for one ops or exporter.
public struct ConformanceReport: Sendable, Encodable, Equatable {
    /// The ops or exporter checked.
    public let subject: String
    /// One result per check, in order.
    public let results: [ConformanceResult]

    /// Whether every check passed.
    public var passed: Bool { results.allSatisfy(\.passed) }
    /// The names of the failed checks.
    public var failedChecks: [ConformanceCheck] { results.filter { !$0.passed }.map(\.check) }

    enum CodingKeys: String, CodingKey { case subject, passed, results }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(subject, forKey: .subject)
        try c.encode(passed, forKey: .passed)
        try c.encode(results, forKey: .results)
    }

    /// The report for people: one line per check.
    public var text: String {
        var out = "\(subject): \(passed ? "conforms" : "FAILS \(failedChecks.count) of \(results.count) checks")\n"
        for result in results {
            out += "  \(result.passed ? "pass" : "FAIL")  \(result.check.rawValue.padding(26))\(result.evidence)\n"
        }
        return out
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}

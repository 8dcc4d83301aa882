import DMAMapping
import Foundation

/// One ops to check, with the checks it is known to fail (an xfail list, as a vendor keeps for
/// ops that are not finished).
public struct ConformanceSubject: Sendable {
    /// Makes the ops (fresh for every check).
    public let makeOps: @Sendable () -> any DMAOps
    /// Checks this ops is expected to fail.
    public let expectedFailures: Set<ConformanceCheck>

    /// A subject.
    public init(_ makeOps: @escaping @Sendable @autoclosure () -> any DMAOps, expectedFailures: Set<ConformanceCheck> = []) {
        self.makeOps = makeOps
        self.expectedFailures = expectedFailures
    }
}

/// The `main` of a conformance runner executable, which the `dma-conformance` SwiftPM plugin
/// builds and runs: one line of `main.swift`,
/// `exit(DMAConformanceRunner.main([.init(MyOps())]))`.
///
/// Prints a text report (or, with `--json`, a JSON array of reports) and returns 0 when every
/// subject failed exactly its expected checks, 1 otherwise.
public enum DMAConformanceRunner {
    /// Runs the suite on every subject.
    public static func main(_ subjects: [ConformanceSubject], arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Int32 {
        let json = arguments.contains("--json")
        var reports: [ConformanceReport] = []
        var ok = true
        var text = ""
        for subject in subjects {
            let report = DMAOpsConformance(makeOps: subject.makeOps).run()
            reports.append(report)
            let failed = Set(report.failedChecks)
            let matches = failed == subject.expectedFailures
            ok = ok && matches
            text += report.text
            if !subject.expectedFailures.isEmpty || !matches {
                text += "  expected failures: \(subject.expectedFailures.map(\.rawValue).sorted().joined(separator: ", ").ifEmpty("none")); "
                text += matches ? "as expected\n" : "NOT as expected (failed: \(failed.map(\.rawValue).sorted().joined(separator: ", ").ifEmpty("none")))\n"
            }
            text += "\n"
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            if let data = try? encoder.encode(reports) { print(String(decoding: data, as: UTF8.self)) }
        } else {
            print(text, terminator: "")
            print(ok ? "conformance: every ops kept the contract it claims" : "conformance: unexpected results")
        }
        return ok ? 0 : 1
    }
}

extension String {
    func ifEmpty(_ replacement: String) -> String { isEmpty ? replacement : self }
}

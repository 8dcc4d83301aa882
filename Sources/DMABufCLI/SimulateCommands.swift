import ArgumentParser
import DMACore
import DMAScenario
import Foundation
import PCI

extension DMABufCommand {
    /// `dmabuf simulate`: run a scenario file or a built-in story.
    package struct Simulate: ParsableCommand {
        package static let configuration = CommandConfiguration(
            abstract: "Run a scenario (attach, map, device and CPU access, sync, evict, revoke…) and print its trace.",
            discussion: """
                Exit code 1 when a step does not go as the scenario expects or the DMA-API debug
                layer reports a leak or mismatch. The format is in docs/scenarios.md.

                Examples:
                  dmabuf simulate --story 1
                  dmabuf simulate my-scenario.yaml
                  dmabuf simulate my-scenario.yaml --json     # one JSON object per step, one per line
                  dmabuf simulate --story 1 --kernel 6.12     # Debian's 6.12: MOVE_NOTIFY off

                --kernel overrides a scenario's kernel: key; with neither the model follows 7.1.
                When a kernel is named, the JSON summary has "kernelRules" and the trace says so.
                """
        )

        @Argument(help: "A scenario file (YAML).") var file: String?
        @Option(help: "Run built-in story N (1…6) instead of a file.") var story: Int?
        @Flag(help: "Print one JSON object per step (JSON Lines), then one summary object.") var json = false
        @OptionGroup var kernel: KernelOption

        package init() {}

        package func validate() throws {
            if (file == nil) == (story == nil) { throw ValidationError("give a scenario file or --story N, not both or neither") }
            if let story, !(1...Story.all.count).contains(story) { throw ValidationError("--story takes 1…\(Story.all.count)") }
        }

        package func run() throws {
            let scenario: Scenario
            var base = "."
            let rules = try kernel.rules()
            do {
                if let story {
                    scenario = try rules.map { try Story.all[story - 1].scenario(for: $0) } ?? Story.all[story - 1].scenario()
                } else {
                    let file = self.file!
                    scenario = try Scenario.parse(try InputFile.read(file, what: "the scenario file"), file: file)
                    base = URL(fileURLWithPath: file).deletingLastPathComponent().path
                }
            } catch let error as InputFileError {
                throw CLIError(error)
            }
            let result: ScenarioResult
            let progress = ProgressLine("simulating")
            defer { progress.finish() }
            do { result = try ScenarioRunner.run(scenario, baseDirectory: base, kernel: rules, progress: progress.update) } catch let error as InputFileError {
                throw CLIError(error)
            } catch let error as DMAError {
                throw CLIError(error)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                for step in result.steps { print(String(decoding: try encoder.encode(step), as: UTF8.self)) }
                struct Summary: Encodable {
                    let summary = true
                    let ok: Bool
                    let steps: Int
                    let unexpected: Int
                    let debugReports: [String]
                    /// Only when a kernel was named (--kernel or the file's kernel:).
                    let kernelRules: KernelRules?
                }
                let summary = Summary(
                    ok: result.ok, steps: result.steps.count, unexpected: result.steps.filter { !$0.asExpected }.count,
                    debugReports: result.debugReports, kernelRules: result.kernel)
                print(String(decoding: try encoder.encode(summary), as: UTF8.self))
            } else {
                print(renderTrace(result), terminator: "")
            }
            if !result.ok { throw ExitCode(1) }
        }
    }
}

/// A scenario's trace for people.
func renderTrace(_ result: ScenarioResult) -> String {
    var out = result.title.map { "\($0)\n\n" } ?? ""
    if let rules = result.kernel { out += renderKernelRules(rules) + "\n" }
    for step in result.steps {
        let mark = step.asExpected ? (step.ok ? Terminal.paint("ok ", "32") : Terminal.paint("ok*", "33")) : Terminal.paint("!! ", "31;1")
        out += "\(mark) \(pad(String(step.index), 3))\(pad(step.op.name, 16))"
        out += step.ok ? step.message : "\(step.errno?.name ?? "error"): \(step.message)"
        out += "\n"
        var facts: [String] = []
        if let v = step.mapType { facts.append("map type \(v)") }
        if let v = step.placement, step.mapType != nil { facts.append("placement \(v)") }
        if let v = step.segments, step.mapType != nil { facts.append("\(v) segment(s)") }
        if let v = step.bouncedBytes, v > 0 { facts.append("\(formatBytes(v)) bounced") }
        if let v = step.migratedBytes, v > 0 { facts.append("\(formatBytes(v)) migrated") }
        if !facts.isEmpty { out += "                        " + facts.joined(separator: ", ") + "\n" }
        if case .unmet(let e)? = step.expectation { out += "                        \(e)\n" }
    }
    out += "\n"
    let unexpected = result.steps.filter { !$0.asExpected }.count
    out += unexpected == 0 ? "Every step went as expected" : "\(unexpected) step(s) did not go as expected"
    out += result.debugReports.isEmpty ? "; the DMA-API debug layer reported nothing.\n" : "; the DMA-API debug layer reported:\n"
    for report in result.debugReports { out += "  \(report)\n" }
    out += "(ok* = a failure the scenario expects)\n"
    return out
}

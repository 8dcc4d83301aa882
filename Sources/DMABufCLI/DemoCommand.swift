import ArgumentParser
import DMACore
import DMAScenario
import Foundation

extension DMABufCommand {
    /// `dmabuf demo`: stories 1–6 on the built-in machine, then a summary table.
    package struct Demo: ParsableCommand {
        package static let configuration = CommandConfiguration(
            abstract: "Run the six GPU↔NIC stories on the built-in machine and sum up what the kernel and the model did.",
            discussion: """
                Exit code 1 when a story does not go as the kernel would.

                Examples:
                  dmabuf demo
                  dmabuf demo --json        # one JSON object per story, one per line
                  dmabuf demo --story 6     # one story with its whole trace
                  dmabuf demo --kernel 6.12 # Debian's 6.12: MOVE_NOTIFY off, no VRAM P2P

                Without --kernel the model follows 7.1. With it, every JSON object also has
                "kernelRules": {"version", "moveNotify"} (docs/kernel-versions.md).
                """
        )

        @Flag(help: "Print one JSON object per story (JSON Lines).") var json = false
        @Option(help: "Run only story N (1…6), with its trace.") var story: Int?
        @OptionGroup var kernel: KernelOption

        package init() {}

        package func validate() throws {
            if let story, !(1...Story.all.count).contains(story) { throw ValidationError("--story takes 1…\(Story.all.count)") }
        }

        package func run() throws {
            let stories = story.map { [Story.all[$0 - 1]] } ?? Story.all
            let rules = try kernel.rules()
            var outcomes: [StoryOutcome] = []
            for story in stories {
                do { outcomes.append(try story.run(rules: rules)) } catch let error as DMAError { throw CLIError(error) }
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                for outcome in outcomes { print(String(decoding: try encoder.encode(outcome), as: UTF8.self)) }
            } else {
                print(renderStories(outcomes, traces: true, rules: rules), terminator: "")
            }
            if !outcomes.allSatisfy(\.ok) { throw ExitCode(1) }
        }
    }
}

/// The stories' traces and the summary table.
func renderStories(_ outcomes: [StoryOutcome], traces: Bool, rules: KernelRules? = nil) -> String {
    var out = "DMABufKit: six stories of sharing device memory, on a simulated machine that follows Linux \(rules?.description ?? KernelRules.newest.description)\n"
    out += "(topology: dmabuf topo explain … on the built-in machine; scenarios: dmabuf simulate --story N)\n\n"
    if traces {
        for outcome in outcomes {
            out += renderTrace(outcome.result) + "\n"
        }
    }
    out += "Summary\n"
    out += pad("#", 3) + pad("story", 64) + pad("ok", 4) + "copies\n"
    for o in outcomes {
        out += pad("\(o.story)", 3) + pad(o.title, 64) + pad(o.ok ? "yes" : "NO", 4) + o.copies + "\n"
        out += "   kernel: \(o.kernel)\n"
        out += "   model:  \(o.modelDid)\n"
    }
    return out
}

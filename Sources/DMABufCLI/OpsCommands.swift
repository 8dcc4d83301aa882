import ArgumentParser
import DMACore
import DMAMapping
import Foundation

extension DMABufCommand {
    /// `dmabuf ops demo`: every built-in ops maps a host and a P2P list.
    package struct OpsDemo: ParsableCommand {
        package static let configuration = CommandConfiguration(
            commandName: "demo",
            abstract: "Map a host and a P2P scatter-list through every built-in DMA ops and show what each did.",
            discussion: """
                Examples:
                  dmabuf ops demo
                  dmabuf ops demo --json
                """
        )

        @Flag(help: "Print one JSON object per ops instead of text.")
        var json = false

        package init() {}

        package func run() throws {
            do {
                let rows = try runFirstDemo()
                if json {
                    try printJSON(rows)
                } else {
                    print(renderFirstDemo(rows, machine: try DemoMachine()), terminator: "")
                }
                let expected = rows.allSatisfy { row in
                    row.debugReports.isEmpty && (!row.host.mapped || row.host.bytesVerified)
                        && (!row.p2p.mapped || row.p2p.bytesVerified)
                }
                if !expected { throw ExitCode(1) }
            } catch let error as DMAError {
                throw CLIError(error)
            }
        }
    }

    /// `dmabuf ops`: the DMA ops registry.
    package struct Ops: ParsableCommand {
        package static let configuration = CommandConfiguration(
            abstract: "The DMA ops the model knows.",
            discussion: """
                Examples:
                  dmabuf ops list
                  dmabuf ops list --json
                  dmabuf ops demo
                """,
            subcommands: [List.self, OpsDemo.self]
        )
        package init() {}

        /// `dmabuf ops list`.
        package struct List: ParsableCommand {
            package static let configuration = CommandConfiguration(
                abstract: "List the registered DMA ops and whether each can map P2P memory.",
                discussion: """
                    Examples:
                      dmabuf ops list
                      dmabuf ops list --json
                    """
            )

            @Flag(help: "Print a JSON array: [{\"name\", \"p2pSupported\", \"summary\"}].")
            var json = false

            package init() {}

            struct Row: Encodable {
                let name: String
                let p2pSupported: Bool
                let summary: String
            }

            package func run() throws {
                let rows = DMAOpsRegistry.builtIn().all.map { Row(name: $0.name, p2pSupported: $0.p2pSupported, summary: $0.summary) }
                if json {
                    try printJSON(rows)
                } else {
                    print(pad("name", 9) + pad("P2P", 5) + "what it models")
                    for row in rows {
                        print(pad(row.name, 9) + pad(row.p2pSupported ? "yes" : "no", 5) + row.summary)
                    }
                }
            }
        }
    }
}

import ArgumentParser
import DMACore
import DMAMapping
import Foundation

/// The `dmabuf` command: the root of the command-line tool.
public struct DMABufCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dmabuf",
        abstract: "Model and inspect Linux DMA-BUF sharing and DMA mapping.",
        discussion: """
            Exit codes: 0 ok, 1 an expectation failed, 2 bad input.

            Examples:
              dmabuf demo
              dmabuf ops list --json
            """,
        subcommands: [Demo.self, Ops.self]
    )

    public init() {}
}

/// Prints an `Encodable` value as pretty, key-sorted JSON.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let data = try encoder.encode(value)
    print(String(decoding: data, as: UTF8.self))
}

/// A model error as the CLI reports it: exit code 2 (bad input) with the errno and message.
struct ModelFailure: Error, CustomStringConvertible {
    let error: DMAError
    var description: String { "error: \(error.errno.name): \(error.message)" }
}

extension DMABufCommand {
    /// `dmabuf demo`: the first demo (every built-in ops maps a host and a P2P list).
    public struct Demo: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Map a host and a P2P scatter-list through every built-in DMA ops and show what each did.",
            discussion: """
                Examples:
                  dmabuf demo
                  dmabuf demo --json
                """
        )

        @Flag(help: "Print one JSON object per ops instead of text.")
        var json = false

        public init() {}

        public func run() throws {
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
                throw ModelFailure(error: error)
            }
        }
    }

    /// `dmabuf ops`: the DMA ops registry.
    public struct Ops: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "The DMA ops the model knows.",
            discussion: """
                Examples:
                  dmabuf ops list
                  dmabuf ops list --json
                """,
            subcommands: [List.self]
        )
        public init() {}

        /// `dmabuf ops list`.
        public struct List: ParsableCommand {
            public static let configuration = CommandConfiguration(
                abstract: "List the registered DMA ops and whether each can map P2P memory.",
                discussion: """
                    Examples:
                      dmabuf ops list
                      dmabuf ops list --json
                    """
            )

            @Flag(help: "Print a JSON array: [{\"name\", \"p2pSupported\", \"summary\"}].")
            var json = false

            public init() {}

            struct Row: Encodable {
                let name: String
                let p2pSupported: Bool
                let summary: String
            }

            public func run() throws {
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

/// Runs the tool and returns its exit code: 0 ok, 1 an expectation failed, 2 bad input (a usage
/// error, a bad file, a model error such as an unknown ops name).
public func dmabufMain(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Int32 {
    do {
        var command = try DMABufCommand.parseAsRoot(arguments)
        try command.run()
        return 0
    } catch let failure as ModelFailure {
        FileHandle.standardError.write(Data((failure.description + "\n").utf8))
        return 2
    } catch {
        let code = DMABufCommand.exitCode(for: error)
        let message = DMABufCommand.fullMessage(for: error)
        if code == .success {
            if !message.isEmpty { print(message) }  // --help, --version
            return 0
        }
        if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
        return code == ExitCode(1) ? 1 : 2
    }
}

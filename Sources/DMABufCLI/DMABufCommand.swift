import ArgumentParser
import DMACore
import DMAMapping
import Foundation

/// The `dmabuf` command: the root of the command-line tool.
package struct DMABufCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "dmabuf",
        abstract: "Model and inspect Linux DMA-BUF sharing and DMA mapping.",
        discussion: """
            Exit codes: 0 ok, 1 an expectation failed, 2 bad input.

            Examples:
              dmabuf demo
              dmabuf ops list --json
            """,
        subcommands: [
            Demo.self, Ops.self, Topo.self, Simulate.self, Conformance.self,
            Ls.self, Probe.self, CUDAExport.self, P2P.self, Doctor.self,
        ]
    )

    package init() {}
}

/// Prints an `Encodable` value as pretty, key-sorted JSON.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let data = try encoder.encode(value)
    print(String(decoding: data, as: UTF8.self))
}

/// Runs the tool and returns its exit code: 0 ok, 1 an expectation failed, 2 bad input (a usage
/// error, a bad file, a model error such as an unknown ops name) or output that could not be
/// written.
package func dmabufMain(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Int32 {
    let code = runCommand(arguments)
    return flushOutput(code)
}

private func runCommand(_ arguments: [String]) -> Int32 {
    do {
        var command = try DMABufCommand.parseAsRoot(arguments)
        try command.run()
        return 0
    } catch let failure as CLIError {
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

import Foundation
import Testing

@Suite("The CLI as people expect it")
struct HelpTests {
    static let subcommands = [
        [], ["demo"], ["ops"], ["ops", "list"], ["ops", "demo"], ["topo"], ["topo", "show"], ["topo", "explain"], ["simulate"],
        ["conformance"], ["ls"], ["probe"], ["cuda-export"],
    ]

    @Test("Every subcommand's --help has an example", arguments: subcommands)
    func helpHasExample(path: [String]) throws {
        let result = try runDMABuf(path + ["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("Examples:"), "dmabuf \(path.joined(separator: " ")) --help")
        #expect(result.stdout.contains("dmabuf"))
    }

    @Test("Every subcommand is listed under the root's help")
    func rootListsAll() throws {
        let help = try runDMABuf(["--help"]).stdout
        for name in ["demo", "ops", "topo", "simulate", "conformance", "ls", "probe", "cuda-export"] {
            #expect(help.contains("  \(name) "), "\(name)")
        }
        #expect(help.contains("Exit codes: 0 ok, 1 an expectation failed, 2 bad input."))
    }

    @Test("Completion scripts generate for bash, zsh and fish", arguments: ["bash", "zsh", "fish"])
    func completions(shell: String) throws {
        let result = try runDMABuf(["--generate-completion-script", shell])
        #expect(result.status == 0)
        #expect(result.stdout.contains("simulate") && result.stdout.contains("conformance"))
    }

    @Test("Output to a pipe has no colour and no box drawing")
    func plainWhenPiped() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PCITests/Fixtures/qemu-q35").path
        let topo = try runDMABuf(["topo", "--sysfs", fixtures, "--cpu", "intel:0x6"]).stdout
        #expect(!topo.contains("├") && !topo.contains("\u{1B}["))
        let trace = try runDMABuf(["simulate", "--story", "2"]).stdout
        #expect(!trace.contains("\u{1B}["))
    }
}

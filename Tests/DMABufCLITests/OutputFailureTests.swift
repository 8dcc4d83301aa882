import Foundation
import Testing

/// Issue [O] class 7: `--json > /dev/full` or to a closed standard output exited 0 with nothing
/// written.
@Suite("Output that cannot be written is an error, not a silent success")
struct OutputFailureTests {
    /// Runs `dmabuf ARGS` through the shell with `redirect` and returns its status and stderr.
    static func shell(_ arguments: String, _ redirect: String) throws -> (status: Int32, stderr: String) {
        let command = "'\(builtProduct("dmabuf").path)' \(arguments) \(redirect)"
        let result = try runChild(URL(fileURLWithPath: "/bin/sh"), ["-c", command])
        return (result.status, String(decoding: result.stderr, as: UTF8.self))
    }

    @Test("ops list --json and simulate --story 1 --json to /dev/full or a closed stdout exit 2 and say why", arguments: [
        "ops list --json", "simulate --story 1 --json", "ops list",
    ])
    func unwritable(_ arguments: String) throws {
        for redirect in [">/dev/full", ">&-"] {
            let result = try Self.shell(arguments, redirect)
            #expect(result.status == 2, "\(arguments) \(redirect): \(result.stderr)")
            #expect(result.stderr.contains("cannot write the output"), "\(arguments) \(redirect): \(result.stderr)")
        }
        #expect(try Self.shell(arguments, ">/dev/null").status == 0)
    }
}

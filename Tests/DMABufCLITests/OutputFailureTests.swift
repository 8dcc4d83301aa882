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

/// Issue [O] classes 1 and 7 for the files a person names: `--file /dev/stdin` from a pipe failed,
/// and `/dev/zero` would be read without end.
@Suite("Named input files: a pipe works, a file that never ends is refused")
struct InputFileCLITests {
    static let topology = """
        devices:
          - {bdf: "0000:00:01.0", vendor: 0x8086, device: 1, class: 0x060400, port: root-port}
          - {bdf: "0000:01:00.0", vendor: 0x10de, device: 0x2335, class: 0x030200, parent: "0000:00:01.0"}

        """

    @Test("topo --file /dev/stdin and simulate /dev/stdin read a pipe")
    func pipe() throws {
        let dmabuf = builtProduct("dmabuf").path
        let topo = try runChild(
            URL(fileURLWithPath: "/bin/sh"), ["-c", "printf '%s' '\(Self.topology)' | '\(dmabuf)' topo --file /dev/stdin --cpu intel:0x6"])
        #expect(topo.status == 0, "\(String(decoding: topo.stderr, as: UTF8.self))")
        #expect(String(decoding: topo.stdout, as: UTF8.self).contains("01:00.0  3D controller"), "\(String(decoding: topo.stdout, as: UTF8.self))")
        let scenario = "buffers:\n  - {name: b, exporter: system-heap, size: 4096}\n"
        let simulate = try runChild(URL(fileURLWithPath: "/bin/sh"), ["-c", "printf '%s' '\(scenario)' | '\(dmabuf)' simulate /dev/stdin"])
        #expect(simulate.status == 0, "\(String(decoding: simulate.stderr, as: UTF8.self))")
    }

    @Test("topo --file /dev/zero and simulate on a folder are exit 2 with the file and reason named")
    func endless() throws {
        let zero = try runDMABuf(["topo", "--file", "/dev/zero", "--cpu", "intel:0x6"])
        #expect(zero.status == 2 && zero.stderr.contains("/dev/zero") && zero.stderr.contains("more than"), "\(zero.stderr)")
        let folder = try runDMABuf(["simulate", "/"])
        #expect(folder.status == 2 && folder.stderr.contains("folder"), "\(folder.stderr)")
    }
}

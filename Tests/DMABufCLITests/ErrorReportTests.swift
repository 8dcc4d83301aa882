import Foundation
import Testing

/// Issue [N] item 6: the tool words every error in one place, `error: ERRNO: message`, with the
/// errno of the model error or of the file that could not be loaded; the exit code stays 2.
@Suite("The tool's errors: error: ERRNO: message, exit code 2")
struct ErrorReportTests {
    static func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("a topology file and a scenario file that cannot be loaded say their errno", arguments: [
        (["topo", "--file"], "devices: [\n  {bdf: \n", "EINVAL"),
        (["simulate"], "steps: [\n  {op: \n", "EINVAL"),
        (["topo", "--file"], "devices:\n  - {bdf: \"0000:01:00.0\", vendor: 1, device: 1, class: 0x020000, bars: [{index: 0, start: 0xfffffffffffff000, size: 0x2000}]}\n", "EOVERFLOW"),
    ] as [([String], String, String)])
    func fileErrors(_ command: [String], _ text: String, _ errno: String) throws {
        let path = try Self.write(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try runDMABuf(command + [path])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("error: \(errno): \(path):"), "\(result.stderr)")
    }

    @Test("a missing file is ENOENT; a model error (an ops name nobody registered) keeps its errno")
    func openAndModelErrors() throws {
        let missing = try runDMABuf(["simulate", "/nonexistent/scenario.yaml"])
        #expect(missing.status == 2 && missing.stderr.hasPrefix("error: ENOENT: /nonexistent/scenario.yaml"), "\(missing.stderr)")
        let ops = try runDMABuf(["conformance", "--ops", "nosuch"])
        #expect(ops.status == 2 && ops.stderr.hasPrefix("error: ENOENT: no DMA ops named 'nosuch'"), "\(ops.stderr)")
        let cpu = try runDMABuf(["topo", "--file", "/nonexistent/t.yaml", "--cpu", "sparc"])
        #expect(cpu.status == 2 && cpu.stderr.hasPrefix("error: EINVAL: ") && cpu.stderr.contains("(--cpu)"), "\(cpu.stderr)")
    }

    @Test("output that cannot be written is worded the same way: /dev/full is ENOSPC")
    func unwritableOutput() throws {
        let command = "'\(builtProduct("dmabuf").path)' ops list --json >/dev/full"
        let result = try runChild(URL(fileURLWithPath: "/bin/sh"), ["-c", command])
        let stderr = String(decoding: result.stderr, as: UTF8.self)
        #expect(result.status == 2 && stderr.hasPrefix("error: ENOSPC: cannot write the output"), "\(stderr)")
    }
}

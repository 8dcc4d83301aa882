import Foundation
import Testing

/// Runs a built executable of this package by name (it sits beside the test bundle).
func runProduct(_ name: String, _ arguments: [String] = []) throws -> (status: Int32, stdout: String) {
    let result = try runChild(builtProduct(name), arguments)
    return (result.status, String(decoding: result.stdout, as: UTF8.self))
}

@Suite("Examples: each story told with the library API, output compared")
struct ExampleTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Examples")

    @Test(
        "The example prints exactly its expected output",
        arguments: ["P2PSameSwitch", "P2PThroughHostBridge", "MigrateToSystemMemory", "HFICustomOps", "BounceBuffers32Bit", "VFIORevoke"])
    func example(name: String) throws {
        let expected = try String(contentsOf: Self.examples.appendingPathComponent("\(name)/expected-output.txt"), encoding: .utf8)
        let result = try runProduct(name)
        #expect(result.status == 0)
        #expect(result.stdout == expected)
        #expect(result.stdout.hasSuffix("DMA-API debug reports: 0\n"))
    }
}

@Suite("dmabuf demo and dmabuf simulate")
struct StoryCLITests {
    @Test("dmabuf demo runs the six stories and ends with the summary table; exit 0")
    func demo() throws {
        let result = try runDMABuf(["demo"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Summary\n"))
        for n in 1...6 { #expect(result.stdout.contains("\n\(n)  ")) }
        #expect(result.stdout.contains("zero-copy") && result.stdout.contains("1 MiB migrated") && result.stdout.contains("64 KiB bounced"))
    }

    @Test("dmabuf demo --json prints one object per story with the documented keys")
    func demoJSON() throws {
        let result = try runDMABuf(["demo", "--json"])
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 6)
        for (i, line) in lines.enumerated() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            for key in ["story", "title", "ok", "placement", "mapType", "bouncedBytes", "migratedBytes", "errno", "notified"] {
                #expect(object.keys.contains(key), "story \(i + 1) lacks \(key)")
            }
            #expect(object["story"] as? Int == i + 1 && object["ok"] as? Bool == true)
        }
    }

    @Test("dmabuf simulate --json: one object per step with index, op, ok, errno, message; map fields on maps")
    func simulateJSON() throws {
        let result = try runDMABuf(["simulate", "--story", "3", "--json"])
        #expect(result.status == 0)
        let objects = try result.stdout.split(separator: "\n").map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let steps = objects.dropLast()
        #expect(steps.allSatisfy { ["index", "op", "ok", "errno", "message"].allSatisfy($0.keys.contains) })
        let map = try #require(steps.first { $0["op"] as? String == "map" })
        for key in ["peerToPeer", "placement", "mapType", "segments", "bouncedBytes", "migratedBytes"] { #expect(map.keys.contains(key)) }
        #expect(map["migratedBytes"] as? Int == 1 << 20)
        #expect(objects.last?["summary"] as? Bool == true)
    }

    @Test("A scenario that does not go as expected exits 1; a malformed one exits 2 naming the line")
    func exitCodes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scn-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let failing = dir.appendingPathComponent("fail.yaml")
        try Data("""
            buffers: [{name: heap, exporter: system-heap, size: 8KiB}]
            importers: [{name: nic, device: "0000:04:00.0"}]
            steps:
              - map: {importer: nic, buffer: heap}
            """.utf8).write(to: failing)
        let result = try runDMABuf(["simulate", failing.path])
        #expect(result.status == 1)
        #expect(result.stdout.contains("ENODEV"))
        let malformed = dir.appendingPathComponent("bad.yaml")
        try Data("steps:\n  - teleport: {}\n".utf8).write(to: malformed)
        let bad = try runDMABuf(["simulate", malformed.path])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("bad.yaml:2:"))
    }
}

@Suite("dmabuf cuda-export without a GPU")
struct CUDAExportCLITests {
    @Test("Where libcuda is absent, cuda-export says so clearly and exits 1")
    func absent() throws {
        let result = try runDMABuf(["cuda-export", "--library", "/nonexistent/libcuda.so.1"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("is not installed on this machine"))
        let bad = try runDMABuf(["cuda-export", "--size", "1000"])
        #expect(bad.status == 2)
    }
}

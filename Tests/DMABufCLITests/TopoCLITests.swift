import Foundation
import Testing

@Suite("dmabuf topo")
struct TopoCLITests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("PCITests/Fixtures")
    static let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("docs")

    @Test("--json keeps the documented contract on the H200 fixture")
    func jsonContract() throws {
        let result = try runDMABuf(["topo", "--sysfs", Self.fixtures.appendingPathComponent("h200-vm").path, "--cpu", "intel:0x6", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["cpu"] as? String == "intel:0x6")
        let devices = try #require(object["devices"] as? [[String: Any]])
        #expect(devices.count == 7)
        for key in ["bdf", "vendor", "device", "class", "parent", "hostBridge", "acsRedirect", "bars"] {
            #expect(devices.allSatisfy { $0.keys.contains(key) }, "key \(key)")
        }
        let gpu = try #require(devices.first { $0["bdf"] as? String == "0000:00:06.0" })
        #expect(gpu["vendor"] as? String == "0x10de" && gpu["class"] as? String == "0x030200")
        #expect(gpu["parent"] is NSNull)
        let bars = try #require(gpu["bars"] as? [[String: Any]])
        #expect(bars.map { $0["size"] as? Int } == [16 << 20, 256 << 30, 32 << 20])
        #expect(bars[1]["start"] as? String == "0x100000000000")
        let pairs = try #require(object["pairs"] as? [[String: Any]])
        #expect(pairs.count == 30)
        #expect(pairs.allSatisfy { $0["mapType"] as? String == "not-supported" && $0["distance"] as? Int == -1 && $0["link"] as? String == "PHB" })
    }

    @Test("The plain report is a tree with the BARs, and --pairs adds the verdict matrix")
    func plain() throws {
        let result = try runDMABuf(["topo", "--sysfs", Self.fixtures.appendingPathComponent("qemu-q35").path, "--cpu", "amd:0x19", "--pairs"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("|     |  \\- 04:00.0  Non-Volatile memory controller [1b36:0010]"))
        #expect(result.stdout.contains("BAR2 16 MiB at 0xfa000000"))
        #expect(result.stdout.contains("B4 [PIX]"))
        #expect(result.stdout.contains("H"))
    }

    @Test("explain names the whitelist miss and the CPU rule, and exits 0")
    func explain() throws {
        let result = try runDMABuf([
            "topo", "explain", "0000:00:06.0", "0000:00:03.0", "--sysfs", Self.fixtures.appendingPathComponent("h200-vm").path,
            "--cpu", "intel:0x6",
        ])
        #expect(result.status == 0)
        #expect(result.stdout.contains("Common upstream device: none"))
        #expect(result.stdout.contains("identity device 0000:00:00.0 [8086:0d57], not on the whitelist"))
        #expect(result.stdout.contains("Verdict: not-supported, distance -1"))
        #expect(result.stdout.contains("Remedy: host bridge 8086:0d57 is not whitelisted"))
    }

    @Test("Bad input exits 2 with a message naming the problem")
    func badInput() throws {
        let missing = try runDMABuf(["topo", "--file", "/nonexistent/topo.yaml"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("/nonexistent/topo.yaml"))
        let cpu = try runDMABuf(["topo", "--sysfs", Self.fixtures.appendingPathComponent("h200-vm").path, "--cpu", "sparc"])
        #expect(cpu.status == 2)
        #expect(cpu.stderr.contains("VENDOR:FAMILY"))
        let unknown = try runDMABuf(["topo", "explain", "0000:00:06.0", "0000:00:09.0", "--sysfs", Self.fixtures.appendingPathComponent("h200-vm").path])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("no PCI device 0000:00:09.0"))
        // Which argument it was, echoed as given (issue [O] class 6).
        #expect(unknown.stderr.contains("the client is not there") && unknown.stderr.contains("<client> '0000:00:09.0'"), "\(unknown.stderr)")
        let malformed = try runDMABuf(["topo", "explain", "0000:00:06.0\u{1B}[2J", "0000:00:03.0", "--sysfs", Self.fixtures.appendingPathComponent("h200-vm").path])
        #expect(malformed.status == 2 && malformed.stderr.contains("<provider> '0000:00:06.0\\u{1B}[2J'"), "\(malformed.stderr)")
        let both = try runDMABuf(["topo", "--sysfs", "/sys", "--file", "x.yaml"])
        #expect(both.status == 2)
    }

    @Test("driver names and warnings with escape sequences are printed escaped in the tree")
    func escapes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("topo-escapes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("t.yaml").path
        let yaml = """
            warnings: ["bad \\e[2J warning"]
            devices:
              - {bdf: "0000:00:01.0", vendor: 1, device: 1, class: 0x020000, driver: "nv\\e]0;owned\\a"}

            """
        #expect(FileManager.default.createFile(atPath: file, contents: Data(yaml.utf8)))
        let result = try runDMABuf(["topo", "--file", file, "--cpu", "intel:0x6"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x07 }, "\(result.stdout.debugDescription)")
        #expect(result.stdout.contains("nv\\u{1B}]0;owned\\u{7}") && result.stdout.contains("bad \\u{1B}[2J warning"), "\(result.stdout)")
    }

    @Test("--export-yaml writes a file that loads back to the same JSON report")
    func exportRoundTrip() throws {
        let sysfs = Self.fixtures.appendingPathComponent("qemu-q35").path
        let exported = try runDMABuf(["topo", "--sysfs", sysfs, "--cpu", "intel:0x6", "--export-yaml"])
        #expect(exported.status == 0)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("q35-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(exported.stdout.utf8).write(to: file)
        let fromYAML = try runDMABuf(["topo", "--file", file.path, "--json"])
        let fromSysfs = try runDMABuf(["topo", "--sysfs", sysfs, "--cpu", "intel:0x6", "--json"])
        #expect(fromYAML.status == 0)
        #expect(fromYAML.stdout == fromSysfs.stdout)
    }

    @Test("The annotated example in docs/topology.md loads and gives bus-address P2P under its switch")
    func documentedExample() throws {
        let text = try String(contentsOf: Self.docs.appendingPathComponent("topology.md"), encoding: .utf8)
        let start = try #require(text.range(of: "```yaml\n"))
        let end = try #require(text.range(of: "\n```", range: start.upperBound..<text.endIndex))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("doc-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(text[start.upperBound..<end.lowerBound].utf8).write(to: file)
        let result = try runDMABuf(["topo", "explain", "03:00.0", "04:00.0", "--file", file.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Verdict: bus-address, distance 4 (nvidia-smi link class: PIX)"))
    }
}

@Suite("dmabuf probe's topology section")
struct ProbeTopologyTests {
    @Test("The section sums up the H200 VM's sysfs copy: one host bridge, not whitelisted, every pair counted")
    func h200() throws {
        let sysfs = TopoCLITests.fixtures.appendingPathComponent("h200-vm").path
        let result = try runDMABuf(["probe", "--json", "--sys-root", sysfs])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let section = try #require(object["pciTopology"] as? [String: Any])
        #expect(section["devices"] as? Int == 7)
        #expect(section["providers"] as? Int == 8)
        let pairs = try #require(section["pairs"] as? [String: Int])
        #expect(pairs.values.reduce(0, +) == 30)
        let bridges = try #require(section["hostBridges"] as? [[String: Any]])
        #expect(bridges.first?["ids"] as? String == "8086:0d57" && bridges.first?["whitelisted"] as? Bool == false)
    }
}

import DMACore
import Foundation
import Testing

/// `--kernel VERSION|auto` on demo, simulate, topo and topo explain; the probe's
/// CONFIG_DMABUF_MOVE_NOTIFY on kernels without the symbol (docs/kernel-versions.md).
@Suite("dmabuf --kernel")
struct KernelVersionCLITests {
    static func lines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] }
    }

    @Test("dmabuf demo --kernel 6.12 --json and --kernel 7.1 --json differ as the kernel does: story 1 migrates on 6.12, story 6 does not exist there")
    func demoPerKernel() throws {
        let old = try runDMABuf(["demo", "--kernel", "6.12", "--json"])
        let new = try runDMABuf(["demo", "--kernel", "7.1", "--json"])
        #expect(old.status == 0 && new.status == 0, "\(old.stderr) \(new.stderr)")
        let o = try Self.lines(old.stdout)
        let n = try Self.lines(new.stdout)
        #expect(o.count == 6 && n.count == 6)
        #expect(o[0]["placement"] as? String == "system" && o[0]["mapType"] as? String == "host" && o[0]["migratedBytes"] as? Int == 2 << 20)
        #expect(n[0]["placement"] as? String == "vram" && n[0]["mapType"] as? String == "bus-address" && n[0]["migratedBytes"] as? Int == 0)
        #expect(o[1]["mapType"] as? String == "host" && n[1]["mapType"] as? String == "through-host-bridge")
        #expect(o[5]["errno"] as? String == "ENOTTY" && n[5]["errno"] as? String == "ENODEV")
        #expect((o[5]["kernel"] as? String)?.contains("6.19") == true)
        for (index, object) in o.enumerated() {
            #expect(object["ok"] as? Bool == true, "story \(index + 1)")
            #expect((object["kernelRules"] as? [String: String]) == ["version": "6.12", "moveNotify": "not set"])
        }
        for object in n { #expect((object["kernelRules"] as? [String: String]) == ["version": "7.1", "moveNotify": "absent (always on since 7.1)"]) }
        let text = try runDMABuf(["demo", "--kernel", "6.12+move-notify"])
        #expect(text.status == 0 && text.stdout.contains("follows Linux 6.12 (CONFIG_DMABUF_MOVE_NOTIFY y)"))
    }

    @Test("Without --kernel the demo follows the newest release, 7.3, and its JSON has no kernelRules key")
    func demoDefault() throws {
        let result = try runDMABuf(["demo", "--json"])
        #expect(result.status == 0)
        let objects = try Self.lines(result.stdout)
        #expect(objects.count == 6 && objects.allSatisfy { $0["kernelRules"] == nil })
        #expect(objects[0]["mapType"] as? String == "bus-address")
        let text = try runDMABuf(["demo", "--story", "1"])
        #expect(text.stdout.hasPrefix("DMABufKit: six stories of sharing device memory, on a simulated machine that follows Linux 7.3\n"))
        #expect(!text.stdout.contains("Kernel rules:"))
    }

    @Test("dmabuf simulate --kernel is honoured for a story and a file, and overrides the file's kernel:")
    func simulate() throws {
        let story1 = try runDMABuf(["simulate", "--story", "1", "--kernel", "6.12", "--json"])
        #expect(story1.status == 0, "\(story1.stdout)")
        let summary = try Self.lines(story1.stdout).last ?? [:]
        #expect(summary["summary"] as? Bool == true && (summary["kernelRules"] as? [String: String])?["version"] == "6.12")
        let story6 = try runDMABuf(["simulate", "--story", "6", "--kernel", "6.12"])
        #expect(story6.status == 1 && story6.stdout.contains("ENOTTY: VFIO_DEVICE_FEATURE_DMA_BUF does not exist in Linux 6.12"))

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dmabufkit-k-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("s.yaml").path
        let scenario = """
            kernel: 6.12
            buffers:
              - {name: vram, exporter: gpu-vram, device: "0000:03:00.0", size: 64KiB}
            importers:
              - {name: nic, device: "0000:04:00.0", kind: device, dynamic: true, allowPeerToPeer: true}
            steps:
              - attach: {importer: nic, buffer: vram}
              - map: {importer: nic, buffer: vram, expect: {placement: system, migratedBytes: 65536}}
              - unmap: {importer: nic, buffer: vram}
              - detach: {importer: nic, buffer: vram}
            """
        try Data(scenario.utf8).write(to: URL(fileURLWithPath: file))
        let fromFile = try runDMABuf(["simulate", file])
        #expect(fromFile.status == 0 && fromFile.stdout.contains("Kernel rules: Linux 6.12 (CONFIG_DMABUF_MOVE_NOTIFY not set)"), "\(fromFile.stdout)")
        let overridden = try runDMABuf(["simulate", file, "--kernel", "7.1"])
        #expect(overridden.status == 1 && overridden.stdout.contains("Kernel rules: Linux 7.1;"), "7.1 keeps the buffer in VRAM")
    }

    @Test("topo and topo explain take --kernel; their JSON says which rule set only when it is given")
    func topo() throws {
        let sysfs = TopoCLITests.fixtures.appendingPathComponent("h200-vm").path
        let plain = try runDMABuf(["topo", "--sysfs", sysfs, "--cpu", "intel:0x6", "--json"])
        let named = try runDMABuf(["topo", "--sysfs", sysfs, "--cpu", "intel:0x6", "--json", "--kernel", "6.17"])
        #expect(plain.status == 0 && named.status == 0, "\(named.stderr)")
        let p = try JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as? [String: Any]
        let n = try JSONSerialization.jsonObject(with: Data(named.stdout.utf8)) as? [String: Any]
        #expect(p?["kernelRules"] == nil)
        #expect((n?["kernelRules"] as? [String: String])?["version"] == "6.17")
        #expect(Set(n?.keys.map { $0 } ?? []) == Set(p?.keys.map { $0 } ?? []).union(["kernelRules"]))
        let explain = try runDMABuf(["topo", "explain", "0000:00:06.0", "0000:00:03.0", "--sysfs", sysfs, "--cpu", "intel:0x6", "--kernel", "6.17"])
        #expect(explain.status == 0 && explain.stdout.contains("mapped with dma_map_resource"))
        let explainJSON = try runDMABuf(["topo", "explain", "0000:00:06.0", "0000:00:03.0", "--sysfs", sysfs, "--cpu", "intel:0x6", "--json", "--kernel", "auto"])
        #expect(explainJSON.status == 0)
        #expect((try JSONSerialization.jsonObject(with: Data(explainJSON.stdout.utf8)) as? [String: Any])?["kernelRules"] != nil)
    }

    @Test("topo explain --kernel follows that release's P2PDMA host-bridge rules: an AMD Zen CPU routes from 5.9 (cpu_supports_p2pdma), not on 5.8")
    func topoHostBridgeRulesPerRelease() throws {
        let sysfs = TopoCLITests.fixtures.appendingPathComponent("h200-vm").path
        func explain(_ kernel: String) throws -> (status: Int32, stdout: String, json: [String: Any]?) {
            let text = try runDMABuf(["topo", "explain", "0000:00:06.0", "0000:00:03.0", "--sysfs", sysfs, "--cpu", "amd:0x19", "--kernel", kernel])
            let json = try runDMABuf(["topo", "explain", "0000:00:06.0", "0000:00:03.0", "--sysfs", sysfs, "--cpu", "amd:0x19", "--kernel", kernel, "--json"])
            return (text.status, text.stdout, try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        }
        let old = try explain("5.8")
        #expect(old.status == 0 && old.stdout.contains("an AMD Zen, but Linux 5.8 has no cpu_supports_p2pdma (5.9)"), "\(old.stdout)")
        #expect(old.stdout.contains("the P2PDMA host-bridge whitelist has 12 entries and no CPU rule"))
        #expect((old.json?["verdict"] as? [String: Any])?["mapType"] as? String == "not-supported")
        let new = try explain("5.9")
        #expect((new.json?["verdict"] as? [String: Any])?["mapType"] as? String == "through-host-bridge")
        #expect(new.json?["cpuSupportsP2P"] as? Bool == true)
        let table = try runDMABuf(["topo", "--sysfs", sysfs, "--cpu", "amd:0x19", "--kernel", "5.8"])
        #expect(table.stdout.contains("an AMD Zen, but Linux 5.8 has no cpu_supports_p2pdma (5.9)"))
    }

    @Test("A --kernel the model has no rules for is exit 2 (bad input) naming the forms accepted")
    func badKernel() throws {
        for arguments in [["demo", "--kernel", "4.4"], ["simulate", "--story", "1", "--kernel", "7.1+move-notify"], ["topo", "--kernel", "x"]] {
            let result = try runDMABuf(arguments)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("kernel"), "\(result.stderr)")
        }
    }

    @Test("docs/kernel-versions.md has a row for every version-dependent rule with its release and kernel file")
    func docsTable() throws {
        let text = try String(contentsOf: TopoCLITests.docs.appendingPathComponent("kernel-versions.md"), encoding: .utf8)
        for rule in KernelRule.allCases {
            let row = text.split(separator: "\n").first { $0.hasPrefix("| `\(rule.rawValue)` |") }
            #expect(row?.contains("| \(rule.introduced) |") == true, "\(rule)")
            for file in rule.kernelFile.split(separator: ",") {
                #expect(row?.contains(file.trimmingCharacters(in: .whitespaces)) == true, "\(rule): \(file)")
            }
        }
    }

    @Test("dmabuf probe escapes what a tree says: a release and a config value carrying terminal escapes, a 5,000-character value")
    func probeEscapes() throws {
        let tree = try RealKernelCLITests.Tree()
        let release = "6.12.95\u{1B}]0;owned\u{07}"
        try tree.write("sys/kernel/osrelease", release + "\n")
        try tree.write("boot/config-\(release)", "CONFIG_UDMABUF=\u{1B}[2J\nCONFIG_DMABUF_HEAPS=" + String(repeating: "y", count: 5000) + "\n")
        try FileManager.default.createDirectory(atPath: tree.path + "/dev", withIntermediateDirectories: true)
        let text = try runDMABuf(["probe", "--proc-root", tree.path, "--dev-root", tree.path + "/dev", "--boot-root", tree.path + "/boot"])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(!text.stdout.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 }, "\(text.stdout.debugDescription)")
        #expect(text.stdout.contains("release 6.12.95\\u{1B}]0;owned\\u{7}"), "\(text.stdout)")
        #expect(text.stdout.contains("CONFIG_UDMABUF=\\u{1B}[2J"), "\(text.stdout)")
        #expect(text.stdout.split(separator: "\n").allSatisfy { $0.count < 1100 }, "a line past the limit")
    }

    @Test("dmabuf probe: CONFIG_DMABUF_MOVE_NOTIFY is absent (always on since 7.1) on a 7.x kernel, not set on Debian's 6.12")
    func probeMoveNotify() throws {
        for (release, config, expected) in [
            ("7.3.4-amd64", "CONFIG_PCI_P2PDMA=y\n", "absent (always on since 7.1)"),
            ("6.12.95+deb12-amd64", "# CONFIG_DMABUF_MOVE_NOTIFY is not set\n", "not set"),
            ("6.12.95+deb12-amd64", "CONFIG_DMABUF_MOVE_NOTIFY=y\n", "y"),
        ] {
            let tree = try RealKernelCLITests.Tree()
            try tree.write("sys/kernel/osrelease", release + "\n")
            try tree.write("boot/config-\(release)", config)
            try FileManager.default.createDirectory(atPath: tree.path + "/dev", withIntermediateDirectories: true)
            let arguments = ["probe", "--proc-root", tree.path, "--dev-root", tree.path + "/dev", "--boot-root", tree.path + "/boot"]
            let text = try runDMABuf(arguments)
            #expect(text.stdout.contains("CONFIG_DMABUF_MOVE_NOTIFY=\(expected)\n"), "\(release): \(text.stdout)")
            let json = try runDMABuf(arguments + ["--json"])
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            let options = (object?["kernelConfig"] as? [String: Any])?["options"] as? [String: String]
            #expect(options?["CONFIG_DMABUF_MOVE_NOTIFY"] == expected)
        }
    }
}

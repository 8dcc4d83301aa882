import DMABufCLI
import DMACore
import Foundation
import LinuxDMABuf
import Testing

@Suite("dmabuf ls and dmabuf probe on trees made by the test")
struct RealKernelCLITests {
    /// A folder made for one test and removed when the value goes away.
    final class Tree {
        let path: String
        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("dmabufkit-cli-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        func write(_ relative: String, _ text: String) throws {
            let url = URL(fileURLWithPath: path + "/" + relative)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        func link(_ relative: String, to target: String) throws {
            let url = URL(fileURLWithPath: path + "/" + relative)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: url.path, withDestinationPath: target)
        }
    }

    static func proc() throws -> Tree {
        let tree = try Tree()
        try tree.write("42/comm", "renderer\n")
        try tree.link("42/fd/7", to: "/dmabuf:frame")
        try tree.write("42/fdinfo/7", "pos:\t0\nflags:\t02000002\nmnt_id:\t12\nino:\t3\nsize:\t16384\ncount:\t1\nexp_name:\tudmabuf\nname:\tframe\n")
        try tree.write("42/maps", "7f0000000000-7f0000004000 rw-s 00000000 00:0c 3 /dmabuf:frame\n")
        try tree.write("sys/kernel/osrelease", "6.12.95+deb12-amd64\n")
        return tree
    }

    @Test("dmabuf ls --json reads the census of a procfs tree")
    func lsJSON() throws {
        let tree = try Self.proc()
        let result = try runDMABuf(["ls", "--json", "--proc-root", tree.path])
        #expect(result.status == 0, "\(result.stderr)")
        let census = try JSONDecoder().decode(DMABufCensus.self, from: Data(result.stdout.utf8))
        #expect(census.buffers.count == 1)
        #expect(census.buffers.first?.exporter == "udmabuf" && census.buffers.first?.holders.first?.fds == [7])
        #expect(census.buffers.first?.holders.first?.mappedBytes == 16384)
        #expect(census.totals.map(\.exporter) == ["udmabuf"] && census.totals.first?.bytes == 16384 && census.totals.first?.buffers == 1)
    }

    @Test("dmabuf ls prints each buffer with its holders and the totals per exporter")
    func lsText() throws {
        let tree = try Self.proc()
        let result = try runDMABuf(["ls", "--proc-root", tree.path])
        #expect(result.status == 0)
        #expect(result.stdout.contains("udmabuf"))
        #expect(result.stdout.contains("held by 42 (renderer): fd 7; 1 mapping, 16384 bytes"))
        #expect(result.stdout.contains("Totals by exporter:"))
        #expect(result.stdout.contains("1 dma-bufs, 16384 bytes; 1 processes scanned."))
        try tree.write("43/comm", "idle\n")
        try FileManager.default.createDirectory(atPath: tree.path + "/43/fd", withIntermediateDirectories: true)
        let empty = try runDMABuf(["ls", "--proc-root", tree.path, "--pid", "43"])
        #expect(empty.stdout.contains("No dma-buf is held"))
    }

    @Test("dmabuf ls --pid of a process that never existed, and a --proc-root that is not there, are exit 2 naming them")
    func lsMissing() throws {
        let tree = try Self.proc()
        let never = try runDMABuf(["ls", "--proc-root", tree.path, "--pid", "1"])
        #expect(never.status == 2 && never.stderr.contains("ESRCH") && never.stderr.contains("no process 1"), "\(never.stderr)")
        #expect(!never.stdout.contains("exited during the census"))
        let missing = try runDMABuf(["ls", "--proc-root", tree.path + "/nowhere"])
        #expect(missing.status == 2 && missing.stderr.contains("/nowhere") && missing.stderr.contains("ENOENT"), "\(missing.stderr)")
    }

    @Test("an unreadable file is reported as such; as root the tool does not say 'run as root'")
    func lsUnreadable() throws {
        let tree = try Self.proc()
        try tree.link("42/fd/8", to: "/dmabuf:frame")
        #expect(mkfifo(tree.path + "/42/fdinfo/8", 0o600) == 0)
        let result = try runDMABuf(["ls", "--proc-root", tree.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("pid 42 fdinfo/8 EINVAL"), "\(result.stdout)")
        #expect(result.stdout.contains("run as root") == (geteuid() != 0), "\(result.stdout)")
    }

    @Test("a process name and a buffer name with escape sequences are printed escaped")
    func lsEscapes() throws {
        let tree = try Self.proc()
        try tree.write("60/comm", "evil\u{1B}[2J\n")
        try tree.link("60/fd/3", to: "/dmabuf:x")
        try tree.write("60/fdinfo/3", "pos:\t0\nflags:\t02\nmnt_id:\t12\nino:\t60\nsize:\t4096\ncount:\t1\nexp_name:\tsys\u{7}tem\nname:\tn\u{1B}]0;t\u{7}\n")
        try tree.write("60/maps", "")
        let result = try runDMABuf(["ls", "--proc-root", tree.path])
        #expect(result.status == 0)
        #expect(!result.stdout.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x07 }, "\(result.stdout.debugDescription)")
        #expect(result.stdout.contains("evil\\u{1B}[2J"), "\(result.stdout)")
    }

    @Test("dmabuf ls on sizes near 2^63 in two exporters prints without a trap")
    func lsHugeSizes() throws {
        let tree = try Self.proc()
        for (pid, exporter) in [(50, "system"), (51, "udmabuf")] {
            try tree.write("\(pid)/comm", "p\n")
            try tree.link("\(pid)/fd/3", to: "/dmabuf:x")
            try tree.write("\(pid)/fdinfo/3", "pos:\t0\nflags:\t02\nmnt_id:\t12\nino:\t\(pid)\nsize:\t\(Int.max - 1)\ncount:\t1\nexp_name:\t\(exporter)\n")
            try tree.write("\(pid)/maps", "")
        }
        let result = try runDMABuf(["ls", "--proc-root", tree.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("3 dma-bufs, \(Int.max) bytes"), "\(result.stdout)")
    }

    @Test("dmabuf probe reports no DRM, absent exporters and the config facts of a tree")
    func probe() throws {
        let tree = try Self.proc()
        try tree.write("boot/config-6.12.95+deb12-amd64", "CONFIG_UDMABUF=y\nCONFIG_DMABUF_HEAPS=y\nCONFIG_SWIOTLB=y\n")
        try FileManager.default.createDirectory(atPath: tree.path + "/dev", withIntermediateDirectories: true)
        let arguments = ["probe", "--proc-root", tree.path, "--dev-root", tree.path + "/dev", "--boot-root", tree.path + "/boot"]
        let text = try runDMABuf(arguments)
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("none ("))
        #expect(text.stdout.contains("udmabuf: absent"))
        #expect(text.stdout.contains("CONFIG_UDMABUF=y"))
        #expect(text.stdout.contains("CONFIG_PCI_P2PDMA=not set"))
        let json = try runDMABuf(arguments + ["--json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(Set(object?.keys.map { $0 } ?? []) == ["drm", "exporters", "kernelConfig", "pciTopology"])
        let config = object?["kernelConfig"] as? [String: Any]
        #expect(config?["release"] as? String == "6.12.95+deb12-amd64")
        #expect((config?["options"] as? [String: String])?["CONFIG_DMABUF_HEAPS"] == "y")
        #expect((object?["exporters"] as? [String: Any])?["udmabuf"] as? String == "absent")
    }

    @Test("The probe's sections are the extension point: keys are unique and in order")
    func sections() {
        let keys = DMABufCommand.Probe.sections.map(\.key)
        #expect(keys == ["drm", "exporters", "kernelConfig", "pciTopology"])
    }
}

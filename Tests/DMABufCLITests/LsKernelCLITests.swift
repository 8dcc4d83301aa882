import DMABufCLI
import DMACore
import Foundation
import LinuxDMABuf
import Testing

@Suite("dmabuf ls --kernel on captured /proc and debugfs copies")
struct LsKernelCLITests {
    typealias Tree = RealKernelCLITests.Tree

    /// A 6.12-style snapshot: vgem buffer 1 was imported into virtio_gpu (attached `virtio0`) and
    /// every fd closed, so only the kernel holds it; udmabuf buffer 3 was mapped by pid 42 and its
    /// fd closed (a mapping-only holder); heap buffer 4 is held by pids 42 and 43 by fd.
    static func snapshot() throws -> Tree {
        let tree = try Tree()
        let header = "size    \tflags   \tmode    \tcount   \texp_name\tino     \tname"
        let bufinfo = "\nDma-buf Objects:\n\(header)\n"
            + "00032768\t00000002\t00080003\t00000002\tsystem\t00000004\tframes\n"
            + "\twrite fence:stub stub seq 0 signalled\n\tAttached Devices:\nTotal 0 devices attached\n\n"
            + "00016384\t00000002\t00080003\t00000001\tudmabuf\t00000003\t<none>\n\tAttached Devices:\nTotal 0 devices attached\n\n"
            + "00016384\t00000002\t00080003\t00000002\tdrm\t00000001\tleaked\n\tAttached Devices:\n\tvirtio0\nTotal 1 devices attached\n\n"
            + "\nTotal 3 objects, 65536 bytes\n"
        try tree.write("debugfs/dma_buf/bufinfo", bufinfo)
        let heap = "pos:\t0\nflags:\t02000002\nmnt_id:\t12\nino:\t4\nsize:\t32768\ncount:\t2\nexp_name:\tsystem\nname:\tframes\n"
        try tree.write("proc/42/comm", "renderer\n")
        try tree.link("proc/42/fd/5", to: "/dmabuf:frames")
        try tree.write("proc/42/fdinfo/5", heap)
        try tree.write("proc/42/maps", "7f0000000000-7f0000004000 rw-s 00000000 00:0c 3 /dmabuf:\n")
        try tree.write("proc/43/comm", "encoder\n")
        try tree.link("proc/43/fd/9", to: "/dmabuf:frames")
        try tree.write("proc/43/fdinfo/9", heap)
        try tree.write("proc/43/maps", "")
        try tree.write("proc/sys/kernel/osrelease", "6.12.95+deb12-amd64\n")
        return tree
    }

    @Test("--kernel --json lists the buffer only the kernel holds, with its attached device; plain ls does not")
    func json() throws {
        let tree = try Self.snapshot()
        let result = try runDMABuf(["ls", "--kernel", "--json", "--proc", tree.path + "/proc", "--debugfs", tree.path + "/debugfs"])
        #expect(result.status == 0, "\(result.stderr)")
        let view = try JSONDecoder().decode(DMABufKernelView.self, from: Data(result.stdout.utf8))
        #expect(view.source.readable && view.source.kernelRelease == "6.12.95+deb12-amd64")
        #expect(view.buffers.map(\.inode) == [1, 3, 4])
        #expect(view.buffers[0].heldByKernelOnly && view.buffers[0].attachedDevices == ["virtio0"] && view.buffers[0].name == "leaked")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let first = (object?["buffers"] as? [[String: Any]])?.first
        #expect(first?["heldByKernelOnly"] as? Bool == true && first?["attachedDevices"] as? [String] == ["virtio0"])
        #expect(view.buffers[1].holders.map(\.pid) == [42] && view.buffers[1].holders[0].fds.isEmpty && view.buffers[1].holders[0].mappings == 1)
        #expect(view.buffers[2].holders.map(\.pid) == [42, 43] && view.buffers[2].kernelReferences == 0)
        // Pss by hand: heap 32768 / 2 = 16384 to each; pid 42 also maps udmabuf 3 (16384) alone.
        #expect(view.processes.map(\.rss) == [49152, 32768] && view.processes.map(\.pss) == [32768, 16384])
        #expect(view.processes.map(\.fdRefs) == [1, 1] && view.processes.map(\.mapRefs) == [1, 0])
        #expect(view.exportedBytes == 65536 && view.userspaceBytes == 49152 && view.kernelOnlyBytes == 16384)
        let plain = try runDMABuf(["ls", "--json", "--proc", tree.path + "/proc"])
        let census = try JSONDecoder().decode(DMABufCensus.self, from: Data(plain.stdout.utf8))
        #expect(plain.status == 0 && census.buffers.map(\.inode) == [3, 4])
    }

    @Test("--kernel as text: held by the kernel only, attachments, fences, memory per process")
    func text() throws {
        let tree = try Self.snapshot()
        let result = try runDMABuf(["ls", "--kernel", "--proc", tree.path + "/proc", "--debugfs", tree.path + "/debugfs"])
        #expect(result.status == 0, "\(result.stderr)")
        let out = result.stdout
        #expect(out.contains("(kernel 6.12.95+deb12-amd64)"), "\(out)")
        #expect(out.contains("held by the kernel only: no process has an fd or a mapping of it (2 references in the kernel)"), "\(out)")
        #expect(out.contains("attached: virtio0"), "\(out)")
        #expect(out.contains("held by 42 (renderer): 1 mapping, 16384 bytes"), "\(out)")
        #expect(out.contains("write fence: stub stub seq 0 signalled"), "\(out)")
        #expect(out.contains("Memory per process"), "\(out)")
        #expect(out.contains("3 dma-bufs, 65536 bytes: processes hold 49152, the kernel alone 16384 (1 buffer)"), "\(out)")
        let pid = try runDMABuf(["ls", "--kernel", "--pid", "43", "--proc", tree.path + "/proc", "--debugfs", tree.path + "/debugfs"])
        #expect(pid.status == 0 && pid.stdout.contains("held by 43 (encoder): fd 9") && !pid.stdout.contains("leaked"), "\(pid.stdout)")
    }

    @Test("Without a readable debugfs: says so, what to run, and shows the /proc view")
    func noDebugfs() throws {
        let tree = try Self.snapshot()
        try FileManager.default.createDirectory(atPath: tree.path + "/empty", withIntermediateDirectories: true)
        let result = try runDMABuf(["ls", "--kernel", "--proc", tree.path + "/proc", "--debugfs", tree.path + "/empty"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("not readable") && result.stdout.contains("debugfs is not mounted"), "\(result.stdout)")
        #expect(result.stdout.contains("mount -t debugfs none \(tree.path)/empty (as root)"), "\(result.stdout)")
        #expect(result.stdout.contains("held by 43 (encoder): fd 9") && !result.stdout.contains("leaked"), "\(result.stdout)")
        let json = try runDMABuf(["ls", "--kernel", "--json", "--proc", tree.path + "/proc", "--debugfs", tree.path + "/empty"])
        let view = try JSONDecoder().decode(DMABufKernelView.self, from: Data(json.stdout.utf8))
        #expect(!view.source.readable && view.source.unavailable?.errno == "ENOENT" && view.buffers.map(\.inode) == [3, 4])
    }

    @Test("--capture writes only what it read, and reading the copy back gives the same view")
    func capture() throws {
        let tree = try Self.snapshot()
        try tree.write("proc/cpuinfo", "vendor_id\t: AuthenticAMD\ncpu family\t: 25\n")
        try tree.write("proc/44/comm", "idle\n")
        try tree.link("proc/44/fd/0", to: "/dev/null")
        try tree.write("proc/44/maps", "55d0c0000000-55d0c0021000 r-xp 00000000 fe:01 1234   /usr/bin/idle\n")
        try tree.write("proc/42/maps", "55d0c0000000-55d0c0021000 r-xp 00000000 fe:01 1234   /usr/bin/renderer\n7f0000000000-7f0000004000 rw-s 00000000 00:0c 3 /dmabuf:\n")
        let copy = tree.path + "/copy"
        let arguments = ["ls", "--kernel", "--json", "--proc", tree.path + "/proc", "--debugfs", tree.path + "/debugfs"]
        let first = try runDMABuf(arguments + ["--capture", copy])
        #expect(first.status == 0 && first.stderr.contains("dmabuf ls --kernel --proc \(copy)/proc --debugfs \(copy)/debugfs"), "\(first.stderr)")
        #expect(FileManager.default.fileExists(atPath: copy + "/debugfs/dma_buf/bufinfo"))
        #expect(!FileManager.default.fileExists(atPath: copy + "/proc/44"))
        // The CPU goes with the copy: the topology join judges the host-bridge rule with it.
        #expect(try String(contentsOfFile: copy + "/proc/cpuinfo", encoding: .utf8) == "vendor_id\t: AuthenticAMD\ncpu family\t: 25\n")
        let maps = try String(contentsOfFile: copy + "/proc/42/maps", encoding: .utf8)
        #expect(maps == "7f0000000000-7f0000004000 rw-s 00000000 00:0c 3 /dmabuf:\n")
        let again = try runDMABuf(["ls", "--kernel", "--json", "--proc", copy + "/proc", "--debugfs", copy + "/debugfs"])
        var original = try JSONDecoder().decode(DMABufKernelView.self, from: Data(first.stdout.utf8))
        var replayed = try JSONDecoder().decode(DMABufKernelView.self, from: Data(again.stdout.utf8))
        #expect(replayed.source.kernelRelease == "6.12.95+deb12-amd64")
        (original.source, replayed.source, original.processesScanned, replayed.processesScanned) = (replayed.source, replayed.source, 0, 0)
        #expect(original == replayed)
    }

    @Test("Without --kernel, dmabuf ls prints exactly what it printed before")
    func unchanged() throws {
        let tree = try Self.snapshot()
        let result = try runDMABuf(["ls", "--proc-root", tree.path + "/proc"])
        #expect(result.stdout == """
            INODE      SIZE  EXPORTER      NAME
            3             ?  ?             -
                  held by 42 (renderer): 1 mapping, 16384 bytes
            4         32768  system        frames
                  held by 42 (renderer): fd 5
                  held by 43 (encoder): fd 9

            Totals by exporter:
              ?               1 buffer             0 bytes
              system          1 buffer         32768 bytes
            2 dma-bufs, 32768 bytes; 2 processes scanned.

            """, "\(result.stdout)")
    }

    @Test("--diff BEFORE.json: a buffer leaked into the kernel, a new attachment and a process's new buffer show as growing lines")
    func diff() throws {
        let tree = try Self.snapshot()
        let arguments = ["ls", "--kernel", "--proc", tree.path + "/proc", "--debugfs", tree.path + "/debugfs"]
        let before = try runDMABuf(arguments + ["--json"])
        try tree.write("before.json", before.stdout)
        // One round of the leak: vgem buffer 5 imported into virtio0 and its fd closed; buffer 4
        // now also attached to vgem; pid 43 opened buffer 3 too.
        let bufinfo = try String(contentsOfFile: tree.path + "/debugfs/dma_buf/bufinfo", encoding: .utf8)
            .replacingOccurrences(of: "\tframes\n\twrite fence:stub stub seq 0 signalled\n\tAttached Devices:\nTotal 0 devices attached",
                                  with: "\tframes\n\twrite fence:stub stub seq 0 signalled\n\tAttached Devices:\n\tvgem\nTotal 1 devices attached")
            .replacingOccurrences(of: "\nDma-buf Objects:\n", with: "\nDma-buf Objects:\n")
        let header = "size    \tflags   \tmode    \tcount   \texp_name\tino     \tname\n"
        try tree.write("debugfs/dma_buf/bufinfo", bufinfo.replacingOccurrences(of: header, with: header
            + "00016384\t00000002\t00080003\t00000002\tdrm\t00000005\tleaked\n\tAttached Devices:\n\tvirtio0\nTotal 1 devices attached\n\n"))
        try tree.link("proc/43/fd/11", to: "/dmabuf:")
        try tree.write("proc/43/fdinfo/11", "pos:\t0\nflags:\t02\nmnt_id:\t12\nino:\t3\nsize:\t16384\ncount:\t2\nexp_name:\tudmabuf\n")
        let text = try runDMABuf(arguments + ["--diff", tree.path + "/before.json"])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("3 → 4 dma-bufs, 65536 → 81920 bytes; held by the kernel only 16384 → 32768 bytes"), "\(text.stdout)")
        #expect(text.stdout.contains("+ 5         16384  drm           leaked; held by the kernel only; attached: virtio0"), "\(text.stdout)")
        #expect(text.stdout.contains("4 (system): + vgem"), "\(text.stdout)")
        #expect(text.stdout.contains("drm                  1 → 2   (+1)        +16384"), "\(text.stdout)")
        #expect(text.stdout.contains("43 (encoder)         1 → 2   (+1)        +16384"), "\(text.stdout)")
        let json = try runDMABuf(arguments + ["--diff", tree.path + "/before.json", "--json"])
        let change = try JSONDecoder().decode(DMABufKernelDiff.self, from: Data(json.stdout.utf8))
        #expect(change.appeared.map(\.inode) == [5] && change.gone.isEmpty && change.attachments.map(\.attached) == [["vgem"]])
        #expect(change.processes.map(\.key) == ["43 (encoder)"] && change.kernelOnlyBytesAfter - change.kernelOnlyBytesBefore == 16384)
        // A plain `ls --json` is a baseline too; a file that is neither is exit 2.
        let plain = try runDMABuf(["ls", "--json", "--proc", tree.path + "/proc"])
        try tree.write("plain.json", plain.stdout)
        #expect(try runDMABuf(arguments + ["--diff", tree.path + "/plain.json"]).status == 0)
        try tree.write("bad.json", "{}")
        let bad = try runDMABuf(arguments + ["--diff", tree.path + "/bad.json"])
        #expect(bad.status == 2 && bad.stderr.contains("not the JSON of dmabuf ls"), "\(bad.stderr)")
    }

    @Test("--watch prints one round per period against the first view (or --diff's baseline); JSON is one line a round")
    func watch() throws {
        let tree = try Self.snapshot()
        let arguments = ["ls", "--kernel", "--proc", tree.path + "/proc", "--debugfs", tree.path + "/debugfs"]
        try tree.write("before.json", try runDMABuf(arguments + ["--json"]).stdout)
        let still = try runDMABuf(arguments + ["--watch", "0", "--rounds", "2"])
        #expect(still.status == 0, "\(still.stderr)")
        #expect(still.stdout.contains("[round 0, 0 s] 3 dma-bufs (0), 65536 bytes (0); held by the kernel only 16384 bytes (0)"), "\(still.stdout)")
        #expect(still.stdout.contains("[round 1, "), "\(still.stdout)")
        // A leak since the baseline: pid 43 took udmabuf 3 by fd.
        try tree.link("proc/43/fd/11", to: "/dmabuf:")
        try tree.write("proc/43/fdinfo/11", "pos:\t0\nflags:\t02\nmnt_id:\t12\nino:\t3\nsize:\t16384\ncount:\t2\nexp_name:\tudmabuf\n")
        let grown = try runDMABuf(arguments + ["--diff", tree.path + "/before.json", "--watch", "0", "--rounds", "1", "--json"])
        let lines = grown.stdout.split(separator: "\n")
        #expect(grown.status == 0 && lines.count == 1, "\(grown.stdout) \(grown.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: Any]
        let processes = (object?["diff"] as? [String: Any])?["processes"] as? [[String: Any]]
        #expect(object?["round"] as? Int == 0 && processes?.first?["key"] as? String == "43 (encoder)" && processes?.first?["buffersAfter"] as? Int == 2)
        let bad = try runDMABuf(arguments + ["--rounds", "2"])
        #expect(bad.status == 2 && bad.stderr.contains("--rounds needs --watch"), "\(bad.stderr)")
    }
}

/// `dmabuf ls --kernel` joined with the PCI topology (issue [M] item 2): an attachment of a PCI
/// device gets the kernel's P2P verdict between it and the exporter's device, and what that made
/// the exporter do. The sysfs tree is the Linux 7.3 oracle guest's with an IOMMU on a Skylake CPU
/// (ACS redirect on the root ports, no whitelisted host bridge), with one controller rebound to
/// vfio-pci and one to amdgpu so that each exporter's device is known.
@Suite("dmabuf ls --kernel: each PCI attachment with its P2P verdict")
struct LsKernelTopologyTests {
    typealias Tree = RealKernelCLITests.Tree

    static func machine() throws -> (Tree, String) {
        let tree = try LsKernelCLITests.snapshot()
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PCITests/Fixtures/kernel-73/oracle-skylake-iommu/sys")
        let sys = tree.path + "/sys"
        try FileManager.default.copyItem(atPath: fixture.path, toPath: sys)
        // The guest's CPU (Skylake: no P2P through a host bridge that is not whitelisted).
        try FileManager.default.copyItem(atPath: fixture.deletingLastPathComponent().appendingPathComponent("proc/cpuinfo").path, toPath: tree.path + "/proc/cpuinfo")
        for (device, driver) in [("0000:00:10.0/0000:02:00.0/0000:03:00.0/0000:04:00.0", "amdgpu"), ("0000:00:12.0/0000:0b:00.0", "vfio-pci")] {
            let link = "\(sys)/devices/pci0000:00/\(device)/driver"
            try? FileManager.default.removeItem(atPath: link)
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "../../../../bus/pci/drivers/\(driver)")
        }
        let header = "size    \tflags   \tmode    \tcount   \texp_name\tino     \tname"
        let bufinfo = "\nDma-buf Objects:\n\(header)\n"
            + "00065536\t00000002\t00080005\t00000002\tamdgpu\t00000010\tvram\n\tAttached Devices:\n\t0000:04:00.1\n\t0000:0a:00.0\nTotal 2 devices attached\n\n"
            + "00004096\t00000002\t00080005\t00000002\tvfio_pci_core\t00000011\t<none>\n\tAttached Devices:\n\t0000:0b:00.1\nTotal 1 devices attached\n\n"
            + "00004096\t00000002\t00080005\t00000002\tnvme\t00000012\t<none>\n\tAttached Devices:\n\t0000:05:00.0\nTotal 1 devices attached\n\n"
            + "\nTotal 3 objects, 73728 bytes\n"
        try tree.write("debugfs/dma_buf/bufinfo", bufinfo)
        return (tree, sys)
    }

    @Test("Bus address under one switch port; a GPU gives system memory where P2P is not supported; VFIO refuses; an ambiguous exporter is said to be")
    func routes() throws {
        let (tree, sys) = try Self.machine()
        let arguments = ["ls", "--kernel", "--proc", tree.path + "/proc", "--debugfs", tree.path + "/debugfs", "--sysfs", sys]
        let text = try runDMABuf(arguments)
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("0000:04:00.0 (amdgpu)'s buffer attached to 0000:04:00.1: P2P by bus address"), "\(text.stdout)")
        #expect(text.stdout.contains("0000:04:00.0 (amdgpu)'s buffer attached to 0000:0a:00.0: P2P not supported, so the exporter gave system memory"), "\(text.stdout)")
        #expect(text.stdout.contains("0000:0b:00.0 (vfio_pci_core)'s buffer attached to 0000:0b:00.1: P2P not supported, so VFIO refuses the map (EINVAL)"), "\(text.stdout)")
        #expect(text.stdout.contains("attached to 0000:05:00.0: no P2P verdict, the exporter's device is not known (9 PCI devices are bound to nvme)"), "\(text.stdout)")
        let json = try runDMABuf(arguments + ["--json"])
        let view = try JSONDecoder().decode(DMABufKernelView.self, from: Data(json.stdout.utf8))
        let vram = try #require(view.buffers.first { $0.inode == 10 })
        #expect(vram.routes?.map(\.mapType) == ["bus-address", "not-supported"])
        #expect(vram.routes?.allSatisfy { $0.exporterDevice == "0000:04:00.0" } == true)
    }

    @Test("The verdicts follow the release of the /proc read (drivers/pci/p2pdma.c): an AMD Zen routes across root ports from 5.9 (cpu_supports_p2pdma), not on 5.8")
    func routesFollowTheRelease() throws {
        func vramRoutes(_ release: String) throws -> [String?]? {
            let (tree, sys) = try Self.machine()
            try tree.write("proc/cpuinfo", "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n")
            try tree.write("proc/sys/kernel/osrelease", release + "\n")
            let json = try runDMABuf(["ls", "--kernel", "--json", "--proc", tree.path + "/proc", "--debugfs", tree.path + "/debugfs", "--sysfs", sys])
            let view = try JSONDecoder().decode(DMABufKernelView.self, from: Data(json.stdout.utf8))
            return view.buffers.first { $0.inode == 10 }?.routes?.map(\.mapType)
        }
        #expect(try vramRoutes("5.9.16") == ["bus-address", "through-host-bridge"])
        #expect(try vramRoutes("5.8.18") == ["bus-address", "not-supported"])
    }

    @Test("Without a PCI attachment nothing is joined and the JSON has no routes")
    func noPCI() throws {
        let tree = try LsKernelCLITests.snapshot()
        let json = try runDMABuf(["ls", "--kernel", "--json", "--proc", tree.path + "/proc", "--debugfs", tree.path + "/debugfs", "--sysfs", tree.path + "/none"])
        #expect(json.status == 0 && !json.stdout.contains("\"routes\""), "\(json.stdout.prefix(300))")
    }
}

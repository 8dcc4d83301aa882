import DMACore
import Foundation
@testable import LinuxDMABuf
import Testing

@Suite("The kernel's list joined with /proc: holders, buffers only the kernel holds, Rss and Pss")
struct KernelViewTests {
    /// A /proc for the 7.3 fixture: udmabuf 7 ("shared", 16 KiB) held by pid 100 (fd 3 and one
    /// mapping), pid 200 (fd 5) and pid 300 (a mapping only); the VFIO export 9 (16 MiB) held by
    /// pid 100 (fd 4); heap buffer 8 (64 KiB) held by no process; buffer 10 (4 KiB, system) held
    /// by pid 200 (fd 6) but made after bufinfo was read.
    static func proc() throws -> TemporaryTree {
        let tree = try TemporaryTree()
        func fdinfo(_ inode: Int, _ size: Int, _ exporter: String, _ name: String?) -> String {
            "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t\(inode)\nsize:\t\(size)\ncount:\t1\nexp_name:\t\(exporter)\n" + (name.map { "name:\t\($0)\n" } ?? "")
        }
        try tree.write("100/comm", "renderer\n")
        try tree.link("100/fd/3", to: "/dmabuf:shared")
        try tree.write("100/fdinfo/3", fdinfo(7, 16384, "udmabuf", "shared"))
        try tree.link("100/fd/4", to: "/dmabuf:")
        try tree.write("100/fdinfo/4", fdinfo(9, 16 << 20, "vfio_pci_core", nil))
        try tree.link("100/fd/0", to: "/dev/null")
        try tree.write("100/fdinfo/0", "pos:\t0\nflags:\t02\nmnt_id:\t5\nino:\t4\n")
        try tree.write("100/maps", "55d0c0000000-55d0c0021000 r-xp 00000000 fe:01 1234   /usr/bin/renderer\n"
            + "7f0000000000-7f0000004000 rw-s 00000000 00:0f 7      /dmabuf:shared\n")
        try tree.write("200/comm", "compositor\n")
        try tree.link("200/fd/5", to: "/dmabuf:shared")
        try tree.write("200/fdinfo/5", fdinfo(7, 16384, "udmabuf", "shared"))
        try tree.link("200/fd/6", to: "/dmabuf:")
        try tree.write("200/fdinfo/6", fdinfo(10, 4096, "system", nil))
        try tree.write("200/maps", "")
        try tree.write("300/comm", "viewer\n")
        try tree.makeDirectory("300/fd")
        try tree.write("300/maps", "7f1000000000-7f1000004000 r--s 00000000 00:0f 7      /dmabuf:shared\n")
        try tree.write("debugfs/dma_buf/bufinfo", BufInfoFixtures.linux73)
        return tree
    }

    static func view(_ tree: TemporaryTree) throws -> DMABufKernelView {
        let bufinfo = try DMABufBufInfo.read(debugfsRoot: tree.path + "/debugfs")
        let census = DMABufCensus.take(procRoot: tree.path)
        return DMABufKernelView(bufinfo: bufinfo, census: census, source: .init(bufinfo: "bufinfo", readable: true, unavailable: nil, kernelRelease: nil))
    }

    @Test("Every buffer the kernel has, with its holders; the one no process holds is the kernel's with its attachments")
    func joined() throws {
        let tree = try Self.proc()
        let view = try Self.view(tree)
        #expect(view.buffers.map(\.inode) == [7, 8, 9, 10])
        let shared = view.buffers[0]
        #expect(shared.holders.map(\.pid) == [100, 200, 300] && shared.references == 4 && shared.kernelReferences == 0)
        #expect(shared.holders[2].fds.isEmpty && shared.holders[2].mappings == 1)  // mapping-only holder
        let kernelOnly = view.buffers[1]
        #expect(kernelOnly.heldByKernelOnly && kernelOnly.attachedDevices == ["0000:03:00.0", "0000:04:00.0"])
        #expect(kernelOnly.references == 2 && kernelOnly.kernelReferences == 2 && kernelOnly.name == "nic rx ring" && kernelOnly.exporter == "system")
        #expect(kernelOnly.fences.count == 1 && !kernelOnly.fences[0].signalled)
        #expect(view.buffers[2].exporter == "vfio_pci_core" && view.buffers[2].attachedDevices.isEmpty && view.buffers[2].inKernelList)
        #expect(!view.buffers[3].inKernelList && view.buffers[3].size == 4096 && view.buffers[3].references == nil)
        #expect(view.totals.map(\.exporter) == ["system", "udmabuf", "vfio_pci_core"])
        #expect(view.totals[0] == DMABufKernelView.ExporterTotal(exporter: "system", buffers: 2, bytes: 69632, kernelOnlyBuffers: 1, kernelOnlyBytes: 65536))
    }

    @Test("Rss, Pss (a buffer held by N processes counts 1/N to each), fd and map refs apart, the kernel-only total: checked by hand")
    func memory() throws {
        let tree = try Self.proc()
        let view = try Self.view(tree)
        // Buffer 7 (16384 bytes) is held by 3 processes: 16384 / 3 = 5461 (rounded down) to each.
        // pid 100: Rss 16384 + 16777216 = 16793600; Pss 5461 + 16777216 = 16782677.
        // pid 200: Rss 16384 + 4096 = 20480; Pss 5461 + 4096 = 9557.
        // pid 300: Rss 16384 (a mapping only); Pss 5461.
        #expect(view.processes == [
            DMABufKernelView.ProcessMemory(pid: 100, comm: "renderer", rss: 16_793_600, pss: 16_782_677, fdRefs: 2, mapRefs: 1, buffers: 2),
            DMABufKernelView.ProcessMemory(pid: 200, comm: "compositor", rss: 20480, pss: 9557, fdRefs: 2, mapRefs: 0, buffers: 2),
            DMABufKernelView.ProcessMemory(pid: 300, comm: "viewer", rss: 16384, pss: 5461, fdRefs: 0, mapRefs: 1, buffers: 1),
        ])
        // Exported: 16777216 + 65536 + 16384 (bufinfo) + 4096 (only in /proc) = 16863232.
        // Processes hold 16384 + 16777216 + 4096 = 16797696; the kernel alone 65536.
        #expect(view.exportedBytes == 16_863_232 && view.userspaceBytes == 16_797_696 && view.kernelOnlyBytes == 65536)
        // The sum of Pss is what processes hold, less the rounding (16384 - 3 * 5461 = 1 byte).
        #expect(view.processes.reduce(0) { $0 + $1.pss } == view.userspaceBytes - 1)
    }

    @Test("Without bufinfo the view is /proc's: nothing is held by the kernel only, no reference counts")
    func withoutKernel() throws {
        let tree = try Self.proc()
        let view = DMABufKernelView(bufinfo: nil, census: DMABufCensus.take(procRoot: tree.path),
                                    source: .init(bufinfo: "x", readable: false, unavailable: nil, kernelRelease: nil))
        #expect(view.buffers.map(\.inode) == [7, 9, 10] && view.buffers.allSatisfy { !$0.heldByKernelOnly && $0.references == nil })
        #expect(view.kernelOnlyBytes == 0 && view.processes.map(\.pss) == [16_782_677, 9557, 5461])
    }

    @Test("The census hands over only what describes dma-bufs, for --capture")
    func recorded() throws {
        let tree = try Self.proc()
        var reads: [DMABufCensus.Read] = []
        _ = DMABufCensus.take(procRoot: tree.path, pid: nil, record: { reads.append($0) })
        let paths = reads.map { read -> String in
            switch read {
            case .file(let path, _), .link(let path, _), .directory(let path): return path
            }
        }
        #expect(Set(paths) == ["100/fd", "200/fd", "300/fd", "100/comm", "100/fd/3", "100/fdinfo/3", "100/fd/4", "100/fdinfo/4", "100/maps",
                               "200/comm", "200/fd/5", "200/fdinfo/5", "200/fd/6", "200/fdinfo/6", "200/maps",
                               "300/comm", "300/maps"])
        #expect(reads.contains(.file(path: "100/maps", bytes: Array("7f0000000000-7f0000004000 rw-s 00000000 00:0f 7      /dmabuf:shared\n".utf8))))
    }

    @Test("A diff matches by inode: appeared, gone, a second attachment of the same device, per exporter and per process")
    func diff() throws {
        let tree = try Self.proc()
        let before = try Self.view(tree)
        var after = before
        after.buffers.removeAll { $0.inode == 10 }
        after.buffers[1].attachedDevices.append("0000:03:00.0")
        var leaked = after.buffers[1]
        leaked.inode = 11
        after.buffers.append(leaked)
        let change = DMABufKernelDiff(before: before, after: after)
        #expect(change.appeared.map(\.inode) == [11] && change.appeared[0].heldByKernelOnly)
        #expect(change.gone.map(\.inode) == [10] && change.gone[0].holders == [200])
        #expect(change.attachments == [DMABufKernelDiff.AttachmentChange(inode: 8, exporter: "system", attached: ["0000:03:00.0"], detached: [])])
        #expect(DMABufKernelDiff.minus(["a", "a", "b"], ["a"]) == ["a", "b"])
        #expect(DMABufKernelDiff(before: before, after: before).exporters.allSatisfy { $0.buffersDelta == 0 && $0.bytesDelta == 0 })
    }
}

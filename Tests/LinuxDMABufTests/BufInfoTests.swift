import DMACore
import Foundation
@testable import LinuxDMABuf
import Testing

@Suite("debugfs dma_buf/bufinfo as kernels 5.0 to 7.x print it")
struct BufInfoParsingTests {
    @Test("5.4: empty names, Exclusive/Shared fences without seqno, one buffer with zero attached devices")
    func linux54() throws {
        let info = try DMABufBufInfo(parsing: BufInfoFixtures.linux54)
        #expect(info.buffers.count == 2 && info.totalObjects == 2 && info.totalBytes == 1_081_344 && info.bytes == 1_081_344)
        #expect(info.unrecognizedLines.isEmpty && info.hasNameColumn)
        let gpu = info.buffers[0]
        #expect(gpu.size == 32768 && gpu.flags == 2 && gpu.mode == 0x80003 && gpu.count == 3 && gpu.exporter == "i915" && gpu.inode == 17)
        #expect(gpu.name == nil && gpu.attachedDevices == ["0000:00:02.0"])
        #expect(gpu.fences == [
            DMABufBufInfo.Fence(usage: "Exclusive", driver: "i915", timeline: "rcs0", context: nil, seqno: nil, signalled: true),
            DMABufBufInfo.Fence(usage: "Shared", driver: "i915", timeline: "bcs0", context: nil, seqno: nil, signalled: false),
        ])
        let camera = info.buffers[1]
        #expect(camera.name == "camera-preview" && camera.attachedDevices.isEmpty && camera.fences.isEmpty && camera.size == 1 << 20)
    }

    @Test("5.0 to 5.2: rows with no name column")
    func linux50() throws {
        let info = try DMABufBufInfo(parsing: BufInfoFixtures.linux50)
        #expect(!info.hasNameColumn && info.buffers.count == 1 && info.buffers[0].name == nil)
        #expect(info.buffers[0].inode == 5 && info.buffers[0].attachedDevices == ["0000:01:00.0"] && info.unrecognizedLines.isEmpty)
    }

    @Test("5.18: fences through dma_fence_describe (no space after the colon, a seqno), two attached devices")
    func linux518() throws {
        let info = try DMABufBufInfo(parsing: BufInfoFixtures.linux518)
        let buffer = try #require(info.buffers.first)
        #expect(buffer.fences == [
            DMABufBufInfo.Fence(usage: "Exclusive", driver: "amdgpu", timeline: "gfx_0.0.0", context: nil, seqno: 4711, signalled: true),
            DMABufBufInfo.Fence(usage: "Shared", driver: "amdgpu", timeline: "sdma0", context: nil, seqno: 12, signalled: false),
        ])
        #expect(buffer.attachedDevices == ["0000:0b:00.0", "0000:0c:00.0"] && info.unrecognizedLines.isEmpty)
    }

    @Test("6.1: usages (write, read, bookkeep) and a vgem attachment")
    func linux61() throws {
        let info = try DMABufBufInfo(parsing: BufInfoFixtures.linux61)
        #expect(info.buffers.map(\.fences.count) == [1, 2] && info.buffers.map(\.name) == ["probe-vgem", nil])
        #expect(info.buffers[0].fences[0] == DMABufBufInfo.Fence(usage: "write", driver: "stub", timeline: "stub", context: nil, seqno: 0, signalled: true))
        #expect(info.buffers[1].fences.map(\.usage) == ["read", "bookkeep"] && info.buffers[1].attachedDevices == ["vgem"])
    }

    @Test("6.12: the kernel tier's four buffers (81,920 bytes), <none> is no name")
    func linux612() throws {
        let info = try DMABufBufInfo(parsing: BufInfoFixtures.linux612)
        #expect(info.buffers.map(\.inode) == [4, 3, 2, 1] && info.buffers.map(\.exporter) == ["system", "udmabuf", "virtio_gpu", "drm"])
        #expect(info.buffers.map(\.name) == ["probe-heap-system", nil, "probe-virtio_gpu", "probe-vgem"])
        #expect(info.totalObjects == 4 && info.totalBytes == 81920 && info.bytes == 81920 && info.unrecognizedLines.isEmpty)
    }

    @Test("7.3: a VFIO export with no device, a name with spaces, an unsignalled kernel fence")
    func linux73() throws {
        let info = try DMABufBufInfo(parsing: BufInfoFixtures.linux73)
        #expect(info.buffers[0].exporter == "vfio_pci_core" && info.buffers[0].attachedDevices.isEmpty && info.buffers[0].size == 16 << 20)
        #expect(info.buffers[1].name == "nic rx ring" && info.buffers[1].attachedDevices == ["0000:03:00.0", "0000:04:00.0"])
        #expect(info.buffers[1].fences == [DMABufBufInfo.Fence(usage: "kernel", driver: "nvme", timeline: "0000:04:00.0", context: nil, seqno: 17, signalled: false)])
    }

    @Test("The context-first fence line (CONTEXT TIMELINE DRIVER, names empty once signalled)")
    func contextFirstFences() throws {
        #expect(DMABufBufInfo.fence("write fence:5 gfx amdgpu seq 9 unsignalled")
            == DMABufBufInfo.Fence(usage: "write", driver: "amdgpu", timeline: "gfx", context: 5, seqno: 9, signalled: false))
        #expect(DMABufBufInfo.fence("read fence:12   seq 3 signalled")
            == DMABufBufInfo.Fence(usage: "read", driver: nil, timeline: nil, context: 12, seqno: 3, signalled: true))
        #expect(DMABufBufInfo.fence("Shared fence: i915 rcs0 maybe") == nil)
    }

    @Test("Not bufinfo is EINVAL; unknown lines are kept, a name holding a tab is whole")
    func malformed() throws {
        let error = dmaError { _ = try DMABufBufInfo(parsing: "pos:\t0\nflags:\t02\n") }
        #expect(error?.errno == .EINVAL && error?.code == .invalidArgument)
        let text = "\nDma-buf Objects:\n\(BufInfoFixtures.headerWithName)\n00004096\t00000002\t00080003\t00000001\tsystem\t00000003\ta\tb\n"
            + "\tFences concurrently modified\n\tAttached Devices:\nTotal 0 devices attached\n\ngarbage\n\nTotal 1 objects, 4096 bytes\n"
        let info = try DMABufBufInfo(parsing: text)
        #expect(info.buffers.map(\.name) == ["a\tb"] && info.unrecognizedLines == ["\tFences concurrently modified", "garbage"])
        #expect(try DMABufBufInfo(parsing: "\nDma-buf Objects:\n\(BufInfoFixtures.headerWithName)\n\nTotal 0 objects, 0 bytes\n").buffers.isEmpty)
        // Numbers no kernel prints (a negative count, a size past Int.max) are not rows: kept as unknown lines.
        let hostile = try DMABufBufInfo(parsing: "\nDma-buf Objects:\n-0000001\t2\t3\t1\tx\t1\t\n00000001\t2\t3\t-9223372036854775808\tx\t2\t\n99999999999999999999\t2\t3\t1\tx\t3\t\n")
        #expect(hostile.buffers.isEmpty && hostile.unrecognizedLines.count == 3)
    }

    @Test("An unreadable bufinfo says why and what to run: not mounted, root only, no dma_buf folder")
    func unavailable() throws {
        let tree = try TemporaryTree()
        let missing = dmaError { _ = try DMABufBufInfo.read(debugfsRoot: tree.path) }
        #expect(missing?.code == .debugfsUnavailable && missing?.errno == .ENOENT)
        #expect(missing?.message.contains("mount -t debugfs none \(tree.path)") == true, "\(missing?.message ?? "")")
        try tree.write("tracing/README", "x")
        let noDMABuf = DMABufBufInfo.unavailable(debugfsRoot: tree.path, errno: .ENOENT)
        #expect(noDMABuf.reason.contains("mounted but has no dma_buf/bufinfo"))
        let denied = withMockKernel({ call, _ in
            if case .readFile(let path) = call, path.hasSuffix("dma_buf/bufinfo") { return .fails(.EACCES) }
            return .perform
        }) { _ in dmaError { _ = try DMABufBufInfo.read(debugfsRoot: tree.path) } }
        #expect(denied?.errno == .EACCES && denied?.message.contains("run as root") == true)
        #expect(DMABufBufInfo.unavailable(debugfsRoot: tree.path, errno: .EFBIG).reason.contains("64 MiB"))
        #expect(DMABufBufInfo.unavailable(debugfsRoot: tree.path, errno: .EPERM).reason.contains("lockdown"))
    }
}

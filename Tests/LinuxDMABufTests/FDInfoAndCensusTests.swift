import DMACore
import Foundation
import Glibc
@testable import LinuxDMABuf
import Testing

@Suite("fdinfo parsing, the /proc census, and leaks of real fds and mappings")
struct FDInfoAndCensusTests {
    @Test("vgem's fdinfo (exp_name drm) parses to every field")
    func vgem() {
        let info = FDInfo(parsing: "pos:\t0\nflags:\t02000002\nmnt_id:\t12\nino:\t1\nsize:\t16384\ncount:\t3\nexp_name:\tdrm\nname:\tprobe-vgem\n")
        #expect(info.position == 0 && info.flags == 0o2000002 && info.mountID == 12 && info.inode == 1)
        #expect(info.size == 16384 && info.count == 3 && info.exporter == "drm" && info.name == "probe-vgem")
        #expect(info.isDMABuf && info.otherFields.isEmpty)
    }

    @Test("nv_dmabuf's fdinfo (no name) from the H200 fixture")
    func nvDMABuf() {
        let info = FDInfo(parsing: "pos:\t0\nflags:\t02000002\nmnt_id:\t12\nino:\t1\nsize:\t67108864\ncount:\t1\nexp_name:\tnv_dmabuf\n")
        #expect(info.exporter == "nv_dmabuf" && info.size == 67_108_864 && info.name == nil)
    }

    @Test("Unknown lines are kept in order; malformed numbers are kept, not guessed; a plain file is not a dma-buf")
    func unknownLines() {
        let info = FDInfo(parsing: "pos:\t0\nflags:\t0100002\nmnt_id:\t25\nino:\t4711\ndrm-driver:\tvgem\nsize:\tbig\nlock:\t1: POSIX\nno colon here\n")
        #expect(!info.isDMABuf && info.size == nil && info.inode == 4711)
        #expect(info.otherFields == [
            FDInfo.Field(key: "drm-driver", value: "vgem"), FDInfo.Field(key: "size", value: "big"),
            FDInfo.Field(key: "lock", value: "1: POSIX"), FDInfo.Field(key: "no colon here", value: ""),
        ])
        #expect(FDInfo(parsing: "name:\twith spaces: and colon\nexp_name:\tsystem").name == "with spaces: and colon")
    }

    /// A fake /proc: pid 100 holds buffer 7 at fds 3 and 5 and maps it once, and maps buffer 11
    /// whose fds are all closed; pid 200 holds buffer 7 at fd 4 and buffer 9 (a pre-5.x
    /// `anon_inode:dmabuf` link) at fd 6; pid 300 cannot be read; pid 400 exits during the census.
    static func fakeProc() throws -> TemporaryTree {
        let tree = try TemporaryTree()
        let buffer7 = "pos:\t0\nflags:\t02000002\nmnt_id:\t12\nino:\t7\nsize:\t16384\ncount:\t3\nexp_name:\tvirtio_gpu\nname:\tscanout\n"
        try tree.write("100/comm", "compositor\n")
        try tree.link("100/fd/3", to: "/dmabuf:scanout")
        try tree.link("100/fd/5", to: "/dmabuf:scanout")
        try tree.link("100/fd/1", to: "/dev/null")
        try tree.write("100/fdinfo/3", buffer7)
        try tree.write("100/fdinfo/5", buffer7)
        try tree.write("100/fdinfo/1", "pos:\t0\nflags:\t01\nmnt_id:\t5\nino:\t5\n")
        try tree.write("100/maps", """
            55d0c0000000-55d0c0021000 r-xp 00000000 fe:01 1234   /usr/bin/compositor
            7f0000000000-7f0000004000 rw-s 00000000 00:0c 7      /dmabuf:scanout
            7f0000010000-7f0000018000 rw-s 00000000 00:0c 11     /dmabuf:orphan
            7f0000020000-7f0000021000 rw-p 00000000 00:00 0 \n
            """)
        try tree.write("200/comm", "client\n")
        try tree.link("200/fd/4", to: "/dmabuf:scanout")
        try tree.link("200/fd/6", to: "anon_inode:dmabuf")
        try tree.write("200/fdinfo/4", buffer7)
        try tree.write("200/fdinfo/6", "pos:\t0\nflags:\t02\nmnt_id:\t12\nino:\t9\nsize:\t32768\ncount:\t1\nexp_name:\tsystem\n")
        try tree.write("200/maps", "")
        try tree.makeDirectory("300/fd")
        try tree.write("300/comm", "secret\n")
        try tree.makeDirectory("400")
        try tree.write("self", "not a pid")
        return tree
    }

    /// Fails what a non-root user could not read, and makes pid 400 vanish.
    /// The census reads each process's files relative to its open folder (`openat`), so the
    /// handler knows a process by the path of the folder descriptor it is handed.
    static func restrictions(_ root: String) -> MockKernel.Handler {
        let root = (try? SystemCalls.realPath(root).get()) ?? root
        return { call, _ in
            switch call {
            case .listDirectoryAt(let folder, "fd") where folderPath(folder) == "\(root)/300": .fails(.EACCES)
            case .listDirectoryAt(let folder, "fd") where folderPath(folder) == "\(root)/400": .fails(.ENOENT)
            default: .perform
            }
        }
    }

    /// Where an open folder descriptor points (`/proc/self/fd/N`).
    static func folderPath(_ fd: Int32) -> String {
        (try? SystemCalls.readLink("/proc/self/fd/\(fd)").get()) ?? ""
    }

    @Test("The census groups by inode across processes, sums per exporter, and reports unreadable processes")
    func census() throws {
        let tree = try Self.fakeProc()
        let census = withMockKernel(Self.restrictions(tree.path)) { _ in DMABufCensus.take(procRoot: tree.path) }
        #expect(census.buffers.map(\.inode) == [7, 9, 11])
        let shared = census.buffers[0]
        #expect(shared.exporter == "virtio_gpu" && shared.size == 16384 && shared.name == "scanout")
        #expect(shared.holders == [
            DMABufCensus.Holder(pid: 100, comm: "compositor", fds: [3, 5], mappings: 1, mappedBytes: 16384),
            DMABufCensus.Holder(pid: 200, comm: "client", fds: [4], mappings: 0, mappedBytes: 0),
        ])
        #expect(census.buffers[1].exporter == "system" && census.buffers[1].holders.map(\.fds) == [[6]])
        let orphan = census.buffers[2]
        #expect(orphan.exporter == nil && orphan.size == nil && orphan.name == "orphan" && orphan.holders[0].mappedBytes == 32768)
        #expect(census.totals == [
            DMABufCensus.ExporterTotal(exporter: "?", buffers: 1, bytes: 0),
            DMABufCensus.ExporterTotal(exporter: "system", buffers: 1, bytes: 32768),
            DMABufCensus.ExporterTotal(exporter: "virtio_gpu", buffers: 1, bytes: 16384),
        ])
        #expect(census.unreadable == [DMABufCensus.Unreadable(pid: 300, what: "fd", errno: "EACCES")])
        #expect(census.processesScanned == 3 && census.vanished == 1)
    }

    @Test("--pid limits the census to one process's buffers and holders")
    func censusOnePID() throws {
        let tree = try Self.fakeProc()
        let census = DMABufCensus.take(procRoot: tree.path, pid: 200)
        #expect(census.buffers.map(\.inode) == [7, 9])
        #expect(census.buffers.allSatisfy { $0.holders.map(\.pid) == [200] })
        #expect(census.processesScanned == 1)
        #expect(DMABufCensus.take(procRoot: tree.path, pid: 999).vanished == 1)
    }

    @Test("Kernel config: /proc/config.gz (gzip) first, /boot/config-RELEASE next, none is nil")
    func kernelConfig() throws {
        let tree = try TemporaryTree()
        try tree.write("proc/sys/kernel/osrelease", "6.12.95+deb12-amd64\n")
        #expect(KernelConfig.read(procRoot: tree.path + "/proc", bootRoot: tree.path + "/boot") == nil)
        try tree.write("boot/config-6.12.95+deb12-amd64", "CONFIG_UDMABUF=y\n# CONFIG_PCI_P2PDMA is not set\nCONFIG_DRM_VGEM=m\n")
        let boot = try #require(KernelConfig.read(procRoot: tree.path + "/proc", bootRoot: tree.path + "/boot"))
        #expect(boot.source.hasSuffix("/boot/config-6.12.95+deb12-amd64"))
        #expect(boot.value("CONFIG_UDMABUF") == "y" && boot.value("CONFIG_DRM_VGEM") == "m" && boot.value("CONFIG_PCI_P2PDMA") == "not set")
        try tree.write("proc/config", "CONFIG_PCI_P2PDMA=y\nCONFIG_SWIOTLB=y\n")
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
        gzip.arguments = ["-9", tree.path + "/proc/config"]
        try gzip.run()
        gzip.waitUntilExit()
        let proc = try #require(KernelConfig.read(procRoot: tree.path + "/proc", bootRoot: tree.path + "/boot"))
        #expect(proc.source.hasSuffix("/proc/config.gz") && proc.value("CONFIG_PCI_P2PDMA") == "y")
        #expect(gunzip(Array("not gzip".utf8)) == nil)
    }

    @Test("--kernel auto: the running kernel's release and CONFIG_DMABUF_MOVE_NOTIFY ('# … is not set' off, absent from 7.1 always on); the newest when no release is readable")
    func runningKernelRules() throws {
        let tree = try TemporaryTree()
        let proc = tree.path + "/proc"
        let boot = tree.path + "/boot"
        #expect(KernelConfig.runningRules(procRoot: proc, bootRoot: boot) == .newest)
        try tree.write("proc/sys/kernel/osrelease", "6.12.95+deb12-amd64\n")
        #expect(KernelConfig.runningRules(procRoot: proc, bootRoot: boot) == KernelRules(KernelVersion(6, 12)), "no config: the default, off")
        try tree.write("boot/config-6.12.95+deb12-amd64", "# CONFIG_DMABUF_MOVE_NOTIFY is not set\n")
        let debian = try #require(KernelConfig.read(procRoot: proc, bootRoot: boot))
        #expect(debian.notSet.contains("CONFIG_DMABUF_MOVE_NOTIFY") && debian.moveNotify(release: "6.12.95+deb12-amd64") == .off)
        #expect(KernelConfig.runningRules(procRoot: proc, bootRoot: boot).moveNotify == .off)
        try tree.write("boot/config-6.12.95+deb12-amd64", "CONFIG_DMABUF_MOVE_NOTIFY=y\n")
        #expect(KernelConfig.runningRules(procRoot: proc, bootRoot: boot) == KernelRules(KernelVersion(6, 12), moveNotify: true))
        try tree.write("proc/sys/kernel/osrelease", "7.3.4-amd64\n")
        try tree.write("boot/config-7.3.4-amd64", "CONFIG_PCI_P2PDMA=y\n")
        let new = try #require(KernelConfig.read(procRoot: proc, bootRoot: boot))
        #expect(new.moveNotify(release: "7.3.4-amd64") == .alwaysOn && new.moveNotify(release: "6.8.0") == .off)
        #expect(KernelConfig.runningRules(procRoot: proc, bootRoot: boot) == KernelRules(KernelVersion(7, 3)))
    }

    /// The entries of /proc/self/fd and lines of /proc/self/maps that refer to `name`. Counting by
    /// the object's own name keeps the check exact while other tests open files in parallel.
    static func references(to name: String) -> (fds: Int, maps: Int) {
        let fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).filter { fd in
            ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) ?? "").contains(name)
        }.count
        // procfs files report size 0: read them to the end with the layer's own reader.
        let text = String(decoding: (try? SystemCalls.readFile("/proc/self/maps").get()) ?? [], as: UTF8.self)
        let maps = text.split(separator: "\n").filter { $0.contains(name) }.count
        return (fds, maps)
    }

    @Test("No fd or mapping leaks with real system calls: counted in /proc/self/fd and maps before, during and after")
    func noLeaks() throws {
        let name = "dmabufkit-leak-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        #expect(Self.references(to: name) == (0, 0))
        for _ in 0..<20 {
            let memfd = try Memfd(name: name, size: 3 * SystemCalls.pageSize)
            try memfd.addSeals([.shrink, .grow])
            #expect(try memfd.seals() == [.shrink, .grow])
            // A memfd answers lseek and mmap like a dma-buf does, so the owned fd type runs for real.
            let raw = try SystemCalls.memfdCreate(name, 0).get()
            let buffer = DMABufFD(adopting: raw)
            try SystemCalls.ftruncate(raw, Int64(2 * SystemCalls.pageSize)).get()
            #expect(try buffer.size() == 2 * SystemCalls.pageSize)
            let mapping = try buffer.map()
            mapping.withMutableBytes { $0.storeBytes(of: 0xC0DE_0001 as UInt32, toByteOffset: 4, as: UInt32.self) }
            let during = Self.references(to: name)
            #expect(during.fds == 2 && during.maps == 1)
            _ = consume mapping
            let copy = try memfd.read(count: 8, at: 0)
            #expect(copy == [0, 0, 0, 0, 0, 0, 0, 0])
        }
        #expect(Self.references(to: name) == (0, 0))
    }
}

/// Issue [O] class 1 for `/proc`: an fdinfo that never ends or is not a file, a `config.gz` that
/// inflates to gigabytes. Each is refused at its limit, and the census says which file it was.
@Suite("Hostile /proc files: bounded reads of fdinfo and config.gz")
struct HostileProcTests {
    @Test("an fdinfo that is /dev/zero, a FIFO or an 8 GiB sparse file is listed as unreadable, at once")
    func fdinfo() throws {
        let tree = try TemporaryTree()
        try tree.write("100/comm", "victim\n")
        for fd in [3, 4, 5, 6] { try tree.link("100/fd/\(fd)", to: "/dmabuf:x") }
        try tree.write("100/fdinfo/6", "pos:\t0\nflags:\t02\nmnt_id:\t12\nino:\t9\nsize:\t4096\ncount:\t1\nexp_name:\tsystem\n")
        try tree.write("100/maps", "")
        try FileManager.default.createSymbolicLink(atPath: tree.path + "/100/fdinfo/3", withDestinationPath: "/dev/zero")
        #expect(mkfifo(tree.path + "/100/fdinfo/4", 0o600) == 0)
        let fifo = tree.path + "/100/fdinfo/4"
        Thread.detachNewThread {  // unblocks an unbounded reader, so that it fails instead of hanging
            Thread.sleep(forTimeInterval: 2)
            let fd = open(fifo, O_RDWR | O_NONBLOCK)
            if fd >= 0 { close(fd) }
        }
        let sparse = open(tree.path + "/100/fdinfo/5", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(sparse >= 0 && ftruncate(sparse, 8 << 30) == 0)
        close(sparse)
        let start = ContinuousClock.now
        let census = DMABufCensus.take(procRoot: tree.path)
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(census.buffers.map(\.inode) == [9])
        #expect(census.unreadable.sorted { $0.what < $1.what } == [
            DMABufCensus.Unreadable(pid: 100, what: "fdinfo/3", errno: "EINVAL"),
            DMABufCensus.Unreadable(pid: 100, what: "fdinfo/4", errno: "EINVAL"),
            DMABufCensus.Unreadable(pid: 100, what: "fdinfo/5", errno: "EFBIG"),
        ])
    }

    @Test("readFile stops at its limit and refuses what is not a regular file")
    func readFile() throws {
        let tree = try TemporaryTree()
        try tree.write("small", "0123456789")
        #expect(try SystemCalls.readFile(tree.path + "/small", limit: 10).get() == Array("0123456789".utf8))
        #expect(SystemCalls.readFile(tree.path + "/small", limit: 9) == .failure(.EFBIG))
        #expect(SystemCalls.readFile("/dev/zero") == .failure(.EINVAL))
        #expect(SystemCalls.readFile(tree.path) == .failure(.EISDIR))
    }

    @Test("Reads relative to an open folder: a file of one read, files longer than the first 4 KiB read, the limit, a link's bytes")
    func readAt() throws {
        let tree = try TemporaryTree()
        let long = String(repeating: "0123456789abcdef", count: 600)  // 9,600 bytes: three reads
        try tree.write("one", "pos:\t0\n")
        try tree.write("long", long)
        try tree.write("exact", String(repeating: "x", count: 4096))
        try tree.link("link", to: "/dmabuf:frames")
        let folder = try SystemCalls.openAt(AT_FDCWD, tree.path, O_RDONLY | O_DIRECTORY).get()
        defer { _ = SystemCalls.close(folder) }
        for shortReadEnds in [false, true] {
            #expect(try SystemCalls.readFile(at: folder, "one", shortReadEnds: shortReadEnds).get() == Array("pos:\t0\n".utf8))
            #expect(try SystemCalls.readFile(at: folder, "long", shortReadEnds: shortReadEnds).get() == Array(long.utf8))
            #expect(try SystemCalls.readFile(at: folder, "exact", shortReadEnds: shortReadEnds).get().count == 4096)
            #expect(SystemCalls.readFile(at: folder, "long", limit: 9599, shortReadEnds: shortReadEnds) == .failure(.EFBIG))
            #expect(SystemCalls.readFile(at: folder, "exact", limit: 4095, shortReadEnds: shortReadEnds) == .failure(.EFBIG))
        }
        var count = 0
        #expect(throws: Never.self) { try SystemCalls.withFileContents(at: folder, "long") { count = $0.count }.get() }
        #expect(count == 9600)
        #expect(throws: Errno.ENOENT) { try SystemCalls.withFileContents(at: folder, "missing") { _ in }.get() }
        var target = "", isDMABuf = false
        #expect(throws: Never.self) {
            try SystemCalls.withLinkTarget(at: folder, "link") { target = String(decoding: $0, as: UTF8.self); isDMABuf = DMABufCensus.isDMABufPath($0) }.get()
        }
        #expect(target == "/dmabuf:frames" && isDMABuf)
        #expect(try SystemCalls.listDirectory(at: folder, ".").get().sorted() == ["exact", "link", "long", "one"])
    }

    @Test("fdinfo numbers are read from bytes as the kernel prints them: digits only, no overflow", arguments: [
        ("size:\t18446744073709551616\n", "size"),  // past UInt64
        ("size:\t9223372036854775808\n", "size"),  // past Int
        ("count:\t-1\n", "count"),
        ("pos:\t+5\n", "pos"),
        ("flags:\t09\n", "flags"),  // not octal
        ("ino:\t\n", "ino"),
    ])
    func fdinfoNumbers(text: String, key: String) {
        let info = FDInfo(parsing: text)
        #expect(info.size == nil && info.count == nil && info.position == nil && info.flags == nil && info.inode == nil)
        #expect(info.otherFields.map(\.key) == [key])
    }

    @Test("a config.gz that inflates past the limit is not read (a gzip bomb stops at the limit)")
    func gzipBomb() throws {
        let tree = try TemporaryTree()
        try tree.write("proc/sys/kernel/osrelease", "6.12\n")
        try tree.write("boot/config-6.12", "CONFIG_UDMABUF=y\n")
        let plain = tree.path + "/proc/config"
        #expect(FileManager.default.createFile(atPath: plain, contents: Data(repeating: 0x41, count: 24 << 20)))
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
        gzip.arguments = ["-1", plain]
        try gzip.run()
        gzip.waitUntilExit()
        let bomb = try [UInt8](Data(contentsOf: URL(fileURLWithPath: plain + ".gz")))
        #expect(bomb.count < 1 << 20)
        #expect(gunzip(bomb, limit: 1 << 20) == nil)
        #expect(gunzip(bomb, limit: 32 << 20)?.count == 24 << 20)
        let config = try #require(KernelConfig.read(procRoot: tree.path + "/proc", bootRoot: tree.path + "/boot"))
        #expect(config.source.hasSuffix("/boot/config-6.12"))  // the 24 MiB config.gz was refused
    }
}

/// Issue [O] class 5 in the census: sizes and mapping lengths near 2^64 in a `/proc` copy.
@Suite("Census integers: sizes and mapping lengths near 2^64 do not trap")
struct CensusIntegerTests {
    @Test("a maps line spanning 2^64, mappings and sizes that sum past Int.max")
    func nearTheTop() throws {
        let tree = try TemporaryTree()
        let huge = Int.max - 5
        for (pid, ino) in [(100, 7), (200, 8)] {
            try tree.write("\(pid)/comm", "p\n")
            try tree.link("\(pid)/fd/3", to: "/dmabuf:x")
            try tree.write("\(pid)/fdinfo/3", "pos:\t0\nflags:\t02\nmnt_id:\t12\nino:\t\(ino)\nsize:\t\(huge)\ncount:\t1\nexp_name:\tsystem\n")
        }
        try tree.write("100/maps", """
            0000000000000000-ffffffffffffffff rw-s 00000000 00:0c 7      /dmabuf:x
            0000000000000000-7ffffffffffffff0 rw-s 00000000 00:0c 7      /dmabuf:x
            0000000000000000-7ffffffffffffff0 rw-s 00000000 00:0c 7      /dmabuf:x\n
            """)
        try tree.write("200/maps", "")
        let census = DMABufCensus.take(procRoot: tree.path)
        #expect(census.buffers.count == 2)
        #expect(census.buffers[0].holders[0].mappings == 2)  // the 2^64 line is not a mapping
        #expect(census.buffers[0].holders[0].mappedBytes == Int.max)
        #expect(census.totals == [DMABufCensus.ExporterTotal(exporter: "system", buffers: 2, bytes: Int.max)])
        #expect(FDInfo(parsing: "size:\t-5\nexp_name:\tsystem\n").size == nil)
    }
}

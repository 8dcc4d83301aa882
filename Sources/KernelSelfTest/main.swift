// dmabuf-kernel-selftest: story 7 of docs/DESIGN.md on a real kernel, as the kernel tier runs it
// inside a QEMU guest (scripts/kernel-tier). Swift Testing cannot be linked into a static binary,
// so this is a runner of its own with the same strictness: every check prints one line,
// `KTEST PASS name :: evidence` or `KTEST FAIL name :: evidence`, an unexpected error fails the
// section it happened in, and the last line is `KTEST-SUMMARY: N passed, M failed`. The host
// parses these lines and also requires every check named in scripts/kernel-tier/expected-checks.txt.
//
// `dmabuf-kernel-selftest --vfio BDF` runs the VFIO dma-buf table instead (VFIOChecks.swift).
// `dmabuf-kernel-selftest --cli ARGS` runs the dmabuf tool itself (`dmabuf ls`, `dmabuf probe`),
// so that the census is taken by another process, as a user would take it.

import DMABufCLI
import DMACore
import Foundation
import Glibc
import CLibDRM
import LinuxDMABuf

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "--cli" {
    exit(dmabufMain(Array(CommandLine.arguments.dropFirst(2))))
}
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "--vfio" {
    exit(vfioMain(Array(CommandLine.arguments.dropFirst(2))))
}

/// Counts and prints the checks.
@MainActor
final class Runner {
    var passed = 0
    var failed = 0

    func check(_ name: String, _ condition: Bool, _ evidence: @autoclosure () -> String) {
        if condition { passed += 1 } else { failed += 1 }
        print("KTEST \(condition ? "PASS" : "FAIL") \(name) :: \(evidence())")
        fflush(nil)
    }

    /// A documented failure: `body` must fail with `errno` (and `code` when given).
    func expectFailure(_ name: String, errno: Errno, code: DMAError.Code? = nil, _ body: () throws -> Void) {
        do {
            try body()
            check(name, false, "succeeded; expected \(errno.name)")
        } catch let error as DMAError {
            let codeOK = code.map { $0 == error.code } ?? true
            check(name, error.errno == errno && codeOK, "\(error.code): \(error.description)")
        } catch {
            check(name, false, "not a DMAError: \(error)")
        }
    }

    /// Runs a section; an error it did not expect fails it.
    func section(_ name: String, _ body: () throws(DMAError) -> Void) {
        do throws(DMAError) {
            try body()
        } catch {
            check("\(name).unexpected-error", false, error.description)
        }
    }
}

let runner = Runner()

/// The errno of a failed call, `nil` when it succeeded.
func failure<T>(_ result: Result<T, Errno>) -> Errno? {
    if case .failure(let errno) = result { return errno }
    return nil
}
let pid = getpid()
let page = Int(sysconf(Int32(_SC_PAGESIZE)))

@MainActor
func openFDs() -> [String] {
    ((try? SystemCalls.listDirectory("/proc/self/fd").get()) ?? []).sorted()
}

@MainActor
func dmabufMapLines() -> [String] {
    // procfs files report size 0: read them to the end with the layer's own reader.
    let maps = String(decoding: (try? SystemCalls.readFile("/proc/self/maps").get()) ?? [], as: UTF8.self)
    return maps.split(separator: "\n").map(String.init).filter { $0.contains("/dmabuf:") || $0.contains("anon_inode:dmabuf") }
}

/// Runs this binary as the dmabuf tool (`posix_spawn` of `/proc/self/exe --cli ARGS`, stdout
/// through a pipe, `waitpid`) and returns its exit status and output. Plain system calls, not
/// Foundation's Process, whose child monitoring hung on a second spawn in the one-CPU guest.
@MainActor
func runCLI(_ arguments: [String]) -> (status: Int32, stdout: String) {
    var pipeFDs: [Int32] = [-1, -1]
    guard pipe(&pipeFDs) == 0 else { return (-1, "pipe failed: errno \(errno)") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
    posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
    posix_spawn_file_actions_addclose(&actions, pipeFDs[1])
    let argv = ["/proc/self/exe", "--cli"] + arguments
    var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for pointer in cArguments { free(pointer) } }
    var child: pid_t = 0
    let spawned = posix_spawn(&child, "/proc/self/exe", &actions, nil, &cArguments, environ)
    close(pipeFDs[1])
    defer { close(pipeFDs[0]) }
    guard spawned == 0 else { return (-1, "posix_spawn failed: errno \(spawned)") }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        output.append(contentsOf: chunk[0..<count])
    }
    var status: Int32 = 0
    while waitpid(child, &status, 0) < 0 && errno == EINTR {}
    let exited = (status & 0x7f) == 0
    return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), String(decoding: output, as: UTF8.self))
}

/// The checks every dma-buf gets, whatever exported it.
@MainActor
func commonChecks(_ tag: String, _ buffer: borrowing DMABufFD, size expectedSize: Int, exporter: String, name: String) throws(DMAError) {
    let size = try buffer.size()
    runner.check("\(tag).size-by-lseek", size == expectedSize, "lseek(SEEK_END) = \(size), expected \(expectedSize)")
    runner.expectFailure("\(tag).lseek-offset-refused", errno: .EINVAL, code: .refusedBeforeCall) {
        _ = try buffer.seek(offset: 4096, from: .start)
    }
    let kernelSeek = SystemCalls.lseek(buffer.rawValue, 0, SEEK_CUR)
    runner.check("\(tag).kernel-lseek-cur-einval", failure(kernelSeek) == .EINVAL && DMABufFD.seekRefusal(offset: 0, whence: SEEK_CUR) == .EINVAL,
                 "kernel: \(kernelSeek); model: \(String(describing: DMABufFD.seekRefusal(offset: 0, whence: SEEK_CUR)))")

    // Written through mmap inside SYNC, read back inside another SYNC.
    let mapping = try buffer.map()
    try buffer.withCPUAccess(.write) { () throws(DMAError) in
        mapping.withMutableBytes { bytes in
            let words = bytes.bindMemory(to: UInt32.self)
            for index in words.indices { words[index] = 0xC0DE_0000 &+ UInt32(truncatingIfNeeded: index) }
        }
    }
    let mismatches = try buffer.withCPUAccess(.read) { () throws(DMAError) -> Int in
        mapping.withBytes { bytes in
            let words = bytes.bindMemory(to: UInt32.self)
            return words.indices.filter { words[$0] != 0xC0DE_0000 &+ UInt32(truncatingIfNeeded: $0) }.count
        }
    }
    runner.check("\(tag).mmap-write-in-sync", mismatches == 0, "\(mapping.length) bytes written and read back inside DMA_BUF_IOCTL_SYNC, \(mismatches) words wrong")

    var badSync = dma_buf_sync(flags: 0)
    let kernelSync = withUnsafeMutablePointer(to: &badSync) { SystemCalls.ioctl(buffer.rawValue, .dmaBufSync, $0) }
    runner.check("\(tag).kernel-sync-no-access-einval", failure(kernelSync) == .EINVAL && DMABufFD.syncRefusal(flags: 0) == .EINVAL,
                 "kernel: \(kernelSync); model refuses flags 0 with \(String(describing: DMABufFD.syncRefusal(flags: 0)))")
    var badBits = dma_buf_sync(flags: UInt64(DMA_BUF_SYNC_READ) | 0x100)
    let kernelBits = withUnsafeMutablePointer(to: &badBits) { SystemCalls.ioctl(buffer.rawValue, .dmaBufSync, $0) }
    runner.check("\(tag).kernel-sync-bad-bits-einval", failure(kernelBits) == .EINVAL && DMABufFD.syncRefusal(flags: 0x101) == .EINVAL,
                 "kernel: \(kernelBits)")

    let longName = String(repeating: "n", count: DMABufFD.nameCapacity)
    let kernelLong = longName.withCString { SystemCalls.ioctl(buffer.rawValue, .dmaBufSetName, UnsafeMutableRawPointer(mutating: $0)) }
    runner.check("\(tag).kernel-name-32-bytes-einval", failure(kernelLong) == .EINVAL && DMABufFD.nameRefusal(longName) == .EINVAL,
                 "kernel: \(kernelLong) for 32 bytes; model: \(String(describing: DMABufFD.nameRefusal(longName)))")
    runner.expectFailure("\(tag).name-32-bytes-refused", errno: .EINVAL, code: .refusedBeforeCall) {
        try buffer.setName(longName)
    }
    let longest = String(repeating: "m", count: DMABufFD.nameCapacity - 1)
    try buffer.setName(longest)
    runner.check("\(tag).name-31-bytes-accepted", try buffer.fdinfo().name == longest, "31-byte name set and read back from fdinfo")
    try buffer.setName(name)

    let info = try buffer.fdinfo()
    runner.check("\(tag).fdinfo", info.exporter == exporter && info.size == expectedSize && info.name == name && info.inode != nil,
                 "exp_name \(info.exporter ?? "-"), size \(info.size ?? -1), name \(info.name ?? "-"), ino \(info.inode.map(String.init) ?? "-"), count \(info.count ?? -1), other \(info.otherFields.map(\.key))")

    let fence = try buffer.exportSyncFile(.readWrite)
    try buffer.importSyncFile(fence, .write)
    runner.check("\(tag).sync-file-export-import", fence.rawValue >= 0, "exported sync file fd \(fence.rawValue), imported it back for write")
    runner.expectFailure("\(tag).sync-file-no-access-refused", errno: .EINVAL, code: .refusedBeforeCall) {
        _ = try buffer.exportSyncFile([])
    }
}

/// A foreign buffer imported into vgem and re-exported is the same dma-buf (same inode); imported
/// into virtio_gpu it is refused with ENODEV on these kernels.
@MainActor
func importChecks(_ tag: String, _ buffer: borrowing DMABufFD, vgem: borrowing DRMNode, virtio: borrowing DRMNode, intoVirtio: Bool) throws(DMAError) {
    let inode = try buffer.fdinfo().inode
    let handle = try vgem.importDMABuf(buffer)
    let again = try vgem.exportDMABuf(handle)
    let inodeAgain = try again.fdinfo().inode
    runner.check("\(tag).vgem-import-reexport-same-inode", inode != nil && inode == inodeAgain,
                 "ino \(inode.map(String.init) ?? "-") exported, vgem \(handle) re-exported as ino \(inodeAgain.map(String.init) ?? "-")")
    try vgem.closeHandle(handle)
    if intoVirtio {
        runner.expectFailure("\(tag).virtio_gpu-import-enodev", errno: .ENODEV, code: .systemCallFailed) {
            _ = try virtio.importDMABuf(buffer)
        }
    }
}

let fdsBefore = openFDs()
var mapsDuringStory = -1
runner.check("kernel.release", true, KernelConfig.release() ?? "?")

/// The configuration facts the two kernels of the tier differ in, each asserted for the series
/// booted (docs/kernel-tier.md): Debian's 6.12 has no PCI_P2PDMA and MOVE_NOTIFY off (the symbol
/// exists, "is not set"), and no VFIO dma-buf export (it came in 6.19); Debian's 7.3 has
/// PCI_P2PDMA and VFIO_PCI_DMABUF, and no MOVE_NOTIFY symbol at all (always on since 7.1).
@MainActor
func configFacts() {
    let release = KernelConfig.release() ?? "?"
    let parts = release.split(separator: ".").prefix(2).compactMap { Int($0.prefix(while: \.isNumber)) }
    let series = parts.count == 2 ? parts[0] * 100 + parts[1] : 0
    guard let text = try? SystemCalls.readFile("/boot/config-\(release)").get() else {
        runner.check("config.read", false, "/boot/config-\(release) is not in the initramfs")
        return
    }
    let config = String(decoding: text, as: UTF8.self)
    let parsed = KernelConfig(source: "/boot/config-\(release)", parsing: config)
    runner.check("config.read", true, "\(parsed.values.count) options in /boot/config-\(release), series \(series / 100).\(series % 100)")
    let moveNotifyMentioned = config.contains("CONFIG_DMABUF_MOVE_NOTIFY")
    if series >= 701 {
        runner.check("config.pci-p2pdma", parsed.value("CONFIG_PCI_P2PDMA") == "y", "CONFIG_PCI_P2PDMA=\(parsed.value("CONFIG_PCI_P2PDMA")), expected y on \(release)")
        runner.check("config.move-notify", !moveNotifyMentioned, "CONFIG_DMABUF_MOVE_NOTIFY \(moveNotifyMentioned ? "still mentioned" : "absent: the symbol is gone, invalidation always on (7.1)")")
        runner.check("config.vfio-dmabuf", parsed.value("CONFIG_VFIO_PCI_DMABUF") == "y", "CONFIG_VFIO_PCI_DMABUF=\(parsed.value("CONFIG_VFIO_PCI_DMABUF")), expected y (VFIO dma-buf export, 6.19)")
    } else {
        runner.check("config.pci-p2pdma", parsed.value("CONFIG_PCI_P2PDMA") == "not set", "CONFIG_PCI_P2PDMA \(parsed.value("CONFIG_PCI_P2PDMA")), expected not set on Debian's \(release)")
        runner.check("config.move-notify", moveNotifyMentioned && parsed.value("CONFIG_DMABUF_MOVE_NOTIFY") == "not set",
            "CONFIG_DMABUF_MOVE_NOTIFY \(moveNotifyMentioned ? parsed.value("CONFIG_DMABUF_MOVE_NOTIFY") : "absent"), expected the symbol present and not set (importers pin before 7.1)")
        runner.check("config.vfio-dmabuf", parsed.values["CONFIG_VFIO_PCI_DMABUF"] == nil, "CONFIG_VFIO_PCI_DMABUF \(parsed.value("CONFIG_VFIO_PCI_DMABUF")), expected absent before 6.19")
    }
}
configFacts()

@MainActor
func story() {
    let devices = DRM.devices()
    let vgemNode: DRMNode?
    let virtioNode: DRMNode?
    do throws(DMAError) {
        vgemNode = try DRM.open(driver: "vgem")
    } catch {
        runner.check("drm.open", false, error.description)
        return
    }
    do throws(DMAError) {
        virtioNode = try DRM.open(driver: "virtio_gpu")
    } catch {
        runner.check("drm.open", false, error.description)
        return
    }
    let listing = devices.map { "\($0.bus.primaryNode ?? "-")=\($0.driver?.name ?? "?")" }.joined(separator: " ")
    guard let vgem = consume vgemNode, let virtio = consume virtioNode else {
        runner.check("drm.find-by-driver", false, "vgem or virtio_gpu missing: \(listing)")
        return
    }
    runner.check("drm.find-by-driver", true, "vgem at \(vgem.path), virtio_gpu at \(virtio.path) (\(listing))")

    var inodes: [String: UInt64] = [:]
    var descriptors: [String: Int32] = [:]

    // virtio-gpu: a dumb buffer exported with PRIME.
    var virtioBuffer: DMABufFD? = nil
    runner.section("virtio_gpu") { () throws(DMAError) in
        let dumb = try virtio.createDumbBuffer(width: 64, height: 64, bitsPerPixel: 32)
        runner.check("virtio_gpu.create-dumb", dumb.pitch == 256 && dumb.size == 16384, "pitch \(dumb.pitch), size \(dumb.size)")
        let buffer = try virtio.exportDMABuf(dumb.handle)
        try commonChecks("virtio_gpu", buffer, size: 16384, exporter: "virtio_gpu", name: "ktier-virtio_gpu")
        try importChecks("virtio_gpu", buffer, vgem: vgem, virtio: virtio, intoVirtio: false)
        let own = try virtio.importDMABuf(buffer)
        runner.check("virtio_gpu.self-import-same-handle", own == dumb.handle, "re-import gave \(own), dumb was \(dumb.handle)")
        inodes["ktier-virtio_gpu"] = try buffer.fdinfo().inode
        descriptors["ktier-virtio_gpu"] = buffer.rawValue
        virtioBuffer = consume buffer
    }
    runner.expectFailure("drm.dumb-zero-width-refused", errno: .EINVAL, code: .refusedBeforeCall) {
        _ = try virtio.createDumbBuffer(width: 0, height: 64, bitsPerPixel: 32)
    }

    // vgem: exp_name is "drm".
    var vgemBuffer: DMABufFD? = nil
    runner.section("vgem") { () throws(DMAError) in
        let dumb = try vgem.createDumbBuffer(width: 64, height: 64, bitsPerPixel: 32)
        runner.check("vgem.create-dumb", dumb.pitch == 256 && dumb.size == 16384, "pitch \(dumb.pitch), size \(dumb.size)")
        let buffer = try vgem.exportDMABuf(dumb.handle)
        try commonChecks("vgem", buffer, size: 16384, exporter: "drm", name: "ktier-vgem")
        runner.expectFailure("vgem.virtio_gpu-import-enodev", errno: .ENODEV, code: .systemCallFailed) {
            _ = try virtio.importDMABuf(buffer)
        }
        inodes["ktier-vgem"] = try buffer.fdinfo().inode
        descriptors["ktier-vgem"] = buffer.rawValue
        vgemBuffer = consume buffer
    }

    // udmabuf from a sealed memfd.
    var udmaBuffer: DMABufFD? = nil
    var udmaMapping: DMABufMemoryMap? = nil
    runner.section("udmabuf") { () throws(DMAError) in
        guard let device = try UDMABufDevice.open() else {
            runner.check("udmabuf.present", false, "/dev/udmabuf is absent on this kernel")
            return
        }
        runner.check("udmabuf.present", true, device.path)
        let unsealed = try Memfd(name: "ktier-unsealed", size: 16384)
        runner.expectFailure("udmabuf.unsealed-memfd-refused", errno: .EINVAL, code: .refusedBeforeCall) {
            _ = try device.createBuffer(memfd: unsealed, size: 16384)
        }
        runner.expectFailure("udmabuf.kernel-unsealed-memfd-einval", errno: .EINVAL, code: .systemCallFailed) {
            _ = try device.createBufferUnchecked(memfdDescriptor: unsealed.rawValue, offset: 0, size: 16384)
        }
        runner.expectFailure("udmabuf.kernel-unaligned-size-einval", errno: .EINVAL, code: .systemCallFailed) {
            _ = try device.createBufferUnchecked(memfdDescriptor: unsealed.rawValue, offset: 0, size: 1000)
        }
        let memfd = try Memfd(name: "ktier-udmabuf", size: 16384)
        try memfd.addSeals(.shrink)
        let buffer = try device.createBuffer(memfd: memfd, size: 16384)
        try commonChecks("udmabuf", buffer, size: 16384, exporter: "udmabuf", name: "ktier-udmabuf")
        let word = try memfd.read(count: 4, at: 4)
        let value = word.count == 4 ? word.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } : 0
        runner.check("udmabuf.pattern-visible-in-memfd", value == 0xC0DE_0001, "pread(memfd, 4, 4) = 0x\(String(value, radix: 16))")
        try importChecks("udmabuf", buffer, vgem: vgem, virtio: virtio, intoVirtio: true)
        inodes["ktier-udmabuf"] = try buffer.fdinfo().inode
        descriptors["ktier-udmabuf"] = buffer.rawValue
        udmaMapping = try buffer.map()  // kept for the census: one mapping of 16384 bytes
        udmaBuffer = consume buffer
    }

    // The system dma-heap.
    var heapBuffer: DMABufFD? = nil
    runner.section("heap") { () throws(DMAError) in
        let heaps = DMAHeap.available()
        runner.check("heap.available", heaps.contains("system"), "heaps: \(heaps)")
        let cma = try DMAHeap.open(name: "cma")
        runner.check("heap.cma-absent-not-failure", cma == nil, "CONFIG_DMABUF_HEAPS_CMA is not set in Debian kernels")
        guard let heap = try DMAHeap.open(name: "system") else {
            runner.check("heap.system-present", false, "/dev/dma_heap/system is absent")
            return
        }
        runner.expectFailure("heap.zero-length-refused", errno: .EINVAL, code: .refusedBeforeCall) {
            _ = try heap.allocate(length: 0)
        }
        runner.expectFailure("heap.kernel-zero-length-einval", errno: .EINVAL, code: .systemCallFailed) {
            _ = try heap.allocateUnchecked(length: 0, fdFlags: O_RDWR | O_CLOEXEC, heapFlags: 0)
        }
        runner.expectFailure("heap.kernel-heap-flags-einval", errno: .EINVAL, code: .systemCallFailed) {
            _ = try heap.allocateUnchecked(length: 32768, fdFlags: O_RDWR | O_CLOEXEC, heapFlags: 1)
        }
        let buffer = try heap.allocate(length: 32768)
        try commonChecks("heap", buffer, size: 32768, exporter: "system", name: "ktier-heap-system")
        try importChecks("heap", buffer, vgem: vgem, virtio: virtio, intoVirtio: true)
        inodes["ktier-heap-system"] = try buffer.fdinfo().inode
        descriptors["ktier-heap-system"] = buffer.rawValue
        heapBuffer = consume buffer
    }

    // `dmabuf ls`, run as another process, sees exactly these buffers, their exporters and holders.
    let expectedExporters = ["ktier-virtio_gpu": "virtio_gpu", "ktier-vgem": "drm", "ktier-udmabuf": "udmabuf", "ktier-heap-system": "system"]
    for (argumentsTag, arguments) in [("ls.pid", ["ls", "--json", "--pid", String(pid)]), ("ls.all", ["ls", "--json"])] {
        let result = runCLI(arguments)
        guard result.status == 0, let census = try? JSONDecoder().decode(DMABufCensus.self, from: Data(result.stdout.utf8)) else {
            runner.check("\(argumentsTag).runs", false, "status \(result.status): \(result.stdout.prefix(300))")
            continue
        }
        runner.check("\(argumentsTag).runs", true, "\(census.buffers.count) buffers, \(census.processesScanned) processes, \(census.unreadable.count) unreadable")
        let seen = Dictionary(census.buffers.map { ($0.name ?? "-", $0) }, uniquingKeysWith: { a, _ in a })
        runner.check("\(argumentsTag).exactly-our-buffers", Set(census.buffers.map(\.inode)) == Set(inodes.values) && census.buffers.count == 4,
                     "inodes seen \(census.buffers.map(\.inode).sorted()), created \(inodes.values.sorted())")
        for (name, exporter) in expectedExporters.sorted(by: { $0.key < $1.key }) {
            let buffer = seen[name]
            let holder = buffer?.holders.first { $0.pid == pid }
            let expectedMappings = name == "ktier-udmabuf" ? 1 : 0
            runner.check("\(argumentsTag).\(name)", buffer?.exporter == exporter && buffer?.inode == inodes[name]
                            && holder.map { $0.fds.contains(descriptors[name] ?? -1) && $0.mappings == expectedMappings } == true
                            && buffer?.holders.count == 1,
                         "exporter \(buffer?.exporter ?? "-"), ino \(buffer.map { String($0.inode) } ?? "-"), holders \(buffer?.holders.map { "\($0.pid)/\($0.comm) fds \($0.fds) maps \($0.mappings)" } ?? [])")
        }
        let totals = Dictionary(census.totals.map { ($0.exporter, $0.bytes) }, uniquingKeysWith: +)
        runner.check("\(argumentsTag).totals", totals == ["virtio_gpu": 16384, "drm": 16384, "udmabuf": 16384, "system": 32768], "\(totals.sorted(by: { $0.key < $1.key }))")
    }
    mapsDuringStory = dmabufMapLines().count
    let text = runCLI(["ls"])
    runner.check("ls.text", text.status == 0 && expectedExporters.keys.allSatisfy { text.stdout.contains($0) }, text.stdout.split(separator: "\n").prefix(3).joined(separator: " | "))

    let probe = runCLI(["probe", "--json"])
    let probeOK = probe.status == 0 && probe.stdout.contains("\"vgem\"") && probe.stdout.contains("\"virtio_gpu\"")
        && probe.stdout.contains("\"udmabuf\" : \"present\"") && probe.stdout.contains("\"system\"") && probe.stdout.contains("\"CONFIG_UDMABUF\" : \"y\"")
    runner.check("probe.json", probeOK, probe.stdout.replacingOccurrences(of: "\n", with: " ").prefix(600) + "")

    // Everything is released here: fds, mappings and DRM nodes go with their owners.
    _ = consume virtioBuffer
    _ = consume vgemBuffer
    _ = consume udmaMapping
    _ = consume udmaBuffer
    _ = consume heapBuffer
}

story()

let fdsAfter = openFDs()
runner.check("leak.fds", fdsBefore == fdsAfter, "/proc/self/fd before \(fdsBefore), after \(fdsAfter)")
let leftMaps = dmabufMapLines()
runner.check("leak.mappings", leftMaps.isEmpty && mapsDuringStory == 1, "dma-buf lines in /proc/self/maps: \(mapsDuringStory) while the udmabuf mapping was held, \(leftMaps.count) after")

/// `dmabuf ls --kernel` (issue [M]) against the real kernel's debugfs `dma_buf/bufinfo`, run as
/// another process after the story (whose own leak checks are done):
/// - a system-heap buffer imported into vgem (the DRM device here that imports foreign buffers:
///   virtio-gpu refuses every import on 6.12 and 7.3), then its fd closed: `ls --kernel` lists it
///   as held by the kernel only, with vgem attached; plain `ls` does not list it;
/// - a udmabuf mapped, then its fd closed: a holder with a mapping and no fd;
/// - three more imported buffers whose fds are closed, one per round: `--diff` against the view
///   taken before reports them as appeared, held by the kernel, and the system exporter's line
///   grown by three.
@MainActor
func kernelViewChecks() {
    runner.section("ls-kernel") { () throws(DMAError) in
        guard let vgem = try DRM.open(driver: "vgem"), let heap = try DMAHeap.open(name: "system"), let udmabuf = try UDMABufDevice.open() else {
            runner.check("ls-kernel.devices", false, "vgem, the system heap or udmabuf is missing")
            return
        }
        let before = runCLI(["ls", "--kernel", "--json"])
        let beforePath = "/tmp/ls-kernel-before.json"
        _ = FileManager.default.createFile(atPath: beforePath, contents: Data(before.stdout.utf8))
        let baseline = try? JSONDecoder().decode(DMABufKernelView.self, from: Data(before.stdout.utf8))
        runner.check("ls-kernel.runs", before.status == 0 && baseline?.source.readable == true,
            "status \(before.status): bufinfo \(baseline?.source.bufinfo ?? "-") readable \(baseline?.source.readable ?? false), \(baseline?.buffers.count ?? -1) buffers")

        var kernelOnly: UInt64 = 0
        do {
            let buffer = try heap.allocate(length: 65536)
            try buffer.setName("ktier-kernel-only")
            kernelOnly = try buffer.fdinfo().inode ?? 0
            _ = try vgem.importDMABuf(buffer)
        }  // the fd is closed here; vgem's GEM object keeps the buffer
        var mappedOnly: UInt64 = 0
        let memfd = try Memfd(name: "ktier-mapped-only", size: 16384)
        try memfd.addSeals(.shrink)
        var mapping: DMABufMemoryMap? = nil
        do {
            let buffer = try udmabuf.createBuffer(memfd: memfd, size: 16384)
            mappedOnly = try buffer.fdinfo().inode ?? 0
            mapping = try buffer.map()
        }
        let viewRun = runCLI(["ls", "--kernel", "--json"])
        let view = try? JSONDecoder().decode(DMABufKernelView.self, from: Data(viewRun.stdout.utf8))
        let held = view?.buffers.first { $0.inode == kernelOnly }
        runner.check("ls-kernel.held-by-kernel", held?.heldByKernelOnly == true && held?.holders.isEmpty == true && held?.exporter == "system",
            "ino \(kernelOnly): \(held.map { "exporter \($0.exporter ?? "-"), holders \($0.holders.count), heldByKernelOnly \($0.heldByKernelOnly)" } ?? "not listed")")
        runner.check("ls-kernel.attached-device", held.map { !$0.attachedDevices.isEmpty && $0.attachedDevices.allSatisfy { $0.contains("vgem") } } == true,
            "attached devices: \(held?.attachedDevices ?? [])")
        let plain = runCLI(["ls", "--json"])
        let census = try? JSONDecoder().decode(DMABufCensus.self, from: Data(plain.stdout.utf8))
        runner.check("ls-kernel.plain-ls-blind", census != nil && census?.buffers.contains { $0.inode == kernelOnly } == false,
            "plain ls lists \(census?.buffers.count ?? -1) buffers, the kernel-only one \(census?.buffers.contains { $0.inode == kernelOnly } == true ? "among them" : "not among them")")
        let mapped = view?.buffers.first { $0.inode == mappedOnly }
        let holder = mapped?.holders.first { $0.pid == pid }
        runner.check("ls-kernel.mapping-only-holder", holder.map { $0.fds.isEmpty && $0.mappings == 1 } == true && mapped?.heldByKernelOnly == false,
            "ino \(mappedOnly): holders \(mapped?.holders.map { "\($0.pid) fds \($0.fds) maps \($0.mappings)" } ?? [])")

        var leaked: [UInt64] = []
        for round in 0..<3 {
            let buffer = try heap.allocate(length: 4096)
            try buffer.setName("ktier-leak-\(round)")
            leaked.append(try buffer.fdinfo().inode ?? 0)
            _ = try vgem.importDMABuf(buffer)
        }
        let diffRun = runCLI(["ls", "--kernel", "--diff", beforePath, "--json"])
        let diff = try? JSONDecoder().decode(DMABufKernelDiff.self, from: Data(diffRun.stdout.utf8))
        let appeared = Set(diff?.appeared.map(\.inode) ?? [])
        let system = diff?.exporters.first { $0.key == "system" }
        runner.check("ls-kernel.diff-leak-grows", Set(leaked).isSubset(of: appeared) && appeared.contains(kernelOnly) && (system?.buffersDelta ?? 0) >= 4,
            "appeared \(appeared.sorted()), leaked \(leaked), system exporter \(system.map { "\($0.buffersBefore) -> \($0.buffersAfter)" } ?? "-")")
        _ = consume mapping
    }
}
kernelViewChecks()

print("KTEST-SUMMARY: \(runner.passed) passed, \(runner.failed) failed")
exit(runner.failed == 0 && runner.passed > 0 ? 0 : 1)

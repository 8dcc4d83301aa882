import CLibDRM
import DMACore
import Foundation
import Glibc
@testable import LinuxDMABuf
import Synchronization
import Testing

/// A kernel for the fault-injection runs: makes the real calls itself (so it knows every
/// descriptor and mapping it hands out), answers the device ioctls the machine has no device for
/// with real descriptors (memfds named after the run), and fails the call numbered `faultAt` once
/// with `fault`. A failed `close` or `munmap` is failed after the real call, as Linux releases
/// the descriptor whatever `close` returns (and a whole-mapping `munmap` cannot half-fail).
final class FaultKernel: SystemCallInterceptor {
    struct Books {
        var calls: [SystemCall] = []
        var open: [Int32: Int] = [:]  // descriptor → times given and not yet closed
        var mapped: [UInt: Int] = [:]
        var given = 0
        var closes = 0
        var mappings = 0
        var problems: [String] = []
    }

    let tag: String
    let faultAt: Int?
    let fault: Errno
    let books = Mutex(Books())

    init(tag: String, faultAt: Int? = nil, fault: Errno = .EINTR) {
        self.tag = tag
        self.faultAt = faultAt
        self.fault = fault
    }

    var calls: [SystemCall] { books.withLock { $0.calls } }

    private func give(_ fd: Int32) {
        books.withLock { $0.open[fd, default: 0] += 1; $0.given += 1 }
    }

    /// A real descriptor for what a device would hand out: a memfd named after the run.
    private func newDescriptor(_ what: String) -> Int32 {
        let fd = dmabufkit_memfd_create("\(tag)-\(what)", UInt32(MFD_CLOEXEC))
        precondition(fd >= 0)
        _ = Glibc.ftruncate(fd, 65536)
        give(fd)
        return fd
    }

    func intercept(_ call: SystemCall, argument: UnsafeMutableRawPointer?) -> SystemCallOutcome {
        let index = books.withLock { books -> Int in
            books.calls.append(call)
            return books.calls.count - 1
        }
        if index == faultAt {
            switch call {
            case .close(let fd):
                _ = Glibc.close(fd)
                books.withLock { $0.closes += 1; released(&$0, fd) }
            case .munmap(let address, let length):
                _ = Glibc.munmap(UnsafeMutableRawPointer(bitPattern: address), length)
                books.withLock { unmapped(&$0, address) }
            default: break
            }
            return .fails(fault)
        }
        switch call {
        case .open(let path, let flags):
            let fd = path.withCString { dmabufkit_open($0, flags) }
            if fd < 0 { return .fails(Errno(rawValue: Glibc.errno)) }
            give(fd)
            return .returns(Int(fd))
        case .memfdCreate(let name, let flags):
            let fd = name.withCString { dmabufkit_memfd_create($0, flags) }
            if fd < 0 { return .fails(Errno(rawValue: Glibc.errno)) }
            give(fd)
            return .returns(Int(fd))
        case .close(let fd):
            books.withLock { $0.closes += 1; released(&$0, fd) }
            return Glibc.close(fd) == 0 ? .returns(0) : .fails(Errno(rawValue: Glibc.errno))
        case .mmap(let length, let protection, let flags, let fd, let offset):
            let address = Glibc.mmap(nil, length, protection, flags, fd, off_t(offset))
            if address == MAP_FAILED { return .fails(Errno(rawValue: Glibc.errno)) }
            books.withLock { $0.mapped[UInt(bitPattern: address), default: 0] += 1; $0.mappings += 1 }
            return .returns(Int(bitPattern: address))
        case .munmap(let address, let length):
            books.withLock { unmapped(&$0, address) }
            return Glibc.munmap(UnsafeMutableRawPointer(bitPattern: address), length) == 0 ? .returns(0) : .fails(Errno(rawValue: Glibc.errno))
        case .ioctl(_, let request):
            guard let argument else { return .fails(.EFAULT) }
            switch request {
            case .udmabufCreate:
                let create = argument.load(as: udmabuf_create.self)
                let fd = Glibc.fcntl(Int32(bitPattern: create.memfd), F_DUPFD_CLOEXEC, 0)
                if fd < 0 { return .fails(Errno(rawValue: Glibc.errno)) }
                give(fd)
                return .returns(Int(fd))
            case .dmaHeapAlloc:
                argument.assumingMemoryBound(to: dma_heap_allocation_data.self).pointee.fd = UInt32(newDescriptor("heap"))
                return .returns(0)
            case .exportSyncFile:
                argument.assumingMemoryBound(to: dma_buf_export_sync_file.self).pointee.fd = newDescriptor("sync")
                return .returns(0)
            case .primeHandleToFD:
                argument.assumingMemoryBound(to: drm_prime_handle.self).pointee.fd = newDescriptor("prime")
                return .returns(0)
            case .primeFDToHandle:
                argument.assumingMemoryBound(to: drm_prime_handle.self).pointee.handle = 2
                return .returns(0)
            case .createDumb:
                let dumb = argument.assumingMemoryBound(to: drm_mode_create_dumb.self)
                dumb.pointee.handle = 1
                dumb.pointee.pitch = dumb.pointee.width * dumb.pointee.bpp / 8
                dumb.pointee.size = UInt64(dumb.pointee.pitch) * UInt64(dumb.pointee.height)
                return .returns(0)
            default:
                return .returns(0)  // SYNC, SET_NAME, IMPORT_SYNC_FILE, GEM_CLOSE, DESTROY_DUMB
            }
        case .drmGetVersion:
            return .version(DRMVersion(name: "faulty", major: 1, minor: 0, patchLevel: 0))
        default:
            return .perform
        }
    }

    private func released(_ books: inout Books, _ fd: Int32) {
        guard let count = books.open[fd], count > 0 else {
            books.problems.append("close(\(fd)) of a descriptor not open (closed twice, or never given)")
            return
        }
        books.open[fd] = count == 1 ? nil : count - 1
    }

    private func unmapped(_ books: inout Books, _ address: UInt) {
        guard let count = books.mapped[address], count > 0 else {
            books.problems.append("munmap(0x\(String(address, radix: 16))) of an address not mapped")
            return
        }
        books.mapped[address] = count == 1 ? nil : count - 1
    }
}

/// Everything LinuxDMABuf does with descriptors and mappings, in one go: a sealed memfd made a
/// udmabuf, sized, named, its fdinfo read, mapped and written inside a CPU access section, a sync
/// file exported and imported; a heap allocation; a DRM node's version, a dumb buffer exported
/// with PRIME, imported back, its handles dropped.
func realLayerWorkload(tag: String, folder: String) throws(DMAError) -> [UInt8] {
    let page = SystemCalls.pageSize
    let memfd = try Memfd(name: tag, size: 4 * page)
    try memfd.addSeals([.shrink])
    guard let device = try UDMABufDevice.open(path: folder + "/udmabuf") else { throw DMAError(.notFound, .ENOENT, "no udmabuf") }
    let buffer = try device.createBuffer(memfd: memfd, offset: 0, size: 2 * page)
    _ = try buffer.size()
    try buffer.setName("fault")
    _ = try buffer.fdinfo()
    let mapping = try buffer.map()
    try buffer.withCPUAccess(.readWrite) { () throws(DMAError) in mapping.withMutableBytes { $0[0] = 0x5a } }
    let sync = try buffer.exportSyncFile(.read)
    try buffer.importSyncFile(sync, .write)
    guard let heap = try DMAHeap.open(name: "system", devRoot: folder) else { throw DMAError(.notFound, .ENOENT, "no heap") }
    let heapBuffer = try heap.allocate(length: page)
    _ = try heapBuffer.size()
    let node = try DRMNode(path: folder + "/card0")
    _ = try node.version()
    let dumb = try node.createDumbBuffer(width: 64, height: 64, bitsPerPixel: 32)
    let exported = try node.exportDMABuf(dumb.handle)
    let handle = try node.importDMABuf(exported)
    try node.closeHandle(handle)
    try node.destroyDumbBuffer(dumb.handle)
    return try memfd.read(count: 1, at: 0)
}

/// Entries of `/proc/self/fd` and lines of `/proc/self/maps` that name `tag` or `folder`: what is
/// left of a run (other tests' descriptors never name them).
func leftovers(tag: String, folder: String) -> (fds: Int, maps: Int) {
    let fm = FileManager.default
    let fds = ((try? fm.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).filter { entry in
        guard let target = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + entry) else { return false }
        return target.contains(tag) || target.contains(folder)
    }.count
    let maps = ((try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8)) ?? "").split(separator: "\n")
        .filter { $0.contains(tag) || $0.contains(folder) }.count
    return (fds, maps)
}

/// The system calls whose EINTR the layer must retry: all but close and munmap (retrying those
/// is wrong: Linux has released the descriptor already).
func isRetried(_ call: SystemCall) -> Bool {
    switch call {
    case .close, .munmap: false
    default: true
    }
}

@Suite("Injected system-call faults in the real layer", .serialized)
struct SyscallFaultTests {
    static let faults: [Errno] = [.EINTR, .EAGAIN, .ENOMEM, .EBADF, .ENODEV, .EFAULT]

    /// A folder with the device nodes this machine lacks, as plain files (opened for real).
    static func makeFolder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dmabufkit-faults-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("dma_heap"), withIntermediateDirectories: true)
        for name in ["udmabuf", "dma_heap/system", "card0"] {
            _ = FileManager.default.createFile(atPath: folder.appendingPathComponent(name).path, contents: Data())
        }
        return folder.path
    }

    @Test("without faults the workload succeeds and releases everything once")
    func baseline() throws {
        let folder = try Self.makeFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let tag = "dmabufkit-fault-\(UUID().uuidString.prefix(8))"
        let kernel = FaultKernel(tag: tag)
        let result = try SystemCalls.$interceptor.withValue(kernel) { try realLayerWorkload(tag: tag, folder: folder) }
        #expect(result == [0x5a])
        let books = kernel.books.withLock { $0 }
        #expect(books.problems.isEmpty)
        #expect(books.open.isEmpty, "descriptors left open: \(books.open)")
        #expect(books.mapped.isEmpty)
        #expect(books.given >= 8 && books.given == books.closes)
        #expect(books.mappings == 1)
        let left = leftovers(tag: tag, folder: folder)
        #expect(left.fds == 0 && left.maps == 0)
    }

    @Test("each call fails in turn with each errno: no crash, EINTR retried, each fd and mapping released once", arguments: faults)
    func everyCallFails(_ fault: Errno) throws {
        let folder = try Self.makeFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let probe = FaultKernel(tag: "dmabufkit-fault-probe")
        _ = try SystemCalls.$interceptor.withValue(probe) { try realLayerWorkload(tag: "dmabufkit-fault-probe", folder: folder) }
        let calls = probe.calls
        #expect(calls.count >= 30)
        print("fault injection, real layer: \(calls.count) calls, each failed with \(fault.name)")
        for index in calls.indices {
            let tag = "dmabufkit-fault-\(fault.rawValue)-\(index)-\(UUID().uuidString.prefix(8))"
            let kernel = FaultKernel(tag: tag, faultAt: index, fault: fault)
            let outcome = SystemCalls.$interceptor.withValue(kernel) { () -> Result<[UInt8], DMAError> in
                do throws(DMAError) { return .success(try realLayerWorkload(tag: tag, folder: folder)) } catch { return .failure(error) }
            }
            let books = kernel.books.withLock { $0 }
            let what = "\(calls[index]) failing with \(fault.name)"
            #expect(books.problems.isEmpty, "\(what): \(books.problems)")
            #expect(books.open.isEmpty, "\(what): descriptors left open \(books.open)")
            #expect(books.mapped.isEmpty, "\(what): mappings left \(books.mapped)")
            #expect(books.given == books.closes, "\(what): \(books.given) descriptors given, \(books.closes) closed")
            let left = leftovers(tag: tag, folder: folder)
            #expect(left.fds == 0 && left.maps == 0, "\(what): /proc/self shows \(left.fds) fds, \(left.maps) mappings left")
            if fault == .EINTR {
                if isRetried(calls[index]) {
                    #expect((try? outcome.get()) == [0x5a], "\(what): EINTR was not retried: \(outcome)")
                    #expect(books.calls.count == calls.count + 1 && books.calls[index + 1] == books.calls[index], "\(what): not made again")
                } else {
                    #expect(books.calls.count == calls.count, "\(what): a close or munmap was retried")
                }
            } else if case .failure(let error) = outcome {
                #expect(error.errno == fault || error.errno == .ENOENT, "\(what): reported as \(error)")
            }
        }
    }
}

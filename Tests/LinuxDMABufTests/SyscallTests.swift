import CLibDRM
import DMACore
import Foundation
import Glibc
@testable import LinuxDMABuf
import Testing

@Suite("The system-call layer and the owned dma-buf fd, through the interceptor")
struct DMABufFDTests {
    @Test("EINTR is retried until the call completes; close is never retried")
    func eintrRetried() throws {
        let tries = Mutex2()
        try withMockKernel({ call, _ in
            switch call {
            case .ioctl: return tries.next() < 2 ? .fails(.EINTR) : .returns(0)
            case .close: return .fails(.EINTR)
            default: return .perform
            }
        }) { kernel in
            do {
                let buffer = DMABufFD(adopting: 40)
                try buffer.beginCPUAccess(.write)
            }
            #expect(kernel.ioctls == ["DMA_BUF_IOCTL_SYNC", "DMA_BUF_IOCTL_SYNC", "DMA_BUF_IOCTL_SYNC"])
            #expect(kernel.closed == [40], "close is made once even when it reports EINTR")
        }
    }

    @Test("SYNC begin and end pass START/END with the access bits; the kernel's EINVAL cases never reach it")
    func syncFlags() throws {
        let seen = Recorder<UInt64>()
        try withMockKernel({ call, argument in
            if case .ioctl(_, let request) = call, request == .dmaBufSync {
                seen.add(argument!.load(as: dma_buf_sync.self).flags)
                return .returns(0)
            }
            return call == .close(fd: 7) ? .returns(0) : .perform
        }) { kernel in
            let buffer = DMABufFD(adopting: 7)
            let value = try buffer.withCPUAccess(.readWrite) { () throws(DMAError) in 42 }
            #expect(value == 42)
            try buffer.endCPUAccess(.read)
            #expect(seen.values == [UInt64(DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW), UInt64(DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW), UInt64(DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ)])
            for flags: UInt64 in [0, UInt64(DMA_BUF_SYNC_END), 0x100 | UInt64(DMA_BUF_SYNC_READ), 0x8 | UInt64(DMA_BUF_SYNC_WRITE)] {
                let error = dmaError { try buffer.sync(flags: flags) }
                #expect(error?.errno == .EINVAL && error?.code == .refusedBeforeCall, "flags \(flags)")
                #expect(DMABufFD.syncRefusal(flags: flags) == .EINVAL)
            }
            #expect(dmaError { try buffer.beginCPUAccess([]) }?.errno == .EINVAL)
            #expect(kernel.ioctls.count == 3, "refused flags never reach the kernel")
        }
    }

    @Test("A failing SYNC inside withCPUAccess still ends the section, and the body's error wins")
    func syncSectionEndsOnError() throws {
        withMockKernel({ call, _ in
            if case .ioctl = call { return .returns(0) }
            return .returns(0)
        }) { kernel in
            let buffer = DMABufFD(adopting: 9)
            let error = dmaError {
                try buffer.withCPUAccess(.write) { () throws(DMAError) in
                    throw DMAError(.notSupported, .EIO, "body failed")
                }
            }
            #expect(error?.message == "body failed")
            #expect(kernel.ioctls == ["DMA_BUF_IOCTL_SYNC", "DMA_BUF_IOCTL_SYNC"])
        }
    }

    @Test("DMA_BUF_SET_NAME: 31 bytes reach the kernel as a C string; 32 bytes or a NUL are EINVAL before the call")
    func setName() throws {
        let names = Recorder<String>()
        try withMockKernel({ call, argument in
            if case .ioctl(_, let request) = call, request == .dmaBufSetName {
                names.add(String(cString: argument!.assumingMemoryBound(to: CChar.self)))
                return .returns(0)
            }
            return .returns(0)
        }) { kernel in
            let buffer = DMABufFD(adopting: 11)
            let longest = String(repeating: "a", count: 31)
            try buffer.setName(longest)
            #expect(names.values == [longest])
            for bad in [String(repeating: "b", count: 32), String(repeating: "c", count: 100), "a\u{0}b"] {
                let error = dmaError { try buffer.setName(bad) }
                #expect(error?.errno == .EINVAL && error?.code == .refusedBeforeCall)
            }
            #expect(DMABufFD.nameCapacity == Int(DMA_BUF_NAME_LEN))
            #expect(kernel.ioctls == ["DMA_BUF_SET_NAME_B"])
        }
    }

    @Test("Size is lseek(0, SEEK_END); only offset 0 with SEEK_SET or SEEK_END reaches the kernel")
    func seek() throws {
        try withMockKernel({ call, _ in
            switch call {
            case .lseek(_, 0, SEEK_END): return .returns(16384)
            case .lseek(_, 0, SEEK_SET): return .returns(0)
            default: return .returns(0)
            }
        }) { kernel in
            let buffer = DMABufFD(adopting: 12)
            let size = try buffer.size()
            let start = try buffer.seek(offset: 0, from: .start)
            #expect(size == 16384 && start == 0)
            #expect(dmaError { _ = try buffer.seek(offset: 4096, from: .start) }?.errno == .EINVAL)
            #expect(dmaError { _ = try buffer.seek(offset: 0, from: .current) }?.errno == .EINVAL)
            #expect(dmaError { _ = try buffer.seek(offset: -1, from: .end) }?.errno == .EINVAL)
            #expect(kernel.calls.filter { if case .lseek = $0 { true } else { false } }.count == 2)
        }
    }

    @Test("A kernel error from lseek (EBADF) is thrown with the call's name")
    func seekKernelError() {
        withMockKernel({ _, _ in .fails(.EBADF) }) { _ in
            let buffer = DMABufFD(adopting: 13)
            let error = dmaError { _ = try buffer.size() }
            #expect(error?.errno == .EBADF && error?.code == .systemCallFailed)
            #expect(error?.message.contains("lseek") == true)
        }
    }

    @Test("mmap gives an owned mapping unmapped exactly once; ranges past the buffer are EINVAL before the call")
    func mmapOwned() throws {
        let page = SystemCalls.pageSize
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 2 * page, alignment: page)
        defer { memory.deallocate() }
        let address = UInt(bitPattern: memory)
        try withMockKernel({ call, _ in
            switch call {
            case .lseek: return .returns(2 * page)
            case .mmap(let length, let prot, let flags, _, _):
                return length <= 2 * page && prot == PROT_READ | PROT_WRITE && flags == MAP_SHARED ? .returns(Int(bitPattern: address)) : .fails(.EINVAL)
            default: return .returns(0)
            }
        }) { kernel in
            let buffer = DMABufFD(adopting: 14)
            do {
                let mapping = try buffer.map()
                #expect(mapping.length == 2 * page)
                mapping.withMutableBytes { $0.storeBytes(of: 0xC0DE_0001 as UInt32, as: UInt32.self) }
                #expect(mapping.withBytes { $0.load(as: UInt32.self) } == 0xC0DE_0001)
            }
            #expect(kernel.calls.filter { $0 == .munmap(address: address, length: 2 * page) }.count == 1)
            #expect(dmaError { _ = try buffer.map(length: 3 * page) }?.errno == .EINVAL)
            #expect(dmaError { _ = try buffer.map(offset: 100, length: page) }?.errno == .EINVAL)
            #expect(dmaError { _ = try buffer.map(offset: 0, length: 0) }?.errno == .EINVAL)
            #expect(dmaError { _ = try buffer.map(offset: page, length: 2 * page) }?.errno == .EINVAL)
            #expect(kernel.calls.filter { if case .mmap = $0 { true } else { false } }.count == 1)
        }
    }

    @Test("mmap answered with ENOTSUPP (524, nv_dmabuf) is named and explained: no CPU mapping")
    func mmapENOTSUPP() {
        withMockKernel({ call, _ in
            switch call {
            case .lseek: return .returns(67_108_864)
            case .mmap: return .fails(Errno(rawValue: 524))
            default: return .returns(0)
            }
        }) { _ in
            let buffer = DMABufFD(adopting: 36)
            let error = dmaError { _ = try buffer.map(length: 4096, writable: false) }
            #expect(error?.errno == .ENOTSUPP)
            #expect(error?.errno.name == "ENOTSUPP")
            #expect(error?.message.contains("no CPU mapping") == true)
            #expect(error?.message.contains("524") == true)
        }
    }

    @Test("Sync files: export returns an owned fd closed once; no access is EINVAL before the call")
    func syncFiles() throws {
        try withMockKernel({ call, argument in
            if case .ioctl(_, let request) = call {
                if request == .exportSyncFile {
                    let pointer = argument!.assumingMemoryBound(to: dma_buf_export_sync_file.self)
                    #expect(pointer.pointee.flags == UInt32(DMA_BUF_SYNC_RW))
                    pointer.pointee.fd = 77
                }
                if request == .importSyncFile {
                    let value = argument!.load(as: dma_buf_import_sync_file.self)
                    #expect(value.fd == 77 && value.flags == UInt32(DMA_BUF_SYNC_WRITE))
                }
                return .returns(0)
            }
            return .returns(0)
        }) { kernel in
            do {
                let buffer = DMABufFD(adopting: 15)
                let fence = try buffer.exportSyncFile(.readWrite)
                try buffer.importSyncFile(fence, .write)
                #expect(dmaError { _ = try buffer.exportSyncFile([]) }?.errno == .EINVAL)
                #expect(dmaError { try buffer.importSyncFile(fence, []) }?.errno == .EINVAL)
            }
            #expect(kernel.ioctls == ["DMA_BUF_IOCTL_EXPORT_SYNC_FILE", "DMA_BUF_IOCTL_IMPORT_SYNC_FILE"])
            #expect(kernel.closed.sorted() == [15, 77])
        }
    }

    @Test("fdinfo is read from PROCROOT/self/fdinfo/FD; a missing entry is ENOENT")
    func fdinfoRead() throws {
        let root = try TemporaryTree()
        try root.write("self/fdinfo/21", "pos:\t0\nflags:\t02000002\nmnt_id:\t12\nino:\t3\nsize:\t16384\ncount:\t1\nexp_name:\tudmabuf\nname:\tprobe-udmabuf\n")
        withMockKernel({ call, _ in call == .close(fd: 21) || call == .close(fd: 22) ? .returns(0) : .perform }) { _ in
            let buffer = DMABufFD(adopting: 21)
            let info = try? buffer.fdinfo(procRoot: root.path)
            #expect(info?.exporter == "udmabuf" && info?.inode == 3 && info?.name == "probe-udmabuf")
            let other = DMABufFD(adopting: 22)
            #expect(dmaError { _ = try other.fdinfo(procRoot: root.path) }?.errno == .ENOENT)
        }
    }
}

/// A counter shared with a `@Sendable` handler.
final class Mutex2: Sendable {
    private let value = Synchronization.Mutex(0)
    func next() -> Int { value.withLock { v in defer { v += 1 }; return v } }
}

/// Values collected by a `@Sendable` handler.
final class Recorder<T: Sendable>: Sendable {
    private let storage = Synchronization.Mutex<[T]>([])
    func add(_ value: T) { storage.withLock { $0.append(value) } }
    var values: [T] { storage.withLock { $0 } }
}

import Synchronization

/// A folder made for one test and removed when the value goes away.
final class TemporaryTree {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/dmabufkit-test-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw DMAError(.invalidArgument, .EIO, "mkdtemp failed") }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ relative: String, _ text: String) throws {
        let url = URL(fileURLWithPath: path + "/" + relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    func link(_ relative: String, to target: String) throws {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: full, withDestinationPath: target)
    }

    func makeDirectory(_ relative: String) throws {
        try FileManager.default.createDirectory(atPath: path + "/" + relative, withIntermediateDirectories: true)
    }
}

import CLibDRM
import DMACore
import Glibc

/// The access a CPU section declares to `DMA_BUF_IOCTL_SYNC` and to the sync-file ioctls:
/// `DMA_BUF_SYNC_READ`, `DMA_BUF_SYNC_WRITE` (`include/uapi/linux/dma-buf.h`).
public struct DMABufAccess: OptionSet, Sendable, Hashable {
    public var rawValue: UInt64
    /// Creates an access set from the uapi bits.
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// `DMA_BUF_SYNC_READ`: the CPU reads (the device wrote).
    public static let read = DMABufAccess(rawValue: UInt64(DMA_BUF_SYNC_READ))
    /// `DMA_BUF_SYNC_WRITE`: the CPU writes (the device will read).
    public static let write = DMABufAccess(rawValue: UInt64(DMA_BUF_SYNC_WRITE))
    /// `DMA_BUF_SYNC_RW`.
    public static let readWrite: DMABufAccess = [.read, .write]
}

/// `whence` values for ``DMABufFD/seek(offset:from:)``; the dma-buf core (`dma_buf_llseek`) accepts
/// only `SEEK_SET` and `SEEK_END`, and only with offset 0.
public enum SeekOrigin: Sendable, Hashable {
    /// `SEEK_SET`.
    case start
    /// `SEEK_CUR` (refused by the dma-buf core).
    case current
    /// `SEEK_END`: gives the buffer's size.
    case end

    var whence: Int32 {
        switch self {
        case .start: SEEK_SET
        case .current: SEEK_CUR
        case .end: SEEK_END
        }
    }
}

/// An open dma-buf file descriptor that this value owns: closed exactly once, in `deinit`.
///
/// Every operation is one the dma-buf core offers user space (`drivers/dma-buf/dma-buf.c`):
/// `llseek` for the size, `/proc/self/fdinfo` for the exporter and name, the `DMA_BUF_IOCTL_SYNC`,
/// `DMA_BUF_SET_NAME`, `DMA_BUF_IOCTL_EXPORT_SYNC_FILE` and `DMA_BUF_IOCTL_IMPORT_SYNC_FILE`
/// ioctls, and `mmap`. The kernel's `EINVAL` cases are refused before the call, with the kernel's
/// errno and a sentence.
public struct DMABufFD: ~Copyable {
    /// The descriptor number; valid while this value lives. Do not close it.
    public let rawValue: Int32

    /// `DMA_BUF_NAME_LEN` (`include/uapi/linux/dma-buf.h`): `dma_buf_set_name` copies the name with
    /// `strndup_user(buf, DMA_BUF_NAME_LEN)`, which fails with EINVAL when the name and its NUL do
    /// not fit, so a name may have at most 31 bytes.
    public static let nameCapacity = 32

    /// Takes ownership of an open dma-buf descriptor (from a PRIME export, `UDMABUF_CREATE`, a heap).
    public init(adopting rawValue: Int32) {
        precondition(rawValue >= 0, "a dma-buf fd is never negative")
        self.rawValue = rawValue
    }

    deinit {
        _ = SystemCalls.close(rawValue)
    }

    /// Gives up ownership without closing; the caller must close the returned descriptor.
    public consuming func release() -> Int32 {
        let fd = rawValue
        discard self
        return fd
    }

    /// `lseek(fd, offset, whence)` as `dma_buf_llseek` allows it: offset 0 with `SEEK_SET` (gives 0)
    /// or `SEEK_END` (gives the size); everything else is EINVAL, refused here before the call.
    public func seek(offset: Int64, from origin: SeekOrigin) throws(DMAError) -> Int64 {
        if let errno = Self.seekRefusal(offset: offset, whence: origin.whence) {
            throw .refused("lseek", errno, "dma_buf_llseek accepts only offset 0 with SEEK_SET or SEEK_END (got offset \(offset), \(origin))")
        }
        switch SystemCalls.lseek(rawValue, offset, origin.whence) {
        case .success(let position): return position
        case .failure(let errno): throw .systemCall("lseek(dma-buf fd \(rawValue))", errno)
        }
    }

    /// The kernel's answer to `lseek` on a dma-buf, when it refuses (`dma_buf_llseek`): EINVAL for
    /// a non-zero offset or a `whence` other than `SEEK_SET`/`SEEK_END`; `nil` when it accepts.
    public static func seekRefusal(offset: Int64, whence: Int32) -> Errno? {
        if offset != 0 { return .EINVAL }
        if whence != SEEK_SET && whence != SEEK_END { return .EINVAL }
        return nil
    }

    /// The buffer's size in bytes: `lseek(fd, 0, SEEK_END)`.
    public func size() throws(DMAError) -> Int {
        Int(try seek(offset: 0, from: .end))
    }

    /// This descriptor's `/proc/self/fdinfo` entry, parsed.
    /// - Note: `procRoot`: where procfs is mounted (a test may pass a folder of its own).
    public func fdinfo(procRoot: String = "/proc") throws(DMAError) -> FDInfo {
        switch SystemCalls.readFile("\(procRoot)/self/fdinfo/\(rawValue)") {
        case .success(let bytes): return FDInfo(parsing: String(decoding: bytes, as: UTF8.self))
        case .failure(let errno): throw .systemCall("read(\(procRoot)/self/fdinfo/\(rawValue))", errno)
        }
    }

    /// The kernel's answer to `DMA_BUF_IOCTL_SYNC` flags it refuses (`dma_buf_ioctl`): EINVAL for
    /// a bit outside `DMA_BUF_SYNC_VALID_FLAGS_MASK` (`RW | END`) and for neither READ nor WRITE.
    public static func syncRefusal(flags: UInt64) -> Errno? {
        let valid = UInt64(DMA_BUF_SYNC_RW) | UInt64(DMA_BUF_SYNC_END)
        if flags & ~valid != 0 { return .EINVAL }
        if flags & UInt64(DMA_BUF_SYNC_RW) == 0 { return .EINVAL }
        return nil
    }

    /// `DMA_BUF_IOCTL_SYNC` with raw flags, after the kernel's own checks (``syncRefusal(flags:)``).
    public func sync(flags: UInt64) throws(DMAError) {
        if let errno = Self.syncRefusal(flags: flags) {
            throw .refused("DMA_BUF_IOCTL_SYNC", errno, "flags 0x\(String(flags, radix: 16)) must be READ, WRITE or both, optionally with END, and nothing else")
        }
        var sync = dma_buf_sync(flags: flags)
        if case .failure(let errno) = SystemCalls.ioctl(rawValue, .dmaBufSync, &sync) {
            throw .systemCall("ioctl(DMA_BUF_IOCTL_SYNC, flags 0x\(String(flags, radix: 16)))", errno)
        }
    }

    /// Starts a CPU access section: `DMA_BUF_IOCTL_SYNC` with `DMA_BUF_SYNC_START` and `access`
    /// (the exporter's `begin_cpu_access`: caches made coherent, fences waited for).
    public func beginCPUAccess(_ access: DMABufAccess) throws(DMAError) {
        try sync(flags: UInt64(DMA_BUF_SYNC_START) | access.rawValue)
    }

    /// Ends a CPU access section: `DMA_BUF_IOCTL_SYNC` with `DMA_BUF_SYNC_END` and the same access
    /// (the exporter's `end_cpu_access`: CPU writes flushed for the device).
    public func endCPUAccess(_ access: DMABufAccess) throws(DMAError) {
        try sync(flags: UInt64(DMA_BUF_SYNC_END) | access.rawValue)
    }

    /// Runs `body` inside a CPU access section: begin, body, end. The section is ended when `body`
    /// throws too; an error of `body` wins over one of the end.
    public func withCPUAccess<R>(_ access: DMABufAccess, _ body: () throws(DMAError) -> R) throws(DMAError) -> R {
        try beginCPUAccess(access)
        let result: R
        do {
            result = try body()
        } catch {
            try? endCPUAccess(access)
            throw error
        }
        try endCPUAccess(access)
        return result
    }

    /// The kernel's answer to a name it refuses in `DMA_BUF_SET_NAME` (`dma_buf_set_name`): EINVAL
    /// when the name with its NUL is longer than `DMA_BUF_NAME_LEN` (32), i.e. 32 bytes or more. A
    /// NUL inside the name cannot be passed at all and is refused with EINVAL too.
    public static func nameRefusal(_ name: String) -> Errno? {
        if name.utf8.count >= nameCapacity { return .EINVAL }
        if name.utf8.contains(0) { return .EINVAL }
        return nil
    }

    /// Names the buffer: `DMA_BUF_SET_NAME_B`. The name shows in fdinfo, in `/proc/PID/maps`
    /// (`/dmabuf:NAME`) and in debugfs `bufinfo`.
    public func setName(_ name: String) throws(DMAError) {
        if let errno = Self.nameRefusal(name) {
            throw .refused("DMA_BUF_SET_NAME", errno, "the name has \(name.utf8.count) bytes; DMA_BUF_NAME_LEN allows at most \(Self.nameCapacity - 1) and no NUL")
        }
        let result = name.withCString { pointer in
            SystemCalls.ioctl(rawValue, .dmaBufSetName, UnsafeMutableRawPointer(mutating: pointer))
        }
        if case .failure(let errno) = result {
            throw .systemCall("ioctl(DMA_BUF_SET_NAME_B, \"\(name)\")", errno)
        }
    }

    /// `DMA_BUF_IOCTL_EXPORT_SYNC_FILE`: a sync file holding the buffer's current fences for
    /// `access` (`dma_buf_export_sync_file`; no access is EINVAL, refused here).
    public func exportSyncFile(_ access: DMABufAccess) throws(DMAError) -> SyncFile {
        if access.isEmpty || access.rawValue & ~DMABufAccess.readWrite.rawValue != 0 {
            throw .refused("DMA_BUF_IOCTL_EXPORT_SYNC_FILE", .EINVAL, "the flags must be READ, WRITE or both")
        }
        var request = dma_buf_export_sync_file(flags: UInt32(access.rawValue), fd: -1)
        if case .failure(let errno) = SystemCalls.ioctl(rawValue, .exportSyncFile, &request) {
            throw .systemCall("ioctl(DMA_BUF_IOCTL_EXPORT_SYNC_FILE)", errno)
        }
        return SyncFile(adopting: request.fd)
    }

    /// `DMA_BUF_IOCTL_IMPORT_SYNC_FILE`: adds the sync file's fence to the buffer's reservation for
    /// `access` (`dma_buf_import_sync_file`; no access is EINVAL, refused here).
    public func importSyncFile(_ syncFile: borrowing SyncFile, _ access: DMABufAccess) throws(DMAError) {
        if access.isEmpty || access.rawValue & ~DMABufAccess.readWrite.rawValue != 0 {
            throw .refused("DMA_BUF_IOCTL_IMPORT_SYNC_FILE", .EINVAL, "the flags must be READ, WRITE or both")
        }
        var request = dma_buf_import_sync_file(flags: UInt32(access.rawValue), fd: syncFile.rawValue)
        if case .failure(let errno) = SystemCalls.ioctl(rawValue, .importSyncFile, &request) {
            throw .systemCall("ioctl(DMA_BUF_IOCTL_IMPORT_SYNC_FILE)", errno)
        }
    }

    /// Maps the buffer into this process: `mmap(MAP_SHARED)` through the exporter's `mmap`
    /// (`dma_buf_mmap_internal`). A range past the buffer's pages is EINVAL, as is an offset that is
    /// not page aligned or a length of 0; these are refused here (the size is read with lseek).
    /// An exporter without a CPU mapping answers `ENOTSUPP` (524): `nv_dmabuf` does.
    public func map(offset: Int = 0, length: Int? = nil, writable: Bool = true) throws(DMAError) -> DMABufMemoryMap {
        let size = try size()
        let page = SystemCalls.pageSize
        let length = length ?? size
        let pages = (size + page - 1) / page
        if length <= 0 || offset < 0 || offset % page != 0 || (offset + length + page - 1) / page > pages {
            throw .refused("mmap", .EINVAL, "offset \(offset) and length \(length) must be page aligned, non-empty and inside the buffer's \(pages) pages (\(size) bytes)")
        }
        let protection = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        switch SystemCalls.mmap(length, protection, MAP_SHARED, rawValue, Int64(offset)) {
        case .success(let address): return DMABufMemoryMap(address: address, length: length, writable: writable)
        case .failure(let errno): throw .systemCall("mmap(dma-buf fd \(rawValue), \(length) bytes)", errno)
        }
    }
}

/// A mapping of a dma-buf into this process that this value owns: unmapped exactly once, in
/// `deinit` (`munmap`). The mapping keeps the dma-buf alive by itself, as the kernel's VMA holds a
/// reference to the file, so it may outlive the ``DMABufFD``.
public struct DMABufMemoryMap: ~Copyable {
    /// The first mapped byte.
    public let address: UnsafeMutableRawPointer
    /// The mapped length in bytes.
    public let length: Int
    /// Whether the mapping was made with `PROT_WRITE`.
    public let writable: Bool

    init(address: UnsafeMutableRawPointer, length: Int, writable: Bool) {
        self.address = address
        self.length = length
        self.writable = writable
    }

    deinit {
        _ = SystemCalls.munmap(address, length)
    }

    /// The mapped bytes, for reading. Wrap access in ``DMABufFD/withCPUAccess(_:_:)``.
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: address, count: length))
    }

    /// The mapped bytes, for writing; the mapping must be writable.
    public func withMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        precondition(writable, "the mapping was made read-only")
        return try body(UnsafeMutableRawBufferPointer(start: address, count: length))
    }
}

/// A sync file (`drivers/dma-buf/sync_file.c`) that this value owns: closed exactly once, in
/// `deinit`. It carries the fences exported from a dma-buf's reservation.
public struct SyncFile: ~Copyable {
    /// The descriptor number; valid while this value lives.
    public let rawValue: Int32

    /// Takes ownership of an open sync-file descriptor.
    public init(adopting rawValue: Int32) {
        precondition(rawValue >= 0, "a sync file fd is never negative")
        self.rawValue = rawValue
    }

    deinit {
        _ = SystemCalls.close(rawValue)
    }
}

/// An owned file descriptor of another kind (a DRM node, a memfd, `/dev/udmabuf`, a heap),
/// closed exactly once in `deinit`.
struct OwnedFD: ~Copyable {
    let rawValue: Int32

    init(_ rawValue: Int32) {
        precondition(rawValue >= 0)
        self.rawValue = rawValue
    }

    deinit {
        _ = SystemCalls.close(rawValue)
    }
}

import CLibDRM
import DMACore
import Glibc

/// memfd seals (`F_SEAL_*`, `include/uapi/linux/fcntl.h`), added with `fcntl(F_ADD_SEALS)`.
public struct MemfdSeals: OptionSet, Sendable, Hashable {
    public var rawValue: Int32
    /// Creates a seal set from the uapi bits.
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// `F_SEAL_SEAL`: no more seals can be added.
    public static let seal = MemfdSeals(rawValue: DMABUFKIT_F_SEAL_SEAL)
    /// `F_SEAL_SHRINK`: the file cannot shrink; udmabuf requires it.
    public static let shrink = MemfdSeals(rawValue: DMABUFKIT_F_SEAL_SHRINK)
    /// `F_SEAL_GROW`: the file cannot grow.
    public static let grow = MemfdSeals(rawValue: DMABUFKIT_F_SEAL_GROW)
    /// `F_SEAL_WRITE`: the contents cannot change; udmabuf refuses it.
    public static let write = MemfdSeals(rawValue: DMABUFKIT_F_SEAL_WRITE)
}

/// An anonymous shared-memory file (`memfd_create(MFD_ALLOW_SEALING)`, `mm/memfd.c`) that this
/// value owns: closed exactly once in `deinit`. udmabuf turns its pages into a dma-buf.
public struct Memfd: ~Copyable {
    let fd: OwnedFD
    /// The descriptor number; valid while this value lives.
    public var rawValue: Int32 { fd.rawValue }

    /// Creates a memfd of `size` bytes that allows sealing (`memfd_create`, `ftruncate`).
    public init(name: String, size: Int) throws(DMAError) {
        let raw: Int32
        switch SystemCalls.memfdCreate(name, UInt32(MFD_ALLOW_SEALING)) {
        case .success(let value): raw = value
        case .failure(let errno): throw .systemCall("memfd_create(\(name))", errno)
        }
        let owned = OwnedFD(raw)
        if case .failure(let errno) = SystemCalls.ftruncate(raw, Int64(size)) {
            throw .systemCall("ftruncate(memfd \(raw), \(size))", errno)
        }
        fd = owned
    }

    /// Adds seals (`fcntl(F_ADD_SEALS)`).
    public func addSeals(_ seals: MemfdSeals) throws(DMAError) {
        if case .failure(let errno) = SystemCalls.fcntl(rawValue, DMABUFKIT_F_ADD_SEALS, seals.rawValue) {
            throw .systemCall("fcntl(memfd \(rawValue), F_ADD_SEALS, \(seals.rawValue))", errno)
        }
    }

    /// The seals in force (`fcntl(F_GET_SEALS)`).
    public func seals() throws(DMAError) -> MemfdSeals {
        switch SystemCalls.fcntl(rawValue, DMABUFKIT_F_GET_SEALS, 0) {
        case .success(let value): return MemfdSeals(rawValue: value)
        case .failure(let errno): throw .systemCall("fcntl(memfd \(rawValue), F_GET_SEALS)", errno)
        }
    }

    /// Reads `count` bytes at `offset` with `pread`, to see what a device or a mapping wrote.
    public func read(count: Int, at offset: Int) throws(DMAError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let result = bytes.withUnsafeMutableBytes { SystemCalls.pread(rawValue, $0, Int64(offset)) }
        switch result {
        case .success(let read): return Array(bytes[0..<read])
        case .failure(let errno): throw .systemCall("pread(memfd \(rawValue))", errno)
        }
    }
}

/// `/dev/udmabuf` (`drivers/dma-buf/udmabuf.c`, `CONFIG_UDMABUF`), open and owned by this value:
/// it makes dma-bufs from the pages of a sealed memfd.
public struct UDMABufDevice: ~Copyable {
    let fd: OwnedFD
    /// The device node's path.
    public let path: String

    private init(fd: consuming OwnedFD, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Opens the device; `nil` when the node is absent (ENOENT: the kernel has no udmabuf, as in
    /// Debian's 6.1), which is not a failure. Other errors (EACCES) are thrown.
    public static func open(path: String = "/dev/udmabuf") throws(DMAError) -> UDMABufDevice? {
        switch SystemCalls.open(path, O_RDWR) {
        case .success(let fd): return UDMABufDevice(fd: OwnedFD(fd), path: path)
        case .failure(let errno) where errno == .ENOENT: return nil
        case .failure(let errno): throw .systemCall("open(\(path))", errno)
        }
    }

    /// `UDMABUF_CREATE`: a dma-buf over `size` bytes of `memfd` from `offset`
    /// (`udmabuf_ioctl_create`). The kernel's EINVAL cases are refused before the call: an offset or
    /// size that is not page aligned, a size of 0, and a memfd without `F_SEAL_SHRINK` or with
    /// `F_SEAL_WRITE` (`check_memfd_seals`), which costs one `fcntl(F_GET_SEALS)`.
    public func createBuffer(memfd: borrowing Memfd, offset: Int = 0, size: Int) throws(DMAError) -> DMABufFD {
        let page = SystemCalls.pageSize
        if size <= 0 || offset < 0 || offset % page != 0 || size % page != 0 {
            throw .refused("UDMABUF_CREATE", .EINVAL, "offset \(offset) and size \(size) must be page aligned (\(page)) and the size non-zero")
        }
        let seals = try memfd.seals()
        if !seals.contains(.shrink) || seals.contains(.write) {
            throw .refused("UDMABUF_CREATE", .EINVAL, "the memfd must be sealed with F_SEAL_SHRINK and not with F_SEAL_WRITE (seals now 0x\(String(seals.rawValue, radix: 16)))")
        }
        return try createBufferUnchecked(memfdDescriptor: memfd.rawValue, offset: offset, size: size)
    }

    /// `UDMABUF_CREATE` with no checks before the call, so the kernel's own answer can be seen.
    package func createBufferUnchecked(memfdDescriptor: Int32, offset: Int, size: Int) throws(DMAError) -> DMABufFD {
        var request = udmabuf_create(memfd: UInt32(bitPattern: memfdDescriptor), flags: UInt32(UDMABUF_FLAGS_CLOEXEC), offset: UInt64(offset), size: UInt64(size))
        switch SystemCalls.ioctl(fd.rawValue, .udmabufCreate, &request) {
        case .success(let dmabuf): return DMABufFD(adopting: dmabuf)
        case .failure(let errno): throw .systemCall("ioctl(\(path), UDMABUF_CREATE, memfd \(memfdDescriptor), \(size) bytes)", errno)
        }
    }
}

/// A dma-buf heap (`/dev/dma_heap/NAME`, `drivers/dma-buf/dma-heap.c`, `CONFIG_DMABUF_HEAPS`),
/// open and owned by this value: `system` gives pages of system memory, `cma` contiguous memory.
public struct DMAHeap: ~Copyable {
    let fd: OwnedFD
    /// The heap's name (the node's file name).
    public let name: String

    private init(fd: consuming OwnedFD, name: String) {
        self.fd = fd
        self.name = name
    }

    /// The heaps this kernel offers (the names in `DEVROOT/dma_heap`); empty when the folder is
    /// absent (no `CONFIG_DMABUF_HEAPS`), which is not a failure.
    public static func available(devRoot: String = "/dev") -> [String] {
        ((try? SystemCalls.listDirectory("\(devRoot)/dma_heap").get()) ?? []).sorted()
    }

    /// Opens a heap; `nil` when its node is absent (ENOENT), which is not a failure.
    public static func open(name: String, devRoot: String = "/dev") throws(DMAError) -> DMAHeap? {
        let path = "\(devRoot)/dma_heap/\(name)"
        switch SystemCalls.open(path, O_RDONLY) {
        case .success(let fd): return DMAHeap(fd: OwnedFD(fd), name: name)
        case .failure(let errno) where errno == .ENOENT: return nil
        case .failure(let errno): throw .systemCall("open(\(path))", errno)
        }
    }

    /// The kernel's answer to an allocation request it refuses (`dma_heap_ioctl_allocate`,
    /// `dma_heap_buffer_alloc`): EINVAL for fd flags outside `O_ACCMODE | O_CLOEXEC`, for any heap
    /// flag (none is defined), and for a length of 0.
    public static func allocationRefusal(length: Int, fdFlags: Int32, heapFlags: UInt64) -> Errno? {
        if fdFlags & ~(O_ACCMODE | O_CLOEXEC) != 0 { return .EINVAL }
        if heapFlags != 0 { return .EINVAL }
        if length <= 0 { return .EINVAL }
        return nil
    }

    /// `DMA_HEAP_IOCTL_ALLOC`: a new dma-buf of `length` bytes (rounded up to pages by the heap),
    /// opened `O_RDWR | O_CLOEXEC`.
    public func allocate(length: Int) throws(DMAError) -> DMABufFD {
        let fdFlags = O_RDWR | O_CLOEXEC
        if let errno = Self.allocationRefusal(length: length, fdFlags: fdFlags, heapFlags: 0) {
            throw .refused("DMA_HEAP_IOCTL_ALLOC", errno, "the length must be non-zero (got \(length))")
        }
        return try allocateUnchecked(length: length, fdFlags: fdFlags, heapFlags: 0)
    }

    /// `DMA_HEAP_IOCTL_ALLOC` with no checks before the call, so the kernel's own answer can be seen.
    package func allocateUnchecked(length: Int, fdFlags: Int32, heapFlags: UInt64) throws(DMAError) -> DMABufFD {
        var request = dma_heap_allocation_data(len: UInt64(max(0, length)), fd: 0, fd_flags: UInt32(bitPattern: fdFlags), heap_flags: heapFlags)
        if case .failure(let errno) = SystemCalls.ioctl(fd.rawValue, .dmaHeapAlloc, &request) {
            throw .systemCall("ioctl(/dev/dma_heap/\(name), DMA_HEAP_IOCTL_ALLOC, \(length) bytes)", errno)
        }
        return DMABufFD(adopting: Int32(bitPattern: request.fd))
    }
}

import CLibDRM
import DMACore
import Glibc

// The one system-call layer of LinuxDMABuf (the swift-system way, `Internals/Syscalls.swift`):
// every call this target makes into the kernel goes through `SystemCalls.perform`, which retries
// EINTR where that is correct and lets a test-only interceptor answer in the kernel's place. The
// interceptor is a task-local value, so tests that run in parallel cannot see each other's mocks.

/// One system call (or libdrm call that wraps system calls) as the interceptor sees it.
package enum SystemCall: Sendable, Hashable, CustomStringConvertible {
    /// `open(2)`.
    case open(path: String, flags: Int32)
    /// `close(2)`.
    case close(fd: Int32)
    /// `ioctl(2)`; the argument pointer is passed to the interceptor beside the call.
    case ioctl(fd: Int32, request: IoctlRequest)
    /// `lseek(2)`.
    case lseek(fd: Int32, offset: Int64, whence: Int32)
    /// `mmap(2)`; a mock answers with an address it owns.
    case mmap(length: Int, protection: Int32, flags: Int32, fd: Int32, offset: Int64)
    /// `munmap(2)`.
    case munmap(address: UInt, length: Int)
    /// `memfd_create(2)`.
    case memfdCreate(name: String, flags: UInt32)
    /// `fcntl(2)` with an integer argument.
    case fcntl(fd: Int32, command: Int32, argument: Int32)
    /// `ftruncate(2)`.
    case ftruncate(fd: Int32, length: Int64)
    /// `pread(2)`; the buffer is passed as the argument pointer.
    case pread(fd: Int32, count: Int, offset: Int64)
    /// `pwrite(2)`; the buffer is passed as the argument pointer.
    case pwrite(fd: Int32, count: Int, offset: Int64)
    /// libdrm's `drmGetVersion` (`DRM_IOCTL_VERSION` twice); a mock answers with `.version`.
    case drmGetVersion(fd: Int32)
    /// libdrm's `drmGetDevices2` (a walk of `/sys/dev/char` and `/dev/dri`); a mock answers with
    /// `.devices`.
    case drmGetDevices
    /// Reading a whole file (`open`, `read` until end of file, `close`): `/proc` and `/sys` files.
    case readFile(path: String)
    /// Listing a folder (`opendir`, `readdir`).
    case listDirectory(path: String)
    /// `readlink(2)`.
    case readLink(path: String)

    package var description: String {
        switch self {
        case .open(let path, let flags): "open(\(path), 0o\(String(flags, radix: 8)))"
        case .close(let fd): "close(\(fd))"
        case .ioctl(let fd, let request): "ioctl(\(fd), \(request.name))"
        case .lseek(let fd, let offset, let whence): "lseek(\(fd), \(offset), \(whence))"
        case .mmap(let length, let prot, let flags, let fd, let offset):
            "mmap(\(length), prot \(prot), flags \(flags), fd \(fd), offset \(offset))"
        case .munmap(let address, let length): "munmap(0x\(String(address, radix: 16)), \(length))"
        case .memfdCreate(let name, let flags): "memfd_create(\(name), \(flags))"
        case .fcntl(let fd, let command, let argument): "fcntl(\(fd), \(command), \(argument))"
        case .ftruncate(let fd, let length): "ftruncate(\(fd), \(length))"
        case .pread(let fd, let count, let offset): "pread(\(fd), \(count), \(offset))"
        case .pwrite(let fd, let count, let offset): "pwrite(\(fd), \(count), \(offset))"
        case .drmGetVersion(let fd): "drmGetVersion(\(fd))"
        case .drmGetDevices: "drmGetDevices2()"
        case .readFile(let path): "read(\(path))"
        case .listDirectory(let path): "readdir(\(path))"
        case .readLink(let path): "readlink(\(path))"
        }
    }
}

/// An ioctl request number with the kernel's name for it.
package struct IoctlRequest: Sendable, Hashable {
    /// The uapi macro's name (`"DMA_BUF_IOCTL_SYNC"`).
    package let name: String
    /// The request number the macro expands to.
    package let number: UInt

    package init(_ name: String, _ number: UInt) {
        self.name = name
        self.number = number
    }

    /// `DRM_IOCTL_GEM_CLOSE` (`drivers/gpu/drm/drm_gem.c`, `drm_gem_close_ioctl`).
    package static let gemClose = IoctlRequest("DRM_IOCTL_GEM_CLOSE", dmabufkit_DRM_IOCTL_GEM_CLOSE())
    /// `DRM_IOCTL_PRIME_HANDLE_TO_FD` (`drivers/gpu/drm/drm_prime.c`).
    package static let primeHandleToFD = IoctlRequest("DRM_IOCTL_PRIME_HANDLE_TO_FD", dmabufkit_DRM_IOCTL_PRIME_HANDLE_TO_FD())
    /// `DRM_IOCTL_PRIME_FD_TO_HANDLE` (`drivers/gpu/drm/drm_prime.c`).
    package static let primeFDToHandle = IoctlRequest("DRM_IOCTL_PRIME_FD_TO_HANDLE", dmabufkit_DRM_IOCTL_PRIME_FD_TO_HANDLE())
    /// `DRM_IOCTL_MODE_CREATE_DUMB` (`drivers/gpu/drm/drm_dumb_buffers.c`).
    package static let createDumb = IoctlRequest("DRM_IOCTL_MODE_CREATE_DUMB", dmabufkit_DRM_IOCTL_MODE_CREATE_DUMB())
    /// `DRM_IOCTL_MODE_DESTROY_DUMB` (`drivers/gpu/drm/drm_dumb_buffers.c`).
    package static let destroyDumb = IoctlRequest("DRM_IOCTL_MODE_DESTROY_DUMB", dmabufkit_DRM_IOCTL_MODE_DESTROY_DUMB())
    /// `DMA_BUF_IOCTL_SYNC` (`drivers/dma-buf/dma-buf.c`, `dma_buf_ioctl`).
    package static let dmaBufSync = IoctlRequest("DMA_BUF_IOCTL_SYNC", dmabufkit_DMA_BUF_IOCTL_SYNC())
    /// `DMA_BUF_SET_NAME_B` (`drivers/dma-buf/dma-buf.c`, `dma_buf_set_name`).
    package static let dmaBufSetName = IoctlRequest("DMA_BUF_SET_NAME_B", dmabufkit_DMA_BUF_SET_NAME_B())
    /// `DMA_BUF_IOCTL_EXPORT_SYNC_FILE` (`drivers/dma-buf/dma-buf.c`, `dma_buf_export_sync_file`).
    package static let exportSyncFile = IoctlRequest("DMA_BUF_IOCTL_EXPORT_SYNC_FILE", dmabufkit_DMA_BUF_IOCTL_EXPORT_SYNC_FILE())
    /// `DMA_BUF_IOCTL_IMPORT_SYNC_FILE` (`drivers/dma-buf/dma-buf.c`, `dma_buf_import_sync_file`).
    package static let importSyncFile = IoctlRequest("DMA_BUF_IOCTL_IMPORT_SYNC_FILE", dmabufkit_DMA_BUF_IOCTL_IMPORT_SYNC_FILE())
    /// `UDMABUF_CREATE` (`drivers/dma-buf/udmabuf.c`, `udmabuf_ioctl_create`).
    package static let udmabufCreate = IoctlRequest("UDMABUF_CREATE", dmabufkit_UDMABUF_CREATE())
    /// `DMA_HEAP_IOCTL_ALLOC` (`drivers/dma-buf/dma-heap.c`, `dma_heap_ioctl_allocate`).
    package static let dmaHeapAlloc = IoctlRequest("DMA_HEAP_IOCTL_ALLOC", dmabufkit_DMA_HEAP_IOCTL_ALLOC())
}

/// What an interceptor answers in the kernel's place.
package enum SystemCallOutcome: Sendable {
    /// Make the real call.
    case perform
    /// Succeed with this return value (a file descriptor, an offset, an address as an integer).
    case returns(Int)
    /// Fail with this errno, as the kernel would.
    case fails(Errno)
    /// The answer to `.drmGetVersion`.
    case version(DRMVersion)
    /// The answer to `.drmGetDevices`.
    case devices([DRMBusDevice])
    /// The answer to `.readFile`, `.readLink` (UTF-8) and `.listDirectory` (one name a line).
    case contents([UInt8])
}

/// A test-only stand-in for the kernel: sees every call of this target and may answer it.
package protocol SystemCallInterceptor: Sendable {
    /// Answers `call`; `argument` is the ioctl argument or the pread/pwrite buffer, when there is one.
    func intercept(_ call: SystemCall, argument: UnsafeMutableRawPointer?) -> SystemCallOutcome
}

/// The system-call layer: every kernel call of LinuxDMABuf goes through here.
package enum SystemCalls {
    /// The interceptor of the current task, if a test installed one with `$interceptor.withValue`.
    @TaskLocal package static var interceptor: (any SystemCallInterceptor)?

    /// The interceptor's answer to a call that returns a value rather than a number (`drmGetVersion`,
    /// `drmGetDevices2`, whole-file reads, folder listings, `readlink`), asked again while it
    /// answers EINTR, as the real calls are retried; `nil` without an interceptor.
    static func intercepted(_ call: SystemCall) -> SystemCallOutcome? {
        guard let interceptor else { return nil }
        while true {
            let outcome = interceptor.intercept(call, argument: nil)
            if case .fails(let errno) = outcome, errno == .EINTR { continue }
            return outcome
        }
    }

    /// Makes `call` (or lets the interceptor answer it) once; a negative result is read as errno.
    @inline(__always)
    static func once(
        _ call: SystemCall, _ argument: UnsafeMutableRawPointer?, _ body: () -> Int
    ) -> Result<Int, Errno> {
        if let interceptor {
            switch interceptor.intercept(call, argument: argument) {
            case .perform: break
            case .returns(let value): return .success(value)
            case .fails(let errno): return .failure(errno)
            case .version, .devices, .contents:
                preconditionFailure("interceptor answered \(call) with a value of the wrong kind")
            }
        }
        let value = body()
        if value == -1 { return .failure(Errno(rawValue: Glibc.errno)) }
        return .success(value)
    }

    /// Makes `call`, repeating it while it fails with EINTR (a signal arrived before any work).
    @inline(__always)
    static func retryingEINTR(
        _ call: SystemCall, _ argument: UnsafeMutableRawPointer? = nil, _ body: () -> Int
    ) -> Result<Int, Errno> {
        while true {
            let result = once(call, argument, body)
            if case .failure(let errno) = result, errno == .EINTR { continue }
            return result
        }
    }

    /// `open(2)` with `O_CLOEXEC` added; retried on EINTR.
    package static func open(_ path: String, _ flags: Int32) -> Result<Int32, Errno> {
        let flags = flags | O_CLOEXEC
        return retryingEINTR(.open(path: path, flags: flags)) {
            Int(path.withCString { dmabufkit_open($0, flags) })
        }.map { Int32(truncatingIfNeeded: $0) }
    }

    /// `close(2)`. Never retried: Linux releases the descriptor even when close reports EINTR, and a
    /// retry could close a descriptor another thread has just been given.
    package static func close(_ fd: Int32) -> Result<Void, Errno> {
        once(.close(fd: fd), nil) { Int(Glibc.close(fd)) }.map { _ in () }
    }

    /// `ioctl(2)` with a pointer argument; retried on EINTR (DRM's own `drmIoctl` does the same,
    /// and also retries EAGAIN, which none of the requests here return).
    package static func ioctl(_ fd: Int32, _ request: IoctlRequest, _ argument: UnsafeMutableRawPointer?) -> Result<Int32, Errno> {
        retryingEINTR(.ioctl(fd: fd, request: request), argument) {
            Int(dmabufkit_ioctl(fd, request.number, argument))
        }.map { Int32(truncatingIfNeeded: $0) }
    }

    /// `lseek(2)`.
    package static func lseek(_ fd: Int32, _ offset: Int64, _ whence: Int32) -> Result<Int64, Errno> {
        retryingEINTR(.lseek(fd: fd, offset: offset, whence: whence)) {
            Int(Glibc.lseek(fd, off_t(offset), whence))
        }.map { Int64($0) }
    }

    /// `mmap(2)` of a shared file mapping.
    package static func mmap(_ length: Int, _ protection: Int32, _ flags: Int32, _ fd: Int32, _ offset: Int64) -> Result<UnsafeMutableRawPointer, Errno> {
        retryingEINTR(.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset)) {
            let address = Glibc.mmap(nil, length, protection, flags, fd, off_t(offset))
            return address == MAP_FAILED ? -1 : Int(bitPattern: address)
        }.map { UnsafeMutableRawPointer(bitPattern: $0)! }
    }

    /// `munmap(2)`.
    package static func munmap(_ address: UnsafeMutableRawPointer, _ length: Int) -> Result<Void, Errno> {
        once(.munmap(address: UInt(bitPattern: address), length: length), nil) {
            Int(Glibc.munmap(address, length))
        }.map { _ in () }
    }

    /// `memfd_create(2)` with `MFD_CLOEXEC` added.
    package static func memfdCreate(_ name: String, _ flags: UInt32) -> Result<Int32, Errno> {
        let flags = flags | UInt32(MFD_CLOEXEC)
        return retryingEINTR(.memfdCreate(name: name, flags: flags)) {
            Int(name.withCString { dmabufkit_memfd_create($0, flags) })
        }.map { Int32(truncatingIfNeeded: $0) }
    }

    /// `fcntl(2)` with an integer argument.
    package static func fcntl(_ fd: Int32, _ command: Int32, _ argument: Int32) -> Result<Int32, Errno> {
        retryingEINTR(.fcntl(fd: fd, command: command, argument: argument)) {
            Int(dmabufkit_fcntl_int(fd, command, argument))
        }.map { Int32(truncatingIfNeeded: $0) }
    }

    /// `ftruncate(2)`.
    package static func ftruncate(_ fd: Int32, _ length: Int64) -> Result<Void, Errno> {
        retryingEINTR(.ftruncate(fd: fd, length: length)) {
            Int(Glibc.ftruncate(fd, off_t(length)))
        }.map { _ in () }
    }

    /// `pread(2)` into `buffer`.
    package static func pread(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, _ offset: Int64) -> Result<Int, Errno> {
        retryingEINTR(.pread(fd: fd, count: buffer.count, offset: offset), buffer.baseAddress) {
            Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
        }
    }

    /// `pwrite(2)` from `buffer`.
    package static func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, _ offset: Int64) -> Result<Int, Errno> {
        retryingEINTR(.pwrite(fd: fd, count: buffer.count, offset: offset), UnsafeMutableRawPointer(mutating: buffer.baseAddress)) {
            Glibc.pwrite(fd, buffer.baseAddress, buffer.count, off_t(offset))
        }
    }

    /// libdrm's `drmGetVersion`: the driver's name, version and description.
    package static func drmGetVersion(_ fd: Int32) -> Result<DRMVersion, Errno> {
        if let outcome = intercepted(.drmGetVersion(fd: fd)) {
            switch outcome {
            case .perform: break
            case .version(let version): return .success(version)
            case .fails(let errno): return .failure(errno)
            default: preconditionFailure("interceptor answered drmGetVersion with a value of the wrong kind")
            }
        }
        var raw: UnsafeMutablePointer<drmVersion>?
        repeat {
            Glibc.errno = 0
            raw = CLibDRM.drmGetVersion(fd)
        } while raw == nil && Glibc.errno == EINTR
        guard let raw else {
            let errno = Glibc.errno
            return .failure(errno == 0 ? .EIO : Errno(rawValue: errno))
        }
        defer { drmFreeVersion(raw) }
        func text(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int32) -> String {
            guard let pointer, length > 0 else { return "" }
            return String(decoding: UnsafeRawBufferPointer(start: pointer, count: Int(length)), as: UTF8.self)
        }
        let v = raw.pointee
        return .success(DRMVersion(
            name: text(v.name, v.name_len), major: Int(v.version_major), minor: Int(v.version_minor),
            patchLevel: Int(v.version_patchlevel), date: text(v.date, v.date_len), description: text(v.desc, v.desc_len)
        ))
    }

    /// libdrm's `drmGetDevices2(0, ...)`: the DRM devices libdrm can describe from sysfs.
    package static func drmGetDevices() -> Result<[DRMBusDevice], Errno> {
        if let outcome = intercepted(.drmGetDevices) {
            switch outcome {
            case .perform: break
            case .devices(let devices): return .success(devices)
            case .fails(let errno): return .failure(errno)
            default: preconditionFailure("interceptor answered drmGetDevices2 with a value of the wrong kind")
            }
        }
        let count = drmGetDevices2(0, nil, 0)
        if count < 0 { return .failure(Errno(rawValue: -count)) }
        if count == 0 { return .success([]) }
        var pointers = [drmDevicePtr?](repeating: nil, count: Int(count))
        let filled = drmGetDevices2(0, &pointers, count)
        if filled < 0 { return .failure(Errno(rawValue: -filled)) }
        defer { drmFreeDevices(&pointers, filled) }
        var devices: [DRMBusDevice] = []
        for index in 0..<Int(filled) {
            guard let device = pointers[index]?.pointee else { continue }
            var nodes: [String: String] = [:]
            for (bit, kind) in [(DRM_NODE_PRIMARY, "primary"), (DRM_NODE_RENDER, "render")] {
                if device.available_nodes & (1 << bit) != 0, let node = device.nodes[Int(bit)] {
                    nodes[kind] = String(cString: node)
                }
            }
            var bus = "other"
            var pciAddress: String?
            var pciID: String?
            switch device.bustype {
            case DRM_BUS_PCI:
                bus = "pci"
                if let info = device.businfo.pci?.pointee {
                    pciAddress = pciSlotName(domain: Int(info.domain), bus: Int(info.bus), device: Int(info.dev), function: Int(info.func))
                }
                if let ids = device.deviceinfo.pci?.pointee {
                    pciID = hex4(Int(ids.vendor_id)) + ":" + hex4(Int(ids.device_id))
                }
            case DRM_BUS_PLATFORM: bus = "platform"
            case DRM_BUS_USB: bus = "usb"
            case DRM_BUS_HOST1X: bus = "host1x"
            default: break
            }
            devices.append(DRMBusDevice(primaryNode: nodes["primary"], renderNode: nodes["render"], bus: bus, pciAddress: pciAddress, pciID: pciID))
        }
        return .success(devices)
    }

    /// The most a `/proc` or `/sys` file is read for by default: 1 MiB, far more than an fdinfo,
    /// a `comm` or an `osrelease` holds.
    package static let defaultReadLimit = 1 << 20

    /// Reads a whole file, as `/proc` and `/sys` files must be read (their size is not known ahead),
    /// but never more than `limit` bytes: a longer file is `EFBIG`, unread past the limit. The file
    /// is opened without blocking and must be a regular file (procfs and sysfs files are): a FIFO,
    /// a device such as `/dev/zero` or a folder in a copied tree is `EINVAL` or `EISDIR`, unread.
    /// - Complexity: O(min(file size, `limit`)).
    package static func readFile(_ path: String, limit: Int = defaultReadLimit) -> Result<[UInt8], Errno> {
        if let outcome = intercepted(.readFile(path: path)) {
            switch outcome {
            case .perform: break
            case .contents(let bytes): return .success(bytes)
            case .fails(let errno): return .failure(errno)
            default: preconditionFailure("interceptor answered readFile with a value of the wrong kind")
            }
        }
        var fd: Int32
        repeat { fd = path.withCString { dmabufkit_open($0, O_RDONLY | O_CLOEXEC | O_NONBLOCK) } } while fd < 0 && Glibc.errno == EINTR
        if fd < 0 { return .failure(Errno(rawValue: Glibc.errno)) }
        defer { _ = Glibc.close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { return .failure(Errno(rawValue: Glibc.errno)) }
        switch status.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: return .failure(.EISDIR)
        default: return .failure(.EINVAL)
        }
        // procfs and sysfs report 0 or 4096 whatever they hold; a larger size is a real file's.
        if status.st_size > limit { return .failure(.EFBIG) }
        // Read straight into the array's spare capacity (no zeroed bounce buffer per file: a
        // census reads a hundred thousand small fdinfo files), doubling it up to the limit.
        // Each read lands in uninitialised scratch space (no zeroed buffer per file: a census reads
        // a hundred thousand small fdinfo files) and is appended: linear in the file's length.
        var bytes: [UInt8] = []
        while true {
            let room = min(65536, limit + 1 - bytes.count)
            var failure: Int32 = 0
            var count = 0
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: room) { buffer in
                repeat {
                    count = Glibc.read(fd, buffer.baseAddress!, room)
                    failure = count < 0 ? Glibc.errno : 0
                } while count < 0 && failure == EINTR
                if count > 0 { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<count])) }
            }
            if count < 0 { return .failure(Errno(rawValue: failure)) }
            if count == 0 { return .success(bytes) }
            if bytes.count > limit { return .failure(.EFBIG) }
        }
    }

    /// Writes `text` to a kernel attribute file (sysfs, tracefs) in one `write(2)`, as `echo` does:
    /// `flags` adds `O_APPEND` or `O_TRUNC` to `O_WRONLY`. A failed open or write is its errno.
    package static func writeText(_ path: String, _ text: String, flags: Int32 = 0) -> Result<Void, Errno> {
        open(path, O_WRONLY | flags).flatMap { fd in
            defer { _ = close(fd) }
            let bytes = Array(text.utf8)
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            return written < 0 ? .failure(Errno(rawValue: Glibc.errno)) : .success(())
        }
    }

    /// Lists the names in a folder, without `.` and `..`.
    package static func listDirectory(_ path: String) -> Result<[String], Errno> {
        if let outcome = intercepted(.listDirectory(path: path)) {
            switch outcome {
            case .perform: break
            case .contents(let bytes):
                return .success(String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init))
            case .fails(let errno): return .failure(errno)
            default: preconditionFailure("interceptor answered listDirectory with a value of the wrong kind")
            }
        }
        guard let dir = opendir(path) else { return .failure(Errno(rawValue: Glibc.errno)) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return .success(names)
    }

    /// `readlink(2)`: where a symbolic link (a `/proc/PID/fd/N` entry) points.
    package static func readLink(_ path: String) -> Result<String, Errno> {
        if let outcome = intercepted(.readLink(path: path)) {
            switch outcome {
            case .perform: break
            case .contents(let bytes): return .success(String(decoding: bytes, as: UTF8.self))
            case .fails(let errno): return .failure(errno)
            default: preconditionFailure("interceptor answered readlink with a value of the wrong kind")
            }
        }
        // A stack buffer: the census reads a link per open file of every process.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { buffer in
            let count = path.withCString { Glibc.readlink($0, buffer.baseAddress!, buffer.count) }
            if count < 0 { return .failure(Errno(rawValue: Glibc.errno)) }
            return .success(String(decoding: UnsafeBufferPointer(rebasing: buffer[0..<count]), as: UTF8.self))
        }
    }

    /// The page size (`sysconf(_SC_PAGESIZE)`), which mmap offsets and udmabuf ranges must align to.
    package static var pageSize: Int { Int(sysconf(Int32(_SC_PAGESIZE))) }
}

func hex4(_ value: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

func pciSlotName(domain: Int, bus: Int, device: Int, function: Int) -> String {
    func hex(_ value: Int, _ width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
    return "\(hex(domain, 4)):\(hex(bus, 2)):\(hex(device, 2)).\(function)"
}

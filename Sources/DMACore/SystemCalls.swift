#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// The one system-call layer of the package (the swift-system way, `Internals/Syscalls.swift`):
// every call a module makes into the kernel (LinuxDMABuf's devices and fds, the PCI module's sysfs
// reader) goes through `SystemCalls`, which retries EINTR where that is correct and lets a
// test-only interceptor answer in the kernel's place. The interceptor is a task-local value, so
// tests that run in parallel cannot see each other's mocks. It lives in DMACore, the one module
// both of those import, with `package` access: no user of the library sees it.
//
// The C library is reached through the file-scope functions at the end of this file, never by a
// module-qualified name (`Glibc.read`), so the same text serves Glibc and Musl (only Glibc is built and tested);
// the ioctl, memfd and libdrm calls, which need LinuxDMABuf's C shims, extend it there.

/// One system call (or libdrm call that wraps system calls) as the interceptor sees it.
package enum SystemCall: Sendable, Hashable, CustomStringConvertible {
    /// `open(2)`.
    case open(path: String, flags: Int32)
    /// `openat(2)` relative to the folder open as `folder` (or `AT_FDCWD`): the sysfs reader's
    /// fast path, one open per attribute without walking the whole path again.
    case openAt(folder: Int32, path: String, flags: Int32)
    /// `close(2)`.
    case close(fd: Int32)
    /// `read(2)`; the buffer is passed as the argument pointer.
    case read(fd: Int32, count: Int)
    /// `fstat(2)`; a mock may only fail it (or let it be made).
    case fstat(fd: Int32)
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
    /// Reading a whole file relative to the folder open as `folder` (`openat`, `read`, `close`):
    /// the census's fdinfo, comm and maps of one process.
    case readFileAt(folder: Int32, path: String)
    /// Listing a folder (`opendir`, `readdir`).
    case listDirectory(path: String)
    /// Listing the folder `path` of the folder open as `folder` (`openat`, `fdopendir`, `readdir`).
    case listDirectoryAt(folder: Int32, path: String)
    /// `readlink(2)`.
    case readLink(path: String)
    /// `readlinkat(2)` relative to the folder open as `folder`.
    case readLinkAt(folder: Int32, path: String)

    package var description: String {
        switch self {
        case .open(let path, let flags): "open(\(path), 0o\(String(flags, radix: 8)))"
        case .openAt(let folder, let path, let flags): "openat(\(folder), \(path), 0o\(String(flags, radix: 8)))"
        case .close(let fd): "close(\(fd))"
        case .read(let fd, let count): "read(\(fd), \(count))"
        case .fstat(let fd): "fstat(\(fd))"
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
        case .readFileAt(let folder, let path): "read(\(folder), \(path))"
        case .listDirectory(let path): "readdir(\(path))"
        case .listDirectoryAt(let folder, let path): "readdir(\(folder), \(path))"
        case .readLink(let path): "readlink(\(path))"
        case .readLinkAt(let folder, let path): "readlinkat(\(folder), \(path))"
        }
    }
}

/// An ioctl request number with the kernel's name for it (LinuxDMABuf names the requests it makes).
package struct IoctlRequest: Sendable, Hashable {
    /// The uapi macro's name (`"DMA_BUF_IOCTL_SYNC"`).
    package let name: String
    /// The request number the macro expands to.
    package let number: UInt

    package init(_ name: String, _ number: UInt) {
        self.name = name
        self.number = number
    }
}

/// What an interceptor answers in the kernel's place.
package enum SystemCallOutcome: Sendable {
    /// Make the real call.
    case perform
    /// Succeed with this return value (a file descriptor, an offset, an address as an integer).
    case returns(Int)
    /// Fail with this errno, as the kernel would.
    case fails(Errno)
    /// The answer to a call that returns a value of a type this layer does not know (libdrm's
    /// version and device list, which LinuxDMABuf defines): the caller checks its type.
    case value(any Sendable)
    /// The answer to `.readFile`, `.readLink` (UTF-8) and `.listDirectory` (one name a line).
    case contents([UInt8])
}

/// A test-only stand-in for the kernel: sees every call of the package and may answer it.
package protocol SystemCallInterceptor: Sendable {
    /// Answers `call`; `argument` is the ioctl argument or the read/pread/pwrite buffer, when there
    /// is one.
    func intercept(_ call: SystemCall, argument: UnsafeMutableRawPointer?) -> SystemCallOutcome
}

/// The system-call layer: every kernel call of the package goes through here.
package enum SystemCalls {
    /// The interceptor of the current task, if a test installed one with `$interceptor.withValue`.
    @TaskLocal package static var interceptor: (any SystemCallInterceptor)?

    /// The interceptor's answer to a call that returns a value rather than a number (`drmGetVersion`,
    /// `drmGetDevices2`, whole-file reads, folder listings, `readlink`), asked again while it
    /// answers EINTR, as the real calls are retried; `nil` without an interceptor.
    package static func intercepted(_ call: SystemCall) -> SystemCallOutcome? {
        guard let interceptor else { return nil }
        while true {
            let outcome = interceptor.intercept(call, argument: nil)
            if case .fails(let errno) = outcome, errno == .EINTR { continue }
            return outcome
        }
    }

    /// Makes `call` (or lets the interceptor answer it) once; a result of -1 is read as errno.
    @inline(__always)
    package static func once(
        _ call: SystemCall, _ argument: UnsafeMutableRawPointer?, _ body: () -> Int
    ) -> Result<Int, Errno> {
        if let interceptor {
            switch interceptor.intercept(call, argument: argument) {
            case .perform: break
            case .returns(let value): return .success(value)
            case .fails(let errno): return .failure(errno)
            case .value, .contents:
                preconditionFailure("interceptor answered \(call) with a value of the wrong kind")
            }
        }
        let value = body()
        if value == -1 { return .failure(Errno(rawValue: cErrno())) }
        return .success(value)
    }

    /// Makes `call`, repeating it while it fails with EINTR (a signal arrived before any work).
    @inline(__always)
    package static func retryingEINTR(
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
            Int(path.withCString { cOpen($0, flags) })
        }.map { Int32(truncatingIfNeeded: $0) }
    }

    /// `openat(2)` with `O_CLOEXEC` added, relative to the folder open as `folder` (`AT_FDCWD` for
    /// the working folder); retried on EINTR.
    package static func openAt(_ folder: Int32, _ path: String, _ flags: Int32) -> Result<Int32, Errno> {
        let flags = flags | O_CLOEXEC
        return retryingEINTR(.openAt(folder: folder, path: path, flags: flags)) {
            Int(path.withCString { cOpenAt(folder, $0, flags) })
        }.map { Int32(truncatingIfNeeded: $0) }
    }

    /// `close(2)`. Never retried: Linux releases the descriptor even when close reports EINTR, and a
    /// retry could close a descriptor another thread has just been given.
    package static func close(_ fd: Int32) -> Result<Void, Errno> {
        once(.close(fd: fd), nil) { Int(cClose(fd)) }.map { _ in () }
    }

    /// `read(2)` into `buffer`; retried on EINTR. Zero is the end of the file.
    package static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Result<Int, Errno> {
        retryingEINTR(.read(fd: fd, count: buffer.count), buffer.baseAddress) {
            cRead(fd, buffer.baseAddress, buffer.count)
        }
    }

    /// `fstat(2)`: the type and size of the open file.
    package static func fstat(_ fd: Int32) -> Result<stat, Errno> {
        var status = stat()
        return retryingEINTR(.fstat(fd: fd)) { Int(cFstat(fd, &status)) }.map { _ in status }
    }

    /// `lseek(2)`.
    package static func lseek(_ fd: Int32, _ offset: Int64, _ whence: Int32) -> Result<Int64, Errno> {
        retryingEINTR(.lseek(fd: fd, offset: offset, whence: whence)) {
            Int(cLseek(fd, off_t(offset), whence))
        }.map { Int64($0) }
    }

    /// `mmap(2)` of a shared file mapping.
    package static func mmap(_ length: Int, _ protection: Int32, _ flags: Int32, _ fd: Int32, _ offset: Int64) -> Result<UnsafeMutableRawPointer, Errno> {
        retryingEINTR(.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset)) {
            let address = cMmap(length, protection, flags, fd, off_t(offset))
            return address == MAP_FAILED ? -1 : Int(bitPattern: address)
        }.map { UnsafeMutableRawPointer(bitPattern: $0)! }
    }

    /// `munmap(2)`.
    package static func munmap(_ address: UnsafeMutableRawPointer, _ length: Int) -> Result<Void, Errno> {
        once(.munmap(address: UInt(bitPattern: address), length: length), nil) {
            Int(cMunmap(address, length))
        }.map { _ in () }
    }

    /// `ftruncate(2)`.
    package static func ftruncate(_ fd: Int32, _ length: Int64) -> Result<Void, Errno> {
        retryingEINTR(.ftruncate(fd: fd, length: length)) {
            Int(cFtruncate(fd, off_t(length)))
        }.map { _ in () }
    }

    /// `pread(2)` into `buffer`.
    package static func pread(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, _ offset: Int64) -> Result<Int, Errno> {
        retryingEINTR(.pread(fd: fd, count: buffer.count, offset: offset), buffer.baseAddress) {
            cPread(fd, buffer.baseAddress, buffer.count, off_t(offset))
        }
    }

    /// `pwrite(2)` from `buffer`.
    package static func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, _ offset: Int64) -> Result<Int, Errno> {
        retryingEINTR(.pwrite(fd: fd, count: buffer.count, offset: offset), UnsafeMutableRawPointer(mutating: buffer.baseAddress)) {
            cPwrite(fd, buffer.baseAddress, buffer.count, off_t(offset))
        }
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
        readFile(.readFile(path: path), at: AT_FDCWD, path, limit: limit, shortReadEnds: false)
    }

    /// Reads the file `name` in the folder open as `folder` (`openat(2)`: no path is walked from the
    /// root, and a short name needs no string of its own), as ``readFile(_:limit:)`` reads.
    /// `shortReadEnds`: the file is one record of a seq_file (a `/proc/PID/fdinfo/N`, a `comm`),
    /// which the kernel hands over whole in the first read when it fits: a read that does not fill
    /// the buffer is the end, and the second read that would return 0 is not made. Never true for
    /// a file of many records such as `maps`, whose reads stop at a record that does not fit.
    package static func readFile(at folder: Int32, _ name: String, limit: Int = defaultReadLimit, shortReadEnds: Bool = false) -> Result<[UInt8], Errno> {
        readFile(.readFileAt(folder: folder, path: name), at: folder, name, limit: limit, shortReadEnds: shortReadEnds)
    }

    private static func readFile(_ call: SystemCall, at folder: Int32, _ path: String, limit: Int, shortReadEnds: Bool) -> Result<[UInt8], Errno> {
        var bytes: [UInt8] = []
        let outcome = withFileContents(call, at: folder, path, limit: limit, shortReadEnds: shortReadEnds) { bytes = Array($0) }
        return outcome.map { bytes }
    }

    /// Reads the file `name` in the folder open as `folder` as ``readFile(at:_:limit:shortReadEnds:)``
    /// does, and hands its bytes to `body` without copying them into an array of their own: a
    /// file that fits in one read (an fdinfo, a `comm`) is read into the stack. The bytes are valid
    /// only inside `body`. Not generic: a generic call across the module boundary looked its
    /// `Result` type up at run time on every call (4 % of a census).
    package static func withFileContents(
        at folder: Int32, _ name: String, limit: Int = defaultReadLimit, shortReadEnds: Bool = false,
        _ body: (UnsafeBufferPointer<UInt8>) -> Void
    ) -> Result<Void, Errno> {
        withFileContents(.readFileAt(folder: folder, path: name), at: folder, name, limit: limit, shortReadEnds: shortReadEnds, body)
    }

    private static func withFileContents(
        _ call: SystemCall, at folder: Int32, _ path: String, limit: Int, shortReadEnds: Bool,
        _ body: (UnsafeBufferPointer<UInt8>) -> Void
    ) -> Result<Void, Errno> {
        if let outcome = intercepted(call) {
            switch outcome {
            case .perform: break
            case .contents(let bytes): return .success(bytes.withUnsafeBufferPointer(body))
            case .fails(let errno): return .failure(errno)
            default: preconditionFailure("interceptor answered readFile with a value of the wrong kind")
            }
        }
        var fd: Int32
        repeat { fd = path.withCString { cOpenAt(folder, $0, O_RDONLY | O_CLOEXEC | O_NONBLOCK) } } while fd < 0 && cErrno() == EINTR
        if fd < 0 { return .failure(Errno(rawValue: cErrno())) }
        defer { _ = cClose(fd) }
        var status = stat()
        guard cFstat(fd, &status) == 0 else { return .failure(Errno(rawValue: cErrno())) }
        switch status.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: return .failure(.EISDIR)
        default: return .failure(.EINVAL)
        }
        // procfs and sysfs report 0 or 4096 whatever they hold; a larger size is a real file's.
        if status.st_size > limit { return .failure(.EFBIG) }
        // Each read lands in uninitialised scratch space (no zeroed buffer per file: a census reads
        // a hundred thousand small fdinfo files). A file whose first read ends it is handed over
        // from there; a longer one is gathered in an array: linear in the file's length.
        let first = min(4096, limit + 1)
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: first) { scratch -> Result<Void, Errno> in
            func read(_ buffer: UnsafeMutableBufferPointer<UInt8>) -> Result<Int, Errno> {
                var count = 0
                var failure: Int32 = 0
                repeat {
                    count = cRead(fd, buffer.baseAddress!, buffer.count)
                    failure = count < 0 ? cErrno() : 0
                } while count < 0 && failure == EINTR
                return count < 0 ? .failure(Errno(rawValue: failure)) : .success(count)
            }
            let count: Int
            switch read(scratch) {
            case .failure(let errno): return .failure(errno)
            case .success(let n): count = n
            }
            if count == 0 || (shortReadEnds && count < first) {
                return .success(body(UnsafeBufferPointer(rebasing: scratch[0..<count])))
            }
            if count > limit { return .failure(.EFBIG) }
            var bytes = Array(scratch[0..<count])
            while true {
                let room = min(65536, limit + 1 - bytes.count)
                var outcome: Result<Int, Errno> = .success(0)
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: room) { buffer in
                    outcome = read(buffer)
                    if case .success(let n) = outcome, n > 0 { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<n])) }
                }
                switch outcome {
                case .failure(let errno): return .failure(errno)
                case .success(0): return .success(bytes.withUnsafeBufferPointer(body))
                case .success(let n):
                    if bytes.count > limit { return .failure(.EFBIG) }
                    if shortReadEnds, n < room { return .success(bytes.withUnsafeBufferPointer(body)) }
                }
            }
        }
    }

    /// Writes `text` to a kernel attribute file (sysfs, tracefs) in one `write(2)`, as `echo` does:
    /// `flags` adds `O_APPEND` or `O_TRUNC` to `O_WRONLY`. A failed open or write is its errno.
    package static func writeText(_ path: String, _ text: String, flags: Int32 = 0) -> Result<Void, Errno> {
        open(path, O_WRONLY | flags).flatMap { fd in
            defer { _ = close(fd) }
            let bytes = Array(text.utf8)
            let written = bytes.withUnsafeBytes { cWrite(fd, $0.baseAddress, $0.count) }
            return written < 0 ? .failure(Errno(rawValue: cErrno())) : .success(())
        }
    }

    /// Lists the names in a folder, without `.` and `..`.
    package static func listDirectory(_ path: String) -> Result<[String], Errno> {
        listDirectory(.listDirectory(path: path), at: AT_FDCWD, path)
    }

    /// Lists the names in the folder `name` of the folder open as `folder` (`openat(2)` then
    /// `fdopendir(3)`), without `.` and `..`.
    package static func listDirectory(at folder: Int32, _ name: String) -> Result<[String], Errno> {
        listDirectory(.listDirectoryAt(folder: folder, path: name), at: folder, name)
    }

    private static func listDirectory(_ call: SystemCall, at folder: Int32, _ path: String) -> Result<[String], Errno> {
        if let outcome = intercepted(call) {
            switch outcome {
            case .perform: break
            case .contents(let bytes):
                return .success(String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init))
            case .fails(let errno): return .failure(errno)
            default: preconditionFailure("interceptor answered listDirectory with a value of the wrong kind")
            }
        }
        var fd: Int32
        repeat { fd = path.withCString { cOpenAt(folder, $0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } } while fd < 0 && cErrno() == EINTR
        if fd < 0 { return .failure(Errno(rawValue: cErrno())) }
        // fdopendir owns the descriptor from here: closedir closes it.
        guard let dir = cFdopendir(fd) else {
            let failure = cErrno()
            _ = cClose(fd)
            return .failure(Errno(rawValue: failure))
        }
        defer { _ = cClosedir(dir) }
        var names: [String] = []
        while let entry = cReaddir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return .success(names)
    }

    /// `readlink(2)`: where a symbolic link (a `/proc/PID/fd/N` entry) points.
    package static func readLink(_ path: String) -> Result<String, Errno> {
        readLink(.readLink(path: path), at: AT_FDCWD, path)
    }

    /// `readlinkat(2)`: where the symbolic link `name` in the folder open as `folder` points.
    package static func readLink(at folder: Int32, _ name: String) -> Result<String, Errno> {
        readLink(.readLinkAt(folder: folder, path: name), at: folder, name)
    }

    /// `readlinkat(2)`, handing the link's bytes to `body` from a stack buffer (no string is made:
    /// the census reads a link per open file of every process and keeps only a dma-buf's).
    package static func withLinkTarget(at folder: Int32, _ name: String, _ body: (UnsafeBufferPointer<UInt8>) -> Void) -> Result<Void, Errno> {
        withLinkTarget(.readLinkAt(folder: folder, path: name), at: folder, name, body)
    }

    private static func readLink(_ call: SystemCall, at folder: Int32, _ path: String) -> Result<String, Errno> {
        var target = ""
        return withLinkTarget(call, at: folder, path) { target = String(decoding: $0, as: UTF8.self) }.map { target }
    }

    private static func withLinkTarget(
        _ call: SystemCall, at folder: Int32, _ path: String, _ body: (UnsafeBufferPointer<UInt8>) -> Void
    ) -> Result<Void, Errno> {
        if let outcome = intercepted(call) {
            switch outcome {
            case .perform: break
            case .contents(let bytes): return .success(bytes.withUnsafeBufferPointer(body))
            case .fails(let errno): return .failure(errno)
            default: preconditionFailure("interceptor answered readlink with a value of the wrong kind")
            }
        }
        // A stack buffer: the census reads a link per open file of every process. A link's text is
        // at most PATH_MAX (4096) bytes; one that fills the buffer whole may have been cut.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { buffer in
            let count = path.withCString { cReadlinkat(folder, $0, buffer.baseAddress!, buffer.count) }
            if count < 0 { return .failure(Errno(rawValue: cErrno())) }
            return .success(body(UnsafeBufferPointer(rebasing: buffer[0..<count])))
        }
    }

    /// The real path of `path` (every link resolved, as `realpath(3)`); a library call, not
    /// intercepted.
    package static func realPath(_ path: String) -> Result<String, Errno> {
        guard let resolved = cRealpath(path) else { return .failure(Errno(rawValue: cErrno())) }
        defer { cFree(resolved) }
        return .success(String(cString: resolved))
    }

    /// The working folder (`getcwd(3)`); a library call, not intercepted.
    package static func workingDirectory() -> Result<String, Errno> {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 4097) { buffer in
            guard cGetcwd(buffer.baseAddress!, buffer.count) != nil else { return .failure(Errno(rawValue: cErrno())) }
            return .success(String(cString: buffer.baseAddress!))
        }
    }

    /// The page size (`sysconf(_SC_PAGESIZE)`), which mmap offsets and udmabuf ranges must align to.
    package static var pageSize: Int { Int(cSysconf(Int32(_SC_PAGESIZE))) }
}

// The C library's calls, reached from file scope where no member of `SystemCalls` shadows them:
// the same names resolve in Glibc and Musl, so no call here names its module.
private func cErrno() -> Int32 { errno }
private func cOpen(_ path: UnsafePointer<CChar>, _ flags: Int32) -> Int32 { open(path, flags) }
private func cOpenAt(_ folder: Int32, _ path: UnsafePointer<CChar>, _ flags: Int32) -> Int32 { openat(folder, path, flags) }
private func cClose(_ fd: Int32) -> Int32 { close(fd) }
private func cRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int { read(fd, buffer, count) }
private func cWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int { write(fd, buffer, count) }
private func cFstat(_ fd: Int32, _ status: UnsafeMutablePointer<stat>) -> Int32 { fstat(fd, status) }
private func cLseek(_ fd: Int32, _ offset: off_t, _ whence: Int32) -> off_t { lseek(fd, offset, whence) }
private func cMmap(_ length: Int, _ protection: Int32, _ flags: Int32, _ fd: Int32, _ offset: off_t) -> UnsafeMutableRawPointer? {
    mmap(nil, length, protection, flags, fd, offset)
}
private func cMunmap(_ address: UnsafeMutableRawPointer, _ length: Int) -> Int32 { munmap(address, length) }
private func cFtruncate(_ fd: Int32, _ length: off_t) -> Int32 { ftruncate(fd, length) }
private func cPread(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int, _ offset: off_t) -> Int { pread(fd, buffer, count, offset) }
private func cPwrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int, _ offset: off_t) -> Int { pwrite(fd, buffer, count, offset) }
private func cFdopendir(_ fd: Int32) -> OpaquePointer? { fdopendir(fd) }
private func cClosedir(_ dir: OpaquePointer) -> Int32 { closedir(dir) }
private func cReaddir(_ dir: OpaquePointer) -> UnsafeMutablePointer<dirent>? { readdir(dir) }
private func cReadlinkat(_ folder: Int32, _ path: UnsafePointer<CChar>, _ buffer: UnsafeMutablePointer<UInt8>, _ count: Int) -> Int {
    buffer.withMemoryRebound(to: CChar.self, capacity: count) { readlinkat(folder, path, $0, count) }
}
private func cRealpath(_ path: String) -> UnsafeMutablePointer<CChar>? { realpath(path, nil) }
private func cFree(_ pointer: UnsafeMutableRawPointer?) { free(pointer) }
private func cGetcwd(_ buffer: UnsafeMutablePointer<CChar>, _ count: Int) -> UnsafeMutablePointer<CChar>? { getcwd(buffer, count) }
private func cSysconf(_ name: Int32) -> Int { sysconf(name) }

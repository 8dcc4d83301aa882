#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import DMACore

/// The file access of the sysfs reader, on the package's system-call layer (`SystemCalls` in
/// DMACore: the same EINTR rule and the same test interceptor as every other kernel call): a sysfs
/// tree is thousands of tiny files (a 1,024-endpoint machine has about 10,000 to read), and each
/// Foundation call costs more than the read itself. Paths are plain strings; nothing here follows
/// a link it is not asked to, and no read is longer than the size the kernel gives the file.
enum SysfsFiles {
    /// The most bytes a sysfs attribute may hold: one page (`sysfs_emit` writes at most
    /// `PAGE_SIZE`), which is also the size of a PCIe config space (`PCI_CFG_SPACE_EXP_SIZE`) and of
    /// a link's text (`PATH_MAX`). Anything longer is not what the kernel writes, and is refused.
    static let attributeLimit = 4096

    /// Why a file of a sysfs tree was refused instead of read, with the errno the kernel's own
    /// refusal of the same thing gives (`O_NOFOLLOW` on a link: `ELOOP`; `RESOLVE_BENEATH` on a path
    /// that leaves the tree: `EXDEV`; a read into a folder: `EISDIR`; more than asked for: `EFBIG`).
    struct Refusal: Error, Hashable, Sendable {
        /// The errno.
        var errno: Errno
        /// Why, in words, without the file's name (the caller names it).
        var reason: String
    }

    /// The contents of the file at `path`, at most `limit` bytes, or nil when it cannot be opened
    /// or read (missing, no permission). See ``read(at:_:limit:within:)``.
    static func read(_ path: String, limit: Int = attributeLimit, within tree: String? = nil) throws(Refusal) -> [UInt8]? {
        try read(at: AT_FDCWD, path, limit: limit, within: tree)
    }

    /// The contents of the file `name` in the folder open as `folder` (or `AT_FDCWD`), at most
    /// `limit` bytes; nil when it is missing or cannot be opened or read.
    ///
    /// The file is opened with `O_NONBLOCK | O_NOFOLLOW` and must be a regular file (a FIFO, a
    /// device such as `/dev/zero`, a socket or a folder is refused before any read, so nothing can
    /// block or never end). A symbolic link is followed only when `tree` (a real path, see
    /// ``realPath(_:)``) is given and the link resolves inside it; `folderPath` names the folder
    /// for that resolution. A file that reports or gives more than `limit` bytes is refused.
    ///
    /// Sysfs files report a size of 4096 whatever they hold, so the size is only an upper bound: a
    /// short read is the end of the file here (a sysfs attribute hands its whole value, at most a
    /// page, to the first read, and a regular file reads short only at its end). EINTR is retried.
    /// - Complexity: O(`limit`) whatever the file's size.
    static func read(at folder: Int32, _ name: String, folderPath: String? = nil, limit: Int = attributeLimit, within tree: String? = nil)
        throws(Refusal) -> [UInt8]?
    {
        let flags = O_RDONLY | O_NONBLOCK | O_NOFOLLOW
        var opened = SystemCalls.openAt(folder, name, flags)
        if case .failure(.ELOOP) = opened {
            // A symbolic link (or a loop of them): followed only into the tree.
            guard let tree else { throw Refusal(errno: .ELOOP, reason: "a symbolic link where a file was expected") }
            let path = folderPath.map { $0 + "/" + name } ?? name
            guard let target = realPath(path) else {
                throw Refusal(errno: .ELOOP, reason: "a symbolic link that leads nowhere or loops")
            }
            guard target.hasPrefix(tree + "/") else {
                throw Refusal(errno: .EXDEV, reason: "a symbolic link that leaves the tree (to \(target))")
            }
            opened = SystemCalls.openAt(AT_FDCWD, target, flags)
            if case .failure(.ELOOP) = opened { throw Refusal(errno: .ELOOP, reason: "a symbolic link that changed while it was read") }
        }
        // Missing or not ours to open (ENOENT, EACCES): no contents, and the caller says whether
        // the file was needed.
        guard case .success(let fd) = opened else { return nil }
        defer { _ = SystemCalls.close(fd) }
        let status: stat
        switch SystemCalls.fstat(fd) {
        case .success(let value): status = value
        case .failure(let errno): throw Refusal(errno: errno, reason: "its type and size cannot be read (\(errno.name))")
        }
        switch status.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw Refusal(errno: .EISDIR, reason: "a folder where a file was expected")
        case S_IFIFO: throw Refusal(errno: .EINVAL, reason: "a FIFO, not a regular file (it would block)")
        case S_IFCHR, S_IFBLK: throw Refusal(errno: .EINVAL, reason: "a device, not a regular file")
        case S_IFSOCK: throw Refusal(errno: .EINVAL, reason: "a socket, not a regular file")
        default: throw Refusal(errno: .EINVAL, reason: "not a regular file")
        }
        guard status.st_size <= limit else {
            throw Refusal(errno: .EFBIG, reason: "\(status.st_size) bytes, more than the \(limit) a sysfs attribute can hold")
        }
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        var count = 0
        while count <= limit {
            let asked = limit + 1 - count
            let got: Int
            switch bytes.withUnsafeMutableBytes({ SystemCalls.read(fd, UnsafeMutableRawBufferPointer(rebasing: $0[count...])) }) {
            case .success(let value): got = value
            case .failure(let errno):
                // The file opened and then would not read (EIO from a driver's show routine):
                // an error with the kernel's errno, not a file that is silently missing.
                throw Refusal(errno: errno, reason: "it opened but could not be read (\(errno.name))")
            }
            count += got
            if got < asked { break }
        }
        guard count <= limit else {
            throw Refusal(errno: .EFBIG, reason: "more than the \(limit) bytes a sysfs attribute can hold")
        }
        bytes.removeLast(bytes.count - count)
        return bytes
    }

    /// The real path of `path` (every link resolved, as `realpath(3)`), or nil when it does not
    /// exist or a link loops.
    static func realPath(_ path: String) -> String? { try? SystemCalls.realPath(path).get() }

    /// The real path of the folder open as `fd`: `/proc/self/fd/N` read as a link (one system
    /// call), else nil.
    static func realPath(ofOpen fd: Int32) -> String? {
        readLink("/proc/self/fd/\(fd)").flatMap { $0.hasPrefix("/") ? $0 : nil }
    }

    /// The text of the symbolic link at `path`, or nil when it is not a link.
    static func readLink(_ path: String) -> String? { readLink(at: AT_FDCWD, path) }

    /// The text of the symbolic link `name` in the folder open as `folder`, or nil.
    static func readLink(at folder: Int32, _ name: String) -> String? {
        guard case .success(let text) = SystemCalls.readLink(at: folder, name), !text.isEmpty else { return nil }
        return text
    }

    /// A folder held open while its files are read, so that each file is opened relative to it
    /// (`openat`) instead of walking the whole path again: a device folder of a deep tree is a dozen
    /// components down, and it has eight files to read.
    struct Folder: ~Copyable {
        /// The open folder.
        let fd: Int32
        /// The path it was opened by.
        let path: String

        /// Opens the folder at `path` (through links); nil when it is not a folder or cannot be opened.
        init?(_ path: String) {
            guard case .success(let fd) = SystemCalls.open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK) else { return nil }
            self.fd = fd
            self.path = path
        }

        deinit { _ = SystemCalls.close(fd) }

        /// Where the folder really is (its links resolved), or nil when that cannot be told.
        var realPath: String? { SysfsFiles.realPath(ofOpen: fd) ?? SysfsFiles.realPath(path) }

        /// The contents of the file `name` in the folder, at most `limit` bytes, following a link
        /// only into `tree` (see ``SysfsFiles/read(at:_:folderPath:limit:within:)``).
        func read(_ name: String, limit: Int = SysfsFiles.attributeLimit, within tree: String? = nil) throws(Refusal) -> [UInt8]? {
            try SysfsFiles.read(at: fd, name, folderPath: path, limit: limit, within: tree)
        }
        /// The text of the link `name` in the folder.
        func readLink(_ name: String) -> String? { SysfsFiles.readLink(at: fd, name) }
    }

    /// The names in the folder at `path`, without `.` and `..`; nil when it cannot be listed.
    static func list(_ path: String) -> [String]? { try? SystemCalls.listDirectory(path).get() }

    /// `path` made absolute (against the working folder) and free of `.`, `..`, repeated and
    /// trailing slashes, without resolving links: what a path means lexically, as
    /// `URL.standardizedFileURL` gives it. `..` at the root stays at the root.
    static func standardize(_ path: String, relativeTo base: String? = nil) -> String {
        var full = path
        if !path.hasPrefix("/") {
            full = (base ?? workingDirectory()) + "/" + path
        }
        var parts: [Substring] = []
        for part in full.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": _ = parts.popLast()
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    private static func workingDirectory() -> String { (try? SystemCalls.workingDirectory().get()) ?? "/" }

    /// The text of `bytes` without leading and trailing spaces, tabs and newlines (trimmed on the
    /// bytes, before decoding: a sysfs value is one short line).
    static func text(_ bytes: some Collection<UInt8>) -> String {
        let blank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x0a || $0 == 0x09 }
        guard let first = bytes.firstIndex(where: { !blank($0) }) else { return "" }
        var end = bytes.endIndex
        var cursor = first
        while cursor != bytes.endIndex {
            if !blank(bytes[cursor]) { end = bytes.index(after: cursor) }
            cursor = bytes.index(after: cursor)
        }
        return String(decoding: bytes[first..<end], as: UTF8.self)
    }

    /// A hexadecimal number written `0x…` (as `resource` has them), from bytes.
    static func prefixedHex(_ bytes: some Collection<UInt8>) -> UInt64? {
        guard bytes.count > 2, bytes.starts(with: [0x30, 0x78]) else { return nil }
        var value: UInt64 = 0
        for byte in bytes.dropFirst(2) {
            guard value >> 60 == 0 else { return nil }  // a 17th significant digit: beyond 64 bits
            switch byte {
            case 0x30...0x39: value = value << 4 | UInt64(byte - 0x30)
            case 0x61...0x66: value = value << 4 | UInt64(byte - 0x61 + 10)
            case 0x41...0x46: value = value << 4 | UInt64(byte - 0x41 + 10)
            default: return nil
            }
        }
        return value
    }
}

/// Input text made safe for an error message (see `ErrorText.printable`).
func printable(_ text: some StringProtocol) -> String { ErrorText.printable(text) }

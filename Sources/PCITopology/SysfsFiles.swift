#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The file access of the sysfs reader, straight on the system calls: a sysfs tree is thousands of
/// tiny files (a 1,024-endpoint machine has about 10,000 to read), and each Foundation call costs
/// more than the read itself. Paths are plain strings; nothing here follows a link it is not asked
/// to.
enum SysfsFiles {
    /// The whole contents of the file at `path`, or nil when it cannot be opened or read (missing,
    /// a folder, no permission). See ``read(at:_:)``.
    static func read(_ path: String) -> [UInt8]? { read(at: AT_FDCWD, path) }

    /// The whole contents of the file `name` in the folder open as `folder` (or `AT_FDCWD`).
    ///
    /// Sysfs files report a size of 4096 whatever they hold, so the size is not trusted: this
    /// reads 8 KiB at a time until a read comes back short. A short read is the end of the file
    /// here: a sysfs attribute hands its whole value (at most a page) to the first read, a binary
    /// attribute such as `config` returns all that is asked up to its size, and a regular file
    /// reads short only at its end. EINTR is retried.
    static func read(at folder: Int32, _ name: String) -> [UInt8]? {
        let fd = name.withCString { openat(folder, $0, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let chunk = 8192
        var bytes: [UInt8] = []
        while true {
            let before = bytes.count
            var got = 0
            bytes.append(contentsOf: repeatElement(0, count: chunk))
            while true {
                got = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + before, chunk) }
                if got < 0 && errno == EINTR { continue }
                break
            }
            if got < 0 { return nil }
            bytes.removeLast(chunk - got)
            if got < chunk { return bytes }
        }
    }

    /// The text of the symbolic link at `path`, or nil when it is not a link.
    static func readLink(_ path: String) -> String? { readLink(at: AT_FDCWD, path) }

    /// The text of the symbolic link `name` in the folder open as `folder`, or nil.
    static func readLink(at folder: Int32, _ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = name.withCString { readlinkat(folder, $0, &buffer, buffer.count - 1) }
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A folder held open while its files are read, so that each file is opened relative to it
    /// (`openat`) instead of walking the whole path again: a device folder of a deep tree is a dozen
    /// components down, and it has eight files to read.
    struct Folder: ~Copyable {
        /// The open folder.
        let fd: Int32

        /// Opens the folder at `path` (through links); nil when it is not a folder or cannot be opened.
        init?(_ path: String) {
            let fd = path.withCString { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            guard fd >= 0 else { return nil }
            self.fd = fd
        }

        deinit { close(fd) }

        /// The contents of the file `name` in the folder (see ``SysfsFiles/read(at:_:)``).
        func read(_ name: String) -> [UInt8]? { SysfsFiles.read(at: fd, name) }
        /// The text of the link `name` in the folder.
        func readLink(_ name: String) -> String? { SysfsFiles.readLink(at: fd, name) }
    }

    /// The names in the folder at `path`, without `.` and `..`; nil when it cannot be listed.
    static func list(_ path: String) -> [String]? {
        guard let dir = path.withCString({ opendir($0) }) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

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

    private static func workingDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

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

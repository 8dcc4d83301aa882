import DMACore

/// The kernel's own list of every dma-buf: debugfs `dma_buf/bufinfo`, printed by
/// `dma_buf_debug_show` in `drivers/dma-buf/dma-buf.c` (with `dma_resv_describe` in
/// `drivers/dma-buf/dma-resv.c` and `dma_fence_describe` in `drivers/dma-buf/dma-fence.c` for
/// the fence lines), as kernels 5.0 to 7.x print it.
///
/// The layout, for every version: a blank line, `Dma-buf Objects:`, a header line, then per
/// buffer one tab-separated row (`size flags mode count exp_name ino [name]`: size, count and ino
/// in decimal padded to 8 digits, flags and mode in hex), its fence lines, `\tAttached Devices:`,
/// one `\tDEVICE` line per attachment (`dev_name`: `0000:03:00.0` for PCI, `vgem` for a platform
/// device), `Total N devices attached` and a blank line; at the end `Total N objects, M bytes`.
///
/// What changed between versions, and is read here:
/// - the name column: absent before 5.3; 5.3 to 6.1 print an empty name (the row ends in a tab)
///   and have no `name` in the header; 6.2 and later print `<none>` and add `name` to the header.
/// - the fence lines: before 5.17 `\tExclusive fence: DRIVER TIMELINE [un]signalled` and
///   `\tShared fence: ...`; 5.17 `\tExclusive fence:DRIVER TIMELINE seq N [un]signalled`
///   (`dma_fence_describe`); 5.19 and later the usage instead of Exclusive/Shared (`kernel`,
///   `write`, `read`, `bookkeep`, later `user`); the newest kernels print the fence context
///   first (`CONTEXT TIMELINE DRIVER seq N [un]signalled`, names empty once signalled).
/// - `\tFences concurrently modified` (a few 5.x kernels) and other lines are kept in
///   ``unrecognizedLines``, never fatal.
public struct DMABufBufInfo: Sendable, Hashable, Codable {
    /// One fence of a buffer's reservation object.
    public struct Fence: Sendable, Hashable, Codable {
        /// `Exclusive`, `Shared` (before 5.19) or the usage (`kernel`, `write`, `read`,
        /// `bookkeep`, `user`).
        public var usage: String
        /// The fence's driver (`get_driver_name`), when printed (not once signalled on the newest kernels).
        public var driver: String?
        /// The fence's timeline (`get_timeline_name`), when printed.
        public var timeline: String?
        /// The fence context, printed first by the newest kernels.
        public var context: UInt64?
        /// The sequence number (5.17 and later).
        public var seqno: UInt64?
        /// Whether the fence has signalled.
        public var signalled: Bool
    }

    /// One buffer, as the kernel lists it.
    public struct Buffer: Sendable, Hashable, Codable {
        /// The buffer's size in bytes.
        public var size: Int
        /// The file's `f_flags` (`O_ACCMODE | O_NONBLOCK` of the export; `2` is `O_RDWR`).
        public var flags: UInt32
        /// The file's `f_mode`.
        public var mode: UInt32
        /// `file_count`: every reference to the buffer's file (each fd, each mapping, each kernel
        /// importer or exporter cache that holds it).
        public var count: Int
        /// The exporter (`exp_name`).
        public var exporter: String
        /// The inode: the same number `/proc/PID/fdinfo` (`ino:`) and `/proc/PID/maps` show.
        public var inode: UInt64
        /// The name set with `DMA_BUF_SET_NAME`; `nil` when none (`<none>` or empty) or not printed.
        public var name: String?
        /// The fences, in the order printed.
        public var fences: [Fence]
        /// The devices attached (`dev_name` of each attachment), in the order printed.
        public var attachedDevices: [String]
    }

    /// The buffers, in the kernel's list order (newest first).
    public var buffers: [Buffer]
    /// `Total N objects`, when the closing line was read.
    public var totalObjects: Int?
    /// `M bytes` of the closing line.
    public var totalBytes: Int?
    /// Whether rows carry a name column (5.3 and later).
    public var hasNameColumn: Bool
    /// Lines this parser did not recognise, in order (never fatal).
    public var unrecognizedLines: [String]

    /// The sum of the buffers' sizes (saturating).
    public var bytes: Int { buffers.reduce(0) { saturatingSum($0, $1.size) } }

    /// Parses the text of `bufinfo`.
    /// - Throws: `DMAError` `invalidArgument` (`EINVAL`) when the text has no `Dma-buf Objects:`
    ///   line: it is not the kernel's bufinfo.
    /// - Complexity: O(n) in the length of the text.
    public init(parsing text: String) throws(DMAError) {
        buffers = []
        hasNameColumn = false
        unrecognizedLines = []
        var sawHeading = false
        var inDevices = false
        var lineNumber = 0
        // Lines are cut on the UTF-8 bytes (a newline is never part of a longer character),
        // which is several times faster than splitting by Character on a large list.
        for bytes in text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            if bytes.isEmpty { continue }
            let rawLine = Substring(bytes)
            let line = rawLine.utf8.last == 0x0D ? rawLine.dropLast() : rawLine
            if line.isEmpty { continue }
            if !sawHeading {
                if line == "Dma-buf Objects:" { sawHeading = true }
                else { unrecognizedLines.append(String(line)) }
                continue
            }
            if line.hasPrefix("size") && line.contains("exp_name") {
                // The header: "name" as its last column from 6.2; rows carry one from 5.3 either way.
                continue
            }
            if line.hasPrefix("Total "), line.hasSuffix(" devices attached") {
                inDevices = false
                continue
            }
            if line.hasPrefix("Total "), line.hasSuffix(" bytes"), let totals = Self.totals(line) {
                totalObjects = totals.objects
                totalBytes = totals.bytes
                inDevices = false
                continue
            }
            if line.first == "\t" {
                let body = line.dropFirst()
                guard !buffers.isEmpty else { unrecognizedLines.append(String(line)); continue }
                if body == "Attached Devices:" {
                    inDevices = true
                } else if inDevices {
                    buffers[buffers.count - 1].attachedDevices.append(String(body))
                } else if let fence = Self.fence(body) {
                    buffers[buffers.count - 1].fences.append(fence)
                } else {
                    unrecognizedLines.append(String(line))
                }
                continue
            }
            if let row = Self.row(line) {
                buffers.append(row.buffer)
                if row.hasName { hasNameColumn = true }
                inDevices = false
                continue
            }
            unrecognizedLines.append(String(line))
        }
        guard sawHeading else {
            throw DMAError(.invalidArgument, .EINVAL, "not the kernel's dma_buf/bufinfo: no \"Dma-buf Objects:\" line in \(lineNumber) lines")
        }
    }

    /// `Total N objects, M bytes`.
    static func totals(_ line: Substring) -> (objects: Int, bytes: Int)? {
        let words = line.split(separator: " ")
        guard words.count == 5, words[2] == "objects,", let objects = Int(words[1]), let bytes = Int(words[3]) else { return nil }
        return (objects, bytes)
    }

    /// A buffer's row: `size\tflags\tmode\tcount\texp_name\tino[\tname]`. The name is everything
    /// after the sixth tab (a name may hold tabs: it is whatever user space set).
    static func row(_ line: Substring) -> (buffer: Buffer, hasName: Bool)? {
        let fields = line.split(separator: "\t", maxSplits: 6, omittingEmptySubsequences: false)
        guard fields.count >= 6, let size = Int(fields[0]), size >= 0, let flags = UInt32(fields[1], radix: 16),
              let mode = UInt32(fields[2], radix: 16), let count = Int(fields[3]), count >= 0, let inode = UInt64(fields[5])
        else { return nil }
        var name: String?
        if fields.count == 7, !fields[6].isEmpty, fields[6] != "<none>" { name = String(fields[6]) }
        let buffer = Buffer(size: size, flags: flags, mode: mode, count: count, exporter: String(fields[4]), inode: inode,
                            name: name, fences: [], attachedDevices: [])
        return (buffer, fields.count == 7)
    }

    /// A fence line without its leading tab: `USAGE fence:DESCRIPTION`.
    static func fence(_ body: Substring) -> Fence? {
        guard let marker = body.firstRange(of: " fence:") else { return nil }
        let usage = String(body[..<marker.lowerBound])
        guard !usage.isEmpty, !usage.contains(" ") else { return nil }
        var rest = body[marker.upperBound...]
        // Before 5.17 a space follows the colon; from 5.17 the description follows at once.
        if rest.first == " ", !rest.dropFirst().hasPrefix(" ") { rest = rest.dropFirst() }
        var words = rest.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard let state = words.popLast(), state == "signalled" || state == "unsignalled" else { return nil }
        var fence = Fence(usage: usage, driver: nil, timeline: nil, context: nil, seqno: nil, signalled: state == "signalled")
        if words.count >= 2, words[words.count - 2] == "seq", let seqno = UInt64(words[words.count - 1]) {
            fence.seqno = seqno
            words.removeLast(2)
        }
        if words.count == 3, let context = UInt64(words[0]) {
            // The newest kernels: CONTEXT TIMELINE DRIVER, names empty once signalled.
            fence.context = context
            fence.timeline = words[1].isEmpty ? nil : words[1]
            fence.driver = words[2].isEmpty ? nil : words[2]
        } else if words.count == 2 {
            fence.driver = words[0]
            fence.timeline = words[1]
        } else if !words.isEmpty {
            fence.driver = words.joined(separator: " ")
        }
        return fence
    }

    /// The file under a debugfs mount: `dma_buf/bufinfo`.
    public static let relativePath = "dma_buf/bufinfo"
    /// The most bufinfo is read for: 64 MiB (about 300,000 buffers with a device each).
    public static let readLimit = 64 << 20

    /// Why the kernel's list could not be read, and what to do about it.
    public struct Unavailable: Sendable, Hashable, Codable {
        /// The file that was tried.
        public var path: String
        /// The errno's name.
        public var errno: String
        /// What it means here.
        public var reason: String
        /// What to run to make it readable.
        public var remedy: String
    }

    /// Reads and parses `DEBUGFS/dma_buf/bufinfo`; `record`, when given, is handed the bytes read.
    /// - Throws: `DMAError` `debugfsUnavailable` with the errno when the file cannot be read (the
    ///   message says why and what to run); `invalidArgument` when it is not the kernel's bufinfo.
    public static func read(debugfsRoot: String = "/sys/kernel/debug", record: (([UInt8]) -> Void)? = nil) throws(DMAError) -> DMABufBufInfo {
        let path = "\(debugfsRoot)/\(relativePath)"
        switch SystemCalls.readFile(path, limit: readLimit) {
        case .success(let bytes):
            record?(bytes)
            return try DMABufBufInfo(parsing: String(decoding: bytes, as: UTF8.self))
        case .failure(let errno):
            let why = unavailable(debugfsRoot: debugfsRoot, errno: errno)
            throw DMAError(.debugfsUnavailable, errno, "cannot read \(ErrorText.printable(path)) (\(errno.name)): \(why.reason); \(why.remedy)")
        }
    }

    /// What an errno reading bufinfo means, and the command that helps.
    public static func unavailable(debugfsRoot: String, errno: Errno) -> Unavailable {
        let path = "\(debugfsRoot)/\(relativePath)"
        let mount = "mount -t debugfs none \(debugfsRoot) (as root)"
        switch errno {
        case .EACCES:
            return Unavailable(path: path, errno: errno.name, reason: "debugfs is readable by root only",
                               remedy: "run as root (sudo dmabuf ls --kernel)")
        case .EPERM:
            return Unavailable(path: path, errno: errno.name, reason: "the kernel refuses debugfs (lockdown, or debugfs=off on the command line)",
                               remedy: "boot without lockdown=confidentiality and with debugfs=on, or use a copy taken where it is readable (--debugfs DIR)")
        case .ENOENT, .ENOTDIR:
            let mounted: Bool
            if case .success(let names) = SystemCalls.listDirectory(debugfsRoot) { mounted = !names.isEmpty } else { mounted = false }
            if mounted {
                return Unavailable(path: path, errno: errno.name, reason: "debugfs is mounted but has no dma_buf/bufinfo (a kernel without CONFIG_DEBUG_FS for dma-buf, or not a debugfs copy)",
                                   remedy: "use a kernel with CONFIG_DEBUG_FS=y and CONFIG_DMA_SHARED_BUFFER=y")
            }
            return Unavailable(path: path, errno: errno.name, reason: "debugfs is not mounted at \(debugfsRoot)", remedy: mount)
        case .EFBIG:
            return Unavailable(path: path, errno: errno.name, reason: "it is longer than the \(readLimit >> 20) MiB read at most (hundreds of thousands of buffers: a leak?)",
                               remedy: "look at it directly: less \(path)")
        default:
            return Unavailable(path: path, errno: errno.name, reason: errno.summary, remedy: "check that \(debugfsRoot) is debugfs: \(mount)")
        }
    }
}

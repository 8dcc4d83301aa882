import DMACore
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Every dma-buf held by every process, read from procfs: `/proc/PID/fd` (a dma-buf's link reads
/// `/dmabuf:NAME`, or `anon_inode:dmabuf` before 5.x), `/proc/PID/fdinfo/FD` (`dma_buf_show_fdinfo`:
/// size, count, exporter, name, inode) and `/proc/PID/maps` (mappings whose file is `/dmabuf:...`,
/// which keep a buffer alive after its last fd is closed). Buffers are grouped by inode, which is
/// the same in every process and for every re-export of one dma-buf.
public struct DMABufCensus: Sendable, Hashable, Codable {
    /// A process that holds a buffer.
    public struct Holder: Sendable, Hashable, Codable {
        /// The process ID.
        public var pid: Int32
        /// The process's `comm`.
        public var comm: String
        /// The descriptors that refer to the buffer, ascending.
        public var fds: [Int32]
        /// How many mappings of the buffer the process has.
        public var mappings: Int
        /// The bytes those mappings cover.
        public var mappedBytes: Int
    }

    /// One dma-buf.
    public struct Buffer: Sendable, Hashable, Codable {
        /// The dma-buf's inode (`ino:` in fdinfo, the inode column of maps).
        public var inode: UInt64
        /// The size from fdinfo; `nil` when the buffer is only mapped, not held by an fd.
        public var size: Int?
        /// The exporter (`exp_name`); `nil` when only mapped.
        public var exporter: String?
        /// The name set by `DMA_BUF_SET_NAME`, from fdinfo or the maps path.
        public var name: String?
        /// The holders, by pid.
        public var holders: [Holder]
    }

    /// The buffers and bytes of one exporter.
    public struct ExporterTotal: Sendable, Hashable, Codable {
        /// The exporter's name (`?` for buffers seen only in maps).
        public var exporter: String
        /// How many buffers.
        public var buffers: Int
        /// Their bytes (sizes from fdinfo).
        public var bytes: Int
    }

    /// A process whose files could not be read (another user's, without the rights).
    public struct Unreadable: Sendable, Hashable, Codable {
        /// The process ID.
        public var pid: Int32
        /// What could not be read (`fd`, `maps`, `fdinfo/N`).
        public var what: String
        /// The errno's name (`EACCES`).
        public var errno: String
    }

    /// The buffers, by inode.
    public var buffers: [Buffer]
    /// Totals per exporter, by name.
    public var totals: [ExporterTotal]
    /// How many processes were scanned.
    public var processesScanned: Int
    /// Processes that could not be read, and why; they do not stop the census.
    public var unreadable: [Unreadable]
    /// Processes that exited while the census ran (their folder vanished: ENOENT).
    public var vanished: Int

    /// Whether a `/proc/PID/fd` link target is a dma-buf's (`dmabuffs_dname` in
    /// `drivers/dma-buf/dma-buf.c`: `/dmabuf:NAME`; older kernels: `anon_inode:dmabuf`).
    public static func isDMABufPath(_ target: String) -> Bool {
        target.hasPrefix("/dmabuf:") || target == "anon_inode:dmabuf"
    }

    /// ``isDMABufPath(_:)`` on a link's bytes.
    static func isDMABufPath(_ target: UnsafeBufferPointer<UInt8>) -> Bool {
        func starts(_ prefix: StaticString, whole: Bool) -> Bool {
            let count = prefix.utf8CodeUnitCount
            guard whole ? target.count == count : target.count >= count else { return false }
            return memcmp(target.baseAddress!, prefix.utf8Start, count) == 0
        }
        return starts("/dmabuf:", whole: false) || starts("anon_inode:dmabuf", whole: true)
    }

    /// All buffers' bytes together (the totals' sum, saturating at `Int.max` instead of trapping
    /// on sizes from a `/proc` copy near 2^63).
    public var totalBytes: Int { totals.reduce(0) { saturatingSum($0, $1.bytes) } }

    /// Takes the census after checking that there is something to take it from: `procRoot` must
    /// be a folder that can be listed, and `pid`, when given, a process in it.
    /// - Throws: `DMAError` `notFound`: `ENOENT` naming a `procRoot` that is missing or not a
    ///   folder (it is not procfs), `ESRCH` naming a `pid` that is not running (a process that
    ///   never existed is not one that "exited during the census").
    public static func takeChecked(procRoot: String = "/proc", pid: Int32? = nil, record: ((Read) -> Void)? = nil) throws(DMAError) -> DMABufCensus {
        try check(procRoot: procRoot, pid: pid)
        return take(procRoot: procRoot, pid: pid, record: record)
    }

    /// Checks what ``takeChecked(procRoot:pid:record:)`` checks, without taking the census.
    /// - Throws: as ``takeChecked(procRoot:pid:record:)``.
    public static func check(procRoot: String = "/proc", pid: Int32? = nil) throws(DMAError) {
        if case .failure(let errno) = SystemCalls.listDirectory(procRoot) {
            throw DMAError(.notFound, errno, "cannot list \(ErrorText.printable(procRoot)) (\(errno.name)): it is not a procfs folder")
        }
        if let pid, case .failure(let errno) = SystemCalls.listDirectory("\(procRoot)/\(pid)"), errno == .ENOENT || errno == .ENOTDIR {
            throw DMAError(.notFound, .ESRCH, "no process \(pid) in \(ErrorText.printable(procRoot)) (--pid \(pid))")
        }
    }

    /// The most an fdinfo file is read for: 64 KiB (a dma-buf's is a few hundred bytes; one that
    /// never ends is refused with `EFBIG` and listed as unreadable).
    static let fdinfoLimit = 64 << 10
    /// The most a `maps` file is read for: 64 MiB (`vm.max_map_count`, 65,530 lines by default).
    static let mapsLimit = 64 << 20

    /// Takes the census.
    /// - Note: About the arguments:
    ///   - procRoot: where procfs is mounted; tests pass a tree of their own.
    ///   - pid: only this process, when given.
    /// - Complexity: one readlink per open fd of every process, one fdinfo read per dma-buf fd, one
    ///   maps read per process.
    public static func take(procRoot: String = "/proc", pid: Int32? = nil) -> DMABufCensus {
        take(procRoot: procRoot, pid: pid, record: nil)
    }

    /// What the census read, handed to a recorder as it is read (`dmabuf ls --capture`): paths
    /// are relative to the proc root. Only what describes a dma-buf is handed over: the `fd`
    /// links and `fdinfo` files of dma-buf fds, the `comm` of processes holding one, and the
    /// dma-buf lines of `maps`.
    public enum Read: Sendable, Hashable {
        /// A file and the bytes kept of it.
        case file(path: String, bytes: [UInt8])
        /// A symbolic link and its target.
        case link(path: String, target: String)
        /// A folder that was listed (a holder's `fd`, kept even when empty: a process that only
        /// maps a buffer must still be a process in the copy).
        case directory(path: String)
    }

    /// Takes the census, handing what it reads to `record` (see ``Read``).
    public static func take(procRoot: String = "/proc", pid: Int32? = nil, record: ((Read) -> Void)?) -> DMABufCensus {
        var census = DMABufCensus(buffers: [], totals: [], processesScanned: 0, unreadable: [], vanished: 0)
        let pids: [Int32]
        if let pid {
            pids = [pid]
        } else {
            let names = (try? SystemCalls.listDirectory(procRoot).get()) ?? []
            pids = names.compactMap { name in name.allSatisfy(\.isNumber) ? Int32(name) : nil }.sorted()
        }
        var byInode: [UInt64: Buffer] = [:]

        func holderIndex(_ buffer: inout Buffer, _ pid: Int32, _ comm: String) -> Int {
            if let index = buffer.holders.firstIndex(where: { $0.pid == pid }) { return index }
            buffer.holders.append(Holder(pid: pid, comm: comm, fds: [], mappings: 0, mappedBytes: 0))
            return buffer.holders.count - 1
        }

        for pid in pids {
            // The process's folder is opened once and every file is read relative to it (`openat`,
            // `readlinkat`): a name such as `fdinfo/12` is short enough to need no allocation, and
            // the kernel walks two components instead of the whole path, for each of the four calls
            // an fd costs.
            var folder: Int32 = -1
            let listing = SystemCalls.openAt(AT_FDCWD, "\(procRoot)/\(pid)", O_RDONLY | O_DIRECTORY).flatMap { opened in
                folder = opened
                return SystemCalls.listDirectory(at: opened, "fd")
            }
            defer { if folder >= 0 { _ = SystemCalls.close(folder) } }
            let fds: [String]
            switch listing {
            case .success(let names): fds = names
            case .failure(let errno) where errno == .ENOENT:
                census.vanished += 1
                continue
            case .failure(let errno):
                census.processesScanned += 1
                census.unreadable.append(Unreadable(pid: pid, what: "fd", errno: errno.name))
                continue
            }
            census.processesScanned += 1
            let commBytes = try? SystemCalls.readFile(at: folder, "comm", shortReadEnds: true).get()
            let comm = commBytes.map { String(decoding: $0, as: UTF8.self).trimmingSuffix("\n") } ?? "?"
            var recordedComm = false
            func recordHolder() {
                guard let record, !recordedComm else { return }
                recordedComm = true
                record(.directory(path: "\(pid)/fd"))
                if let commBytes { record(.file(path: "\(pid)/comm", bytes: commBytes)) }
            }
            for fdName in fds {
                // The link is checked on its bytes in a stack buffer: a string is made only for a
                // dma-buf's link, and only when the census is recorded.
                guard let fd = Int32(fdName) else { continue }
                var target: String?
                let linked = SystemCalls.withLinkTarget(at: folder, "fd/" + fdName) { bytes in
                    guard isDMABufPath(bytes) else { return }
                    target = record == nil ? "" : String(decoding: bytes, as: UTF8.self)
                }
                guard case .success = linked, let target else { continue }
                var recorded: [UInt8] = []
                var parsed: FDInfo?
                let read = SystemCalls.withFileContents(at: folder, "fdinfo/" + fdName, limit: fdinfoLimit, shortReadEnds: true) { bytes in
                    if record != nil { recorded = Array(bytes) }
                    parsed = FDInfo(buffer: bytes)
                }
                let info: FDInfo
                switch read {
                case .success: info = parsed!  // set by the body on every success
                case .failure(let errno) where errno == .ENOENT: continue  // closed during the census
                case .failure(let errno):
                    // Refused (not a regular file, longer than an fdinfo can be) or unreadable: said, not skipped.
                    census.unreadable.append(Unreadable(pid: pid, what: "fdinfo/\(fdName)", errno: errno.name))
                    continue
                }
                guard info.isDMABuf, let inode = info.inode else { continue }
                if let record {
                    recordHolder()
                    record(.link(path: "\(pid)/fd/\(fdName)", target: target))
                    record(.file(path: "\(pid)/fdinfo/\(fdName)", bytes: recorded))
                }
                // Mutated in place (a copy taken out and stored back would copy its holders each time).
                update(&byInode[inode, default: Buffer(inode: inode, size: nil, exporter: nil, name: nil, holders: [])])
                func update(_ buffer: inout Buffer) {
                    buffer.size = info.size ?? buffer.size
                    buffer.exporter = info.exporter ?? buffer.exporter
                    buffer.name = info.name ?? buffer.name
                    let index = holderIndex(&buffer, pid, comm)
                    buffer.holders[index].fds.append(fd)
                }
            }
            // Only lines that name a dma-buf are parsed, found on the bytes where they were read:
            // a busy process's maps is mostly libraries and anonymous memory.
            var mappings: [MapsLine] = []
            var kept: [UInt8] = []
            let mapsRead = SystemCalls.withFileContents(at: folder, "maps", limit: mapsLimit) { bytes in
                var lineStart = 0
                while lineStart < bytes.count {
                    var lineEnd = lineStart
                    while lineEnd < bytes.count && bytes[lineEnd] != 0x0A { lineEnd += 1 }
                    defer { lineStart = lineEnd + 1 }
                    let rawLine = UnsafeBufferPointer(rebasing: bytes[lineStart..<lineEnd])
                    guard containsDMABufMarker(rawLine) else { continue }
                    let line = Substring(String(decoding: rawLine, as: UTF8.self))
                    guard let mapping = MapsLine(line), isDMABufPath(mapping.path) else { continue }
                    if record != nil { kept += Array(line.utf8) + [0x0A] }
                    mappings.append(mapping)
                }
            }
            switch mapsRead {
            case .success:
                for mapping in mappings {
                    update(&byInode[mapping.inode, default: Buffer(inode: mapping.inode, size: nil, exporter: nil, name: nil, holders: [])])
                    func update(_ buffer: inout Buffer) {
                        if buffer.name == nil, mapping.path.hasPrefix("/dmabuf:"), mapping.path.count > "/dmabuf:".count {
                            buffer.name = String(mapping.path.dropFirst("/dmabuf:".count))
                        }
                        let index = holderIndex(&buffer, pid, comm)
                        buffer.holders[index].mappings += 1
                        buffer.holders[index].mappedBytes = saturatingSum(buffer.holders[index].mappedBytes, mapping.length)
                    }
                }
                if let record {
                    if !kept.isEmpty { recordHolder() }
                    if recordedComm { record(.file(path: "\(pid)/maps", bytes: kept)) }
                }
            case .failure(let errno) where errno == .ENOENT:
                break
            case .failure(let errno):
                census.unreadable.append(Unreadable(pid: pid, what: "maps", errno: errno.name))
            }
        }

        // Sorted in place once the table is let go, so that no buffer's holders are copied.
        var buffers = Array(byInode.values)
        byInode = [:]
        buffers.sort { $0.inode < $1.inode }
        for index in buffers.indices {
            buffers[index].holders.sort { $0.pid < $1.pid }
            for holder in buffers[index].holders.indices { buffers[index].holders[holder].fds.sort() }
        }
        census.buffers = buffers
        var totals: [String: ExporterTotal] = [:]
        for buffer in census.buffers {
            let exporter = buffer.exporter ?? "?"
            var total = totals[exporter] ?? ExporterTotal(exporter: exporter, buffers: 0, bytes: 0)
            total.buffers += 1
            total.bytes = saturatingSum(total.bytes, max(0, buffer.size ?? 0))
            totals[exporter] = total
        }
        census.totals = totals.values.sorted { $0.exporter < $1.exporter }
        return census
    }
}

/// Whether a maps line mentions `dmabuf` at all (`/dmabuf:` or `anon_inode:dmabuf`), on bytes.
func containsDMABufMarker(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
    let marker: StaticString = "dmabuf"
    let length = marker.utf8CodeUnitCount
    guard line.count >= length, let base = line.baseAddress else { return false }
    let first = marker.utf8Start[0]
    var index = 0
    while index <= line.count - length {
        if base[index] == first, memcmp(base + index, marker.utf8Start, length) == 0 { return true }
        index += 1
    }
    return false
}

/// `a + b`, or `Int.max` when that passes it: sizes and lengths read from a `/proc` copy can be
/// anything, and a sum of them must not trap (no real machine's total comes near 2^63).
func saturatingSum(_ a: Int, _ b: Int) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? (b > 0 ? Int.max : Int.min) : sum
}

/// One line of `/proc/PID/maps` (`fs/proc/task_mmu.c`, `show_map_vma`):
/// `start-end perms offset major:minor inode path`.
struct MapsLine {
    var length: Int
    var inode: UInt64
    var path: String

    init?(_ line: Substring) {
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count >= 6 else { return nil }
        let range = fields[0].split(separator: "-")
        // A length past Int.max is no mapping (user address space ends at 2^57): not a maps line.
        guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16),
              end >= start, end - start <= UInt64(Int.max), let inode = UInt64(fields[4])
        else { return nil }
        length = Int(end - start)
        self.inode = inode
        path = String(fields[5].drop(while: { $0 == " " }))
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}

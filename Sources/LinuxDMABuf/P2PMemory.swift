import CLibDRM
import DMACore
import Glibc

/// A PCI device's published peer-to-peer memory: the `p2pmem/` attribute group that
/// `drivers/pci/p2pdma.c` (since 4.20) adds to a device whose driver registered BAR memory with
/// `pci_p2pdma_add_resource` (an NVMe controller memory buffer is the common one, and only when
/// `CONFIG_PCI_P2PDMA` is set). `size` and `available` are bytes in the device's genalloc pool;
/// `published` says whether the driver offered it to others (`pci_p2pmem_publish`); `allocate`
/// (since 6.2) is the file user space maps to get pages backed by that memory.
public struct PublishedP2PMemory: Hashable, Sendable, Codable {
    /// The device, as its sysfs name (`0000:03:00.0`).
    public let device: String
    /// The pool's size in bytes (`p2pmem/size`).
    public let size: UInt64
    /// Bytes not yet allocated (`p2pmem/available`): a driver keeps some for itself (NVMe queues).
    public let available: UInt64
    /// Whether the driver published it (`p2pmem/published`).
    public let published: Bool
    /// Whether `p2pmem/allocate` exists, so user space can map it (Linux 6.2 on).
    public let mappable: Bool

    /// Creates it.
    public init(device: String, size: UInt64, available: UInt64, published: Bool, mappable: Bool) {
        self.device = device
        self.size = size
        self.available = available
        self.published = published
        self.mappable = mappable
    }

    /// Reads one device's `p2pmem/` folder under a sysfs root (`/sys`, or a copy).
    /// - Returns: `nil` when the device has no `p2pmem/` folder (no driver registered any).
    public static func read(device: String, sysfs: String = "/sys") -> PublishedP2PMemory? {
        let folder = "\(sysfs)/bus/pci/devices/\(device)/p2pmem"
        guard case .success(let names) = SystemCalls.listDirectory(folder) else { return nil }
        func number(_ name: String) -> UInt64 {
            guard case .success(let bytes) = SystemCalls.readFile("\(folder)/\(name)") else { return 0 }
            return UInt64(String(decoding: bytes, as: UTF8.self).trimmingWhitespace()) ?? 0
        }
        return PublishedP2PMemory(
            device: device, size: number("size"), available: number("available"), published: number("published") == 1,
            mappable: names.contains("allocate"))
    }

    /// Every device of a sysfs root that has a `p2pmem/` folder, in address order.
    public static func all(sysfs: String = "/sys") -> [PublishedP2PMemory] {
        guard case .success(let names) = SystemCalls.listDirectory("\(sysfs)/bus/pci/devices") else { return [] }
        return names.sorted().compactMap { read(device: $0, sysfs: sysfs) }
    }
}

/// The block devices whose controller is a given PCI function: each `/sys/block/NAME` whose
/// `device` link resolves to a folder inside that function's (an NVMe namespace's `device` is its
/// controller, `…/0000:03:00.0/nvme/nvme0`; a virtio disk's is `…/0000:00:04.0/virtio1`).
public enum PCIBlockDevices {
    /// The names (`nvme0n1`) in name order; empty when the function drives no block device.
    public static func of(device: String, sysfs: String = "/sys") -> [String] {
        guard case .success(let names) = SystemCalls.listDirectory("\(sysfs)/block") else { return [] }
        return names.sorted().filter { name in
            guard let resolved = realPath("\(sysfs)/block/\(name)/device") else { return false }
            // The nearest PCI function above the block device drives it; the bridges above that
            // function are in the path too, and drive nothing.
            return resolved.split(separator: "/").last(where: isPCIFunctionName) == Substring(device)
        }
    }

    /// `DDDD:BB:DD.F` in hex, as sysfs names a PCI function.
    static func isPCIFunctionName(_ name: Substring) -> Bool {
        let bytes = Array(name.utf8)
        guard bytes.count == 12, bytes[4] == UInt8(ascii: ":"), bytes[7] == UInt8(ascii: ":"), bytes[10] == UInt8(ascii: ".") else { return false }
        return [0, 1, 2, 3, 5, 6, 8, 9, 11].allSatisfy { index in
            let byte = bytes[index]
            return (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66) || (byte >= 0x41 && byte <= 0x46)
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = Glibc.realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// The kernel log, read without blocking: `/dev/kmsg` opened `O_NONBLOCK` (at its end, or at its
/// oldest record), then read record by record until it has nothing more (`EAGAIN`)
/// (`prio,seq,usec,flags;text`, `Documentation/ABI/testing/dev-kmsg`). The P2PDMA core prints why
/// a pair cannot be used (`pci_p2pdma_distance_many` and `calc_map_type_and_dist` in
/// `drivers/pci/p2pdma.c`) once per pair; the doctor reads the boot's memory-encryption lines.
/// Opening needs what `syslog(2)`'s `SYSLOG_ACTION_READ_ALL` needs (`devkmsg_open`,
/// `kernel/printk/printk.c`): with `kernel.dmesg_restrict` = 1, root or `CAP_SYSLOG`.
public struct KernelLogCursor: ~Copyable {
    private let fd: Int32
    /// The most records one ``newMessages()`` reads (a log that grows as fast as it is read ends there).
    static let maxRecords = 1 << 20

    /// Opens `/dev/kmsg` at its end, or at its oldest record with `fromStart`.
    /// - Throws: the open's errno: `EPERM`/`EACCES` when the log is restricted
    ///   (`kernel.dmesg_restrict`) and the caller lacks `CAP_SYSLOG`, `ENOENT` when absent.
    public init(path: String = "/dev/kmsg", fromStart: Bool = false) throws(DMAError) {
        switch SystemCalls.open(path, O_RDONLY | O_NONBLOCK) {
        case .failure(let errno):
            throw DMAError(.notFound, errno, "\(path): cannot open the kernel log (\(errno.name)); root, or CAP_SYSLOG, reads it")
        case .success(let fd):
            self.fd = fd
            if !fromStart { _ = SystemCalls.lseek(fd, 0, SEEK_END) }
        }
    }

    /// The messages logged since the cursor was made or last read, without their headers.
    public mutating func newMessages() -> [String] {
        (try? readMessages().get()) ?? []
    }

    /// The messages logged since the cursor was made or last read, or the errno of a read that
    /// failed. A record overwritten while reading (`EPIPE`) is skipped: the next read goes on from
    /// the oldest one left.
    public mutating func readMessages() -> Result<[String], Errno> {
        // A record is at most 8 KiB of text with its prefix (CONSOLE_EXT_LOG_MAX); a smaller buffer is EINVAL.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 << 10, alignment: 1)
        defer { buffer.deallocate() }
        var messages: [String] = []
        for _ in 0..<Self.maxRecords {
            switch SystemCalls.read(fd, buffer) {
            case .success(0): return .success(messages)
            case .success(let count):
                if let message = Self.message(UnsafeRawBufferPointer(rebasing: buffer[..<count])) { messages.append(message) }
            case .failure(let errno) where errno == .EAGAIN: return .success(messages)
            case .failure(let errno) where errno.rawValue == EPIPE: continue
            case .failure(let errno): return .failure(errno)
            }
        }
        return .success(messages)
    }

    /// The text of one record: a prefix `LEVEL,SEQ,USEC,FLAGS[,…];`, the message up to the first
    /// newline, then continuation lines (` KEY=value`) that are dropped. `nil` for a record
    /// without the `;`.
    /// - Parameter record: the bytes one read returned.
    public static func message(_ record: UnsafeRawBufferPointer) -> String? {
        let bytes = record.prefix { $0 != UInt8(ascii: "\n") }
        guard let semicolon = bytes.firstIndex(of: UInt8(ascii: ";")) else { return nil }
        return String(decoding: bytes[(semicolon + 1)...], as: UTF8.self)
    }

    deinit { _ = SystemCalls.close(fd) }
}

/// The kernel's own P2P verdict, read as it is computed: a kprobe on `pci_p2pdma_map_type` (entry:
/// the provider's and client's device names; return: the `enum pci_p2pdma_map_type` value) in
/// tracefs, under the group `dmabufkit_p2p`. Made once, removed when dropped. Needs root,
/// `CONFIG_KPROBE_EVENTS` and tracefs mounted (`/sys/kernel/tracing`).
///
/// The argument layout is that of Linux 7.x (`drivers/pci/p2pdma.c`: the first argument is a
/// `struct p2pdma_provider *` whose first field is the owning `struct device *`; the second the
/// client's `struct device *`; a device's name is the first field of its first field, the
/// kobject). Before 6.19 the first argument was the provider's `struct pci_dev *`, whose layout
/// differs: the trace is then refused rather than read wrongly.
public struct P2PMapTypeTrace: ~Copyable {
    /// The kernel's value, as `include/linux/pci-p2pdma.h` of 7.x numbers it.
    public static func mapType(kernelValue: Int) -> P2PMapType? {
        switch kernelValue {
        case 2: .notSupported
        case 3: .busAddress
        case 4: .throughHostBridge
        default: nil
        }
    }

    private let tracefs: String
    private static let group = "dmabufkit_p2p"

    /// Adds and enables the two probes.
    /// - Throws: `ENOENT` when tracefs or kprobe events are missing, `EACCES`/`EPERM` when not
    ///   root, `EINVAL` when the kernel refuses the probe (the function is not probeable).
    public init(tracefs: String = "/sys/kernel/tracing") throws(DMAError) {
        self.tracefs = tracefs
        let events = "\(tracefs)/kprobe_events"
        guard access(events, F_OK) == 0 else {
            throw DMAError(.notFound, .ENOENT, "\(events) is missing: mount tracefs (mount -t tracefs nodev /sys/kernel/tracing) on a kernel with CONFIG_KPROBE_EVENTS")
        }
        Self.remove(tracefs)
        let definitions = [
            "p:\(Self.group)/entry pci_p2pdma_map_type provider=+0(+0(+0(%di))):string client=+0(+0(%si)):string",
            "r:\(Self.group)/ret pci_p2pdma_map_type ret=$retval:s32",
        ]
        for line in definitions {
            if let errno = Self.append(events, line) {
                Self.remove(tracefs)
                throw DMAError(.notSupported, errno, "the kernel refused the kprobe on pci_p2pdma_map_type (\(errno.name)): root and CONFIG_KPROBE_EVENTS are needed")
            }
        }
        if let errno = Self.write("\(tracefs)/events/\(Self.group)/enable", "1") {
            Self.remove(tracefs)
            throw DMAError(.notSupported, errno, "cannot enable the kprobe events (\(errno.name))")
        }
        _ = Self.write("\(tracefs)/tracing_on", "1")
        clear()
    }

    /// Empties the trace buffer.
    public func clear() { _ = Self.write("\(tracefs)/trace", "") }

    /// The verdicts recorded since the last clear: each entry event paired with the return event
    /// that follows it, as (provider, client, kernel value).
    public func verdicts() -> [(provider: String, client: String, value: Int)] {
        guard case .success(let bytes) = SystemCalls.readFile("\(tracefs)/trace") else { return [] }
        var result: [(String, String, Int)] = []
        var pending: (String, String)?
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            if line.contains("\(Self.group)/entry") || line.contains(" entry: ") {
                if let provider = Self.field(line, "provider"), let client = Self.field(line, "client") { pending = (provider, client) }
            } else if let value = Self.field(line, "ret").flatMap({ Int($0) }), let (provider, client) = pending {
                result.append((provider, client, value))
                pending = nil
            }
        }
        return result
    }

    /// `name="value"` or `name=value` in a trace line.
    static func field(_ line: Substring, _ name: String) -> String? {
        let key = Array(" \(name)=".utf8)
        let bytes = Array(line.utf8)
        guard bytes.count >= key.count, let start = (0...(bytes.count - key.count)).first(where: { bytes[$0..<($0 + key.count)].elementsEqual(key) }) else {
            return nil
        }
        var rest = Substring(String(decoding: bytes[(start + key.count)...], as: UTF8.self))
        if rest.hasPrefix("\"") {
            rest = rest.dropFirst()
            return String(rest.prefix(while: { $0 != "\"" }))
        }
        return String(rest.prefix(while: { $0 != " " }))
    }

    /// Replaces a tracefs file's contents (`O_TRUNC`).
    private static func write(_ path: String, _ text: String) -> Errno? {
        if case .failure(let errno) = SystemCalls.writeText(path, text, flags: O_TRUNC) { return errno }
        return nil
    }

    /// Adds a line (`O_APPEND`, as `kprobe_events` wants new probes: a truncating write removes
    /// every probe).
    private static func append(_ path: String, _ text: String) -> Errno? {
        if case .failure(let errno) = SystemCalls.writeText(path, text + "\n", flags: O_APPEND) { return errno }
        return nil
    }

    private static func remove(_ tracefs: String) {
        _ = write("\(tracefs)/events/\(group)/enable", "0")
        _ = append("\(tracefs)/kprobe_events", "-:\(group)/entry")
        _ = append("\(tracefs)/kprobe_events", "-:\(group)/ret")
    }

    deinit { Self.remove(tracefs) }
}

/// What the kernel did with one peer-to-peer transfer: `dmabuf p2p test`'s measurement.
public struct P2PTransferOutcome: Hashable, Sendable, Codable {
    /// How it ended.
    public enum Result: String, Hashable, Sendable, Codable {
        /// The read completed and the provider's memory holds the block's bytes.
        case transferred
        /// The read completed, but the provider's memory does not hold the block's bytes (a
        /// translating vIOMMU that drops a bus-address write, as QEMU's does, or a broken path).
        case bytesWrong = "bytes-wrong"
        /// The block layer refused the pair before any command reached the device (`EINVAL`,
        /// `BLK_STS_INVAL` from `blk_rq_dma_map_iter_start` when the P2P state is not supported).
        case refused
        /// The read failed otherwise (an I/O error, a short read).
        case failed
    }

    /// The provider (whose memory was written).
    public let provider: String
    /// The client (whose block device was read).
    public let client: String
    /// The block device read (`nvme0n1`).
    public let blockDevice: String
    /// Bytes asked for.
    public let length: Int
    /// The outcome.
    public let result: Result
    /// The errno of a refused or failed read.
    public let errno: String?
    /// The kernel's `pci_p2pdma_map_type` for the pair when a ``P2PMapTypeTrace`` was running.
    public let kernelMapType: String?
    /// The kernel's log lines about the pair (client or provider named) logged during the read.
    public let kernelLog: [String]

    /// Creates an outcome (``P2PTransferTest`` makes them; tests and tools may too).
    public init(
        provider: String, client: String, blockDevice: String, length: Int, result: Result, errno: String?, kernelMapType: String?,
        kernelLog: [String]
    ) {
        self.provider = provider
        self.client = client
        self.blockDevice = blockDevice
        self.length = length
        self.result = result
        self.errno = errno
        self.kernelMapType = kernelMapType
        self.kernelLog = kernelLog
    }
}

/// `dmabuf p2p test`: makes the kernel judge one provider/client pair for real. The provider's
/// published p2pmem is mapped (`p2pmem/allocate`, which the kernel backs with ZONE_DEVICE pages
/// of the BAR) and filled with a marker; then the client reads the first blocks of its block
/// device with `O_DIRECT` into that mapping, which makes the block layer ask
/// `pci_p2pdma_map_type` (through `pci_p2pdma_state`, `include/linux/pci-p2pdma.h`, 6.x/7.x)
/// whether the client can reach the provider. The same blocks are read into host memory first,
/// so "bytes right" compares with what the device really holds. Nothing is ever written to a
/// block device.
public enum P2PTransferTest {
    /// Runs one transfer.
    /// - Parameters:
    ///   - provider: the device whose published p2pmem is written (`0000:03:00.0`).
    ///   - client: the device whose block device is read.
    ///   - length: bytes to read, a multiple of the logical block size (8 KiB by default).
    ///   - sysfs: the sysfs root (`/sys`).
    ///   - devices: the device-node folder (`/dev`).
    ///   - trace: a running kprobe trace, to read the kernel's own map type; `nil` for none.
    ///   - log: a kernel-log cursor, to collect the pair's log lines; `nil` for none.
    /// - Throws: `ENOENT` when the provider has no mappable p2pmem or the client no block device;
    ///   the errno of opening or mapping them (`EACCES` when not root).
    public static func run(
        provider: String, client: String, length: Int = 8192, sysfs: String = "/sys", devices: String = "/dev",
        trace: borrowing P2PMapTypeTrace?, log: inout KernelLogCursor?
    ) throws(DMAError) -> P2PTransferOutcome {
        guard let memory = PublishedP2PMemory.read(device: provider, sysfs: sysfs), memory.mappable else {
            throw DMAError(.notFound, .ENOENT, "\(provider) publishes no peer-to-peer memory (\(sysfs)/bus/pci/devices/\(provider)/p2pmem/allocate is missing)")
        }
        guard memory.available >= UInt64(length) else {
            throw DMAError(.resourceExhausted, .ENOMEM, "\(provider)'s p2pmem has \(memory.available) bytes free; \(length) are needed")
        }
        guard let block = PCIBlockDevices.of(device: client, sysfs: sysfs).first else {
            throw DMAError(.notFound, .ENOENT, "\(client) drives no block device (nothing under \(sysfs)/block has it as its device), so it cannot be made to read")
        }
        let allocate = "\(sysfs)/bus/pci/devices/\(provider)/p2pmem/allocate"
        let memoryFD = try opened(allocate, O_RDWR, what: "the provider's p2pmem")
        defer { _ = SystemCalls.close(memoryFD) }
        let mapping: UnsafeMutableRawPointer
        switch SystemCalls.mmap(length, PROT_READ | PROT_WRITE, MAP_SHARED, memoryFD, 0) {
        case .failure(let errno):
            throw DMAError(.resourceExhausted, errno, "mmap of \(allocate) failed (\(errno.name))")
        case .success(let address): mapping = address
        }
        defer { _ = SystemCalls.munmap(mapping, length) }
        let blockPath = "\(devices)/\(block)"
        let blockFD = try opened(blockPath, O_RDONLY | dmabufkit_o_direct(), what: "the client's block device")
        defer { _ = SystemCalls.close(blockFD) }

        // What the device holds, read into host memory (page-aligned, as O_DIRECT wants).
        var reference: UnsafeMutableRawPointer?
        guard posix_memalign(&reference, 4096, length) == 0, let reference else {
            throw DMAError(.resourceExhausted, .ENOMEM, "no \(length) bytes of host memory")
        }
        defer { free(reference) }
        switch SystemCalls.pread(blockFD, UnsafeMutableRawBufferPointer(start: reference, count: length), 0) {
        case .failure(let errno):
            throw DMAError(.notSupported, errno, "\(blockPath): the reference read into host memory failed (\(errno.name))")
        case .success(let count) where count != length:
            throw DMAError(.ioError, .EIO, "\(blockPath) holds fewer than \(length) bytes")
        case .success: break
        }
        // A marker the device's data cannot hold everywhere, so a transfer that did nothing shows.
        let marker: UInt8 = reference.load(as: UInt8.self) == 0xA5 ? 0x5A : 0xA5
        memset(mapping, Int32(marker), length)
        trace?.clear()
        _ = log?.newMessages()
        let read = SystemCalls.pread(blockFD, UnsafeMutableRawBufferPointer(start: mapping, count: length), 0)
        let lines = (log?.newMessages() ?? []).filter { $0.contains(client) || $0.contains(provider) }
        let kernelValue = trace?.verdicts().last { $0.provider == provider && $0.client == client }?.value
        let kernelMapType = kernelValue.map { P2PMapTypeTrace.mapType(kernelValue: $0)?.rawValue ?? "kernel value \($0)" }
        let result: P2PTransferOutcome.Result
        var errno: Errno?
        switch read {
        case .failure(let failure):
            errno = failure
            result = failure == .EINVAL || failure == .EREMOTEIO ? .refused : .failed
        case .success(let count) where count != length:
            errno = .EIO
            result = .failed
        case .success:
            result = memcmp(mapping, reference, length) == 0 ? .transferred : .bytesWrong
        }
        return P2PTransferOutcome(
            provider: provider, client: client, blockDevice: block, length: length, result: result, errno: errno?.name,
            kernelMapType: kernelMapType, kernelLog: lines)
    }

    private static func opened(_ path: String, _ flags: Int32, what: String) throws(DMAError) -> Int32 {
        switch SystemCalls.open(path, flags) {
        case .success(let fd): return fd
        case .failure(let errno):
            let hint = errno == .EACCES || errno == .EPERM ? ": run as root" : ""
            throw DMAError(.notFound, errno, "cannot open \(what), \(path) (\(errno.name))\(hint)")
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars = scalars.dropFirst() }
        while let last = scalars.last, last.isWhitespace { scalars = scalars.dropLast() }
        return String(scalars)
    }
}

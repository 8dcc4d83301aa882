import DMACore

/// What the kernel knows about dma-bufs (debugfs `dma_buf/bufinfo`, ``DMABufBufInfo``) joined with
/// what processes hold (``DMABufCensus`` from `/proc`), by inode: every buffer with its exporter,
/// size, name, fences, attached devices and holders; buffers no process holds are held by the
/// kernel alone (an importer such as a GEM import or an RDMA MR, or an exporter's cache).
///
/// Memory per process is counted as Android's `dmabuf_dump` (`libdmabufinfo`) counts it: a
/// process's Rss is the size of every distinct buffer it holds by fd or mapping; its Pss shares
/// each such buffer equally among the N processes holding it (size / N, rounded down per buffer).
/// Fd references and mapping references are counted apart.
public struct DMABufKernelView: Sendable, Hashable, Codable {
    /// One buffer of the joined view.
    public struct Buffer: Sendable, Hashable, Codable {
        /// The inode (fdinfo `ino:`, the maps inode, bufinfo's `ino`).
        public var inode: UInt64
        /// The size: the kernel's, else fdinfo's; `nil` for a buffer only seen mapped.
        public var size: Int?
        /// The exporter (`exp_name`).
        public var exporter: String?
        /// The name set with `DMA_BUF_SET_NAME`.
        public var name: String?
        /// The kernel's reference count on the buffer's file (`nil` when not in bufinfo).
        public var references: Int?
        /// References that are neither a process's fd nor its mapping (kernel importers, the
        /// exporter's own cache); `nil` when not in bufinfo or when some process was unreadable.
        public var kernelReferences: Int?
        /// The devices attached, as the kernel names them.
        public var attachedDevices: [String]
        /// The fences on the buffer.
        public var fences: [DMABufBufInfo.Fence]
        /// The processes that hold it.
        public var holders: [DMABufCensus.Holder]
        /// Whether the kernel listed it (a buffer made after bufinfo was read is only in /proc).
        public var inKernelList: Bool
        /// No process holds it by fd or mapping: the kernel alone keeps it alive (stored, so
        /// that `--json` carries it; set from ``holders`` when the view is made).
        public var heldByKernelOnly: Bool
        /// For each attached PCI device, how it reaches the exporter's device, when the tool
        /// joined the view with the PCI topology (`dmabuf ls --kernel`); absent otherwise.
        public var routes: [AttachmentRoute]? = nil
    }

    /// An attachment joined with the PCI topology: the kernel's P2P verdict between the
    /// exporter's device and the attached device (`pci_p2pdma_distance`, `drivers/pci/p2pdma.c`),
    /// and what that made the exporter do.
    public struct AttachmentRoute: Sendable, Hashable, Codable {
        /// The attached device, as bufinfo names it (a BDF for a PCI device).
        public var device: String
        /// The exporter's PCI device: the one PCI function bound to the driver named by
        /// `exp_name`; `nil` when none or several are.
        public var exporterDevice: String?
        /// `bus-address`, `through-host-bridge` or `not-supported`; `nil` when not computable.
        public var mapType: String?
        /// One sentence for a person.
        public var summary: String

        /// Creates a route.
        public init(device: String, exporterDevice: String?, mapType: String?, summary: String) {
            self.device = device
            self.exporterDevice = exporterDevice
            self.mapType = mapType
            self.summary = summary
        }
    }

    /// One process's dma-buf memory, as `dmabuf_dump` counts it.
    public struct ProcessMemory: Sendable, Hashable, Codable {
        /// The process ID.
        public var pid: Int32
        /// Its `comm`.
        public var comm: String
        /// Bytes of every distinct buffer it holds by fd or mapping.
        public var rss: Int
        /// Each buffer's size divided by the number of processes holding it, summed.
        public var pss: Int
        /// How many of its fds refer to dma-bufs.
        public var fdRefs: Int
        /// How many of its mappings are of dma-bufs.
        public var mapRefs: Int
        /// How many distinct buffers it holds.
        public var buffers: Int
    }

    /// The buffers and bytes of one exporter.
    public struct ExporterTotal: Sendable, Hashable, Codable {
        /// The exporter's name (`?` when unknown).
        public var exporter: String
        /// How many buffers.
        public var buffers: Int
        /// Their bytes.
        public var bytes: Int
        /// How many of them no process holds.
        public var kernelOnlyBuffers: Int
        /// Their bytes.
        public var kernelOnlyBytes: Int
    }

    /// Where the kernel's list came from, or why it could not be read.
    public struct Source: Sendable, Hashable, Codable {
        /// The bufinfo file read.
        public var bufinfo: String
        /// Whether it was read; when `false`, ``unavailable`` says why and only the /proc view is shown.
        public var readable: Bool
        /// Why it could not be read, and what to run.
        public var unavailable: DMABufBufInfo.Unavailable?
        /// The kernel release, when the proc root says (`sys/kernel/osrelease`).
        public var kernelRelease: String?

        /// Creates a source.
        public init(bufinfo: String, readable: Bool, unavailable: DMABufBufInfo.Unavailable?, kernelRelease: String?) {
            self.bufinfo = bufinfo
            self.readable = readable
            self.unavailable = unavailable
            self.kernelRelease = kernelRelease
        }
    }

    /// Where the kernel's list came from.
    public var source: Source
    /// The buffers, by inode.
    public var buffers: [Buffer]
    /// Memory per process, by pid.
    public var processes: [ProcessMemory]
    /// Totals per exporter, by name.
    public var totals: [ExporterTotal]
    /// Every buffer's bytes (the kernel's total when bufinfo was read).
    public var exportedBytes: Int
    /// Bytes of the buffers some process holds (each once): the sum of every process's Pss, up
    /// to rounding.
    public var userspaceBytes: Int
    /// Bytes only the kernel holds: exported minus what processes hold.
    public var kernelOnlyBytes: Int
    /// The census it was joined with (processes scanned, unreadable, vanished).
    public var processesScanned: Int
    /// Processes that could not be read.
    public var unreadable: [DMABufCensus.Unreadable]
    /// Processes that exited during the census.
    public var vanished: Int
    /// Lines of bufinfo that were not understood.
    public var unrecognizedLines: [String]

    /// Joins the kernel's list (or its absence) with a census.
    /// - Complexity: O(b log b + h) for b buffers and h holders.
    public init(bufinfo: DMABufBufInfo?, census: DMABufCensus, source: Source) {
        self.source = source
        processesScanned = census.processesScanned
        unreadable = census.unreadable
        vanished = census.vanished
        unrecognizedLines = bufinfo?.unrecognizedLines ?? []
        var byInode: [UInt64: Buffer] = [:]
        for kernel in bufinfo?.buffers ?? [] {
            // A kernel lists each buffer once; a copy listing an inode twice keeps the first.
            if byInode[kernel.inode] != nil { continue }
            byInode[kernel.inode] = Buffer(
                inode: kernel.inode, size: kernel.size, exporter: kernel.exporter, name: kernel.name,
                references: kernel.count, kernelReferences: nil, attachedDevices: kernel.attachedDevices,
                fences: kernel.fences, holders: [], inKernelList: true, heldByKernelOnly: true)
        }
        for seen in census.buffers {
            var buffer = byInode[seen.inode] ?? Buffer(
                inode: seen.inode, size: seen.size, exporter: seen.exporter, name: seen.name, references: nil,
                kernelReferences: nil, attachedDevices: [], fences: [], holders: [], inKernelList: false, heldByKernelOnly: true)
            buffer.size = buffer.size ?? seen.size
            buffer.exporter = buffer.exporter ?? seen.exporter
            // fdinfo's name is newer than bufinfo's if it was renamed between the two reads.
            buffer.name = seen.name ?? buffer.name
            buffer.holders = seen.holders
            byInode[seen.inode] = buffer
        }
        let complete = census.unreadable.isEmpty
        buffers = byInode.values.sorted { $0.inode < $1.inode }.map { buffer in
            var buffer = buffer
            buffer.heldByKernelOnly = buffer.holders.isEmpty
            if let references = buffer.references, complete {
                let fromProcesses = buffer.holders.reduce(0) { $0 + $1.fds.count + $1.mappings }
                buffer.kernelReferences = max(0, references - fromProcesses)
            }
            return buffer
        }

        var memory: [Int32: ProcessMemory] = [:]
        var exported = 0
        var userspace = 0
        var totals: [String: ExporterTotal] = [:]
        for buffer in buffers {
            let size = max(0, buffer.size ?? 0)
            exported = saturatingSum(exported, size)
            if !buffer.holders.isEmpty { userspace = saturatingSum(userspace, size) }
            let exporter = buffer.exporter ?? "?"
            var total = totals[exporter] ?? ExporterTotal(exporter: exporter, buffers: 0, bytes: 0, kernelOnlyBuffers: 0, kernelOnlyBytes: 0)
            total.buffers += 1
            total.bytes = saturatingSum(total.bytes, size)
            if buffer.heldByKernelOnly {
                total.kernelOnlyBuffers += 1
                total.kernelOnlyBytes = saturatingSum(total.kernelOnlyBytes, size)
            }
            totals[exporter] = total
            let share = buffer.holders.isEmpty ? 0 : size / buffer.holders.count
            for holder in buffer.holders {
                var process = memory[holder.pid] ?? ProcessMemory(pid: holder.pid, comm: holder.comm, rss: 0, pss: 0, fdRefs: 0, mapRefs: 0, buffers: 0)
                process.rss = saturatingSum(process.rss, size)
                process.pss = saturatingSum(process.pss, share)
                process.fdRefs += holder.fds.count
                process.mapRefs += holder.mappings
                process.buffers += 1
                memory[holder.pid] = process
            }
        }
        processes = memory.values.sorted { $0.pid < $1.pid }
        self.totals = totals.values.sorted { $0.exporter < $1.exporter }
        exportedBytes = exported
        userspaceBytes = userspace
        kernelOnlyBytes = max(0, exported - userspace)
    }
}

/// What changed between two ``DMABufKernelView``s (`dmabuf ls --kernel --diff BEFORE.json`):
/// buffers that appeared and went, attachments that appeared, and the change per exporter and
/// per process, so that a leak shows as a growing line.
///
/// Buffers are matched by inode. From Linux 5.12 a dma-buf's inode comes from a 64-bit counter
/// of its own (`dma_buf_getfile` in `drivers/dma-buf/dma-buf.c`) and is never reused; before,
/// `get_next_ino` may reuse a freed buffer's number after 2^32 files, which a diff would see as
/// the same buffer.
public struct DMABufKernelDiff: Sendable, Hashable, Codable {
    /// A buffer that appeared or went.
    public struct BufferChange: Sendable, Hashable, Codable {
        /// The inode.
        public var inode: UInt64
        /// Its size.
        public var size: Int?
        /// Its exporter.
        public var exporter: String?
        /// Its name.
        public var name: String?
        /// The pids holding it (in the view it is taken from).
        public var holders: [Int32]
        /// Whether no process holds it.
        public var heldByKernelOnly: Bool
        /// The devices attached to it.
        public var attachedDevices: [String]
    }

    /// Devices newly attached to a buffer that existed before.
    public struct AttachmentChange: Sendable, Hashable, Codable {
        /// The buffer's inode.
        public var inode: UInt64
        /// Its exporter.
        public var exporter: String?
        /// The devices attached since (one entry per new attachment).
        public var attached: [String]
        /// The devices no longer attached.
        public var detached: [String]
    }

    /// One line of a before/after table.
    public struct Change: Sendable, Hashable, Codable {
        /// The exporter's name, or the process as `PID (COMM)`.
        public var key: String
        /// Buffers before.
        public var buffersBefore: Int
        /// Buffers after.
        public var buffersAfter: Int
        /// Bytes before (exporter bytes, or the process's Rss).
        public var bytesBefore: Int
        /// Bytes after.
        public var bytesAfter: Int
        /// Buffers after minus before.
        public var buffersDelta: Int { buffersAfter - buffersBefore }
        /// Bytes after minus before.
        public var bytesDelta: Int { bytesAfter.subtractingReportingOverflow(bytesBefore).partialValue }
    }

    /// Buffers present now and not before, by inode.
    public var appeared: [BufferChange]
    /// Buffers present before and not now, by inode.
    public var gone: [BufferChange]
    /// Buffers present in both whose attachments changed, by inode.
    public var attachments: [AttachmentChange]
    /// Per exporter, every exporter in either view, by name.
    public var exporters: [Change]
    /// Per process, every process in either view whose buffers or Rss changed, by pid.
    public var processes: [Change]
    /// Bytes only the kernel held before.
    public var kernelOnlyBytesBefore: Int
    /// Bytes only the kernel holds now.
    public var kernelOnlyBytesAfter: Int

    /// Compares `before` with `after`.
    /// - Complexity: O(b log b) in the number of buffers.
    public init(before: DMABufKernelView, after: DMABufKernelView) {
        func change(_ buffer: DMABufKernelView.Buffer) -> BufferChange {
            BufferChange(inode: buffer.inode, size: buffer.size, exporter: buffer.exporter, name: buffer.name,
                         holders: buffer.holders.map(\.pid), heldByKernelOnly: buffer.heldByKernelOnly,
                         attachedDevices: buffer.attachedDevices)
        }
        var old: [UInt64: DMABufKernelView.Buffer] = [:]
        for buffer in before.buffers { old[buffer.inode] = buffer }
        var now: [UInt64: DMABufKernelView.Buffer] = [:]
        for buffer in after.buffers { now[buffer.inode] = buffer }
        appeared = after.buffers.filter { old[$0.inode] == nil }.map(change).sorted { $0.inode < $1.inode }
        gone = before.buffers.filter { now[$0.inode] == nil }.map(change).sorted { $0.inode < $1.inode }
        attachments = after.buffers.compactMap { buffer -> AttachmentChange? in
            guard let previous = old[buffer.inode] else { return nil }
            let attached = Self.minus(buffer.attachedDevices, previous.attachedDevices)
            let detached = Self.minus(previous.attachedDevices, buffer.attachedDevices)
            if attached.isEmpty && detached.isEmpty { return nil }
            return AttachmentChange(inode: buffer.inode, exporter: buffer.exporter, attached: attached, detached: detached)
        }.sorted { $0.inode < $1.inode }

        var exporterTable: [String: Change] = [:]
        for total in before.totals {
            exporterTable[total.exporter] = Change(key: total.exporter, buffersBefore: total.buffers, buffersAfter: 0, bytesBefore: total.bytes, bytesAfter: 0)
        }
        for total in after.totals {
            var line = exporterTable[total.exporter] ?? Change(key: total.exporter, buffersBefore: 0, buffersAfter: 0, bytesBefore: 0, bytesAfter: 0)
            line.buffersAfter = total.buffers
            line.bytesAfter = total.bytes
            exporterTable[total.exporter] = line
        }
        exporters = exporterTable.values.sorted { $0.key < $1.key }

        var processTable: [Int32: Change] = [:]
        for process in before.processes {
            processTable[process.pid] = Change(key: "\(process.pid) (\(process.comm))", buffersBefore: process.buffers, buffersAfter: 0, bytesBefore: process.rss, bytesAfter: 0)
        }
        for process in after.processes {
            var line = processTable[process.pid] ?? Change(key: "\(process.pid) (\(process.comm))", buffersBefore: 0, buffersAfter: 0, bytesBefore: 0, bytesAfter: 0)
            line.key = "\(process.pid) (\(process.comm))"
            line.buffersAfter = process.buffers
            line.bytesAfter = process.rss
            processTable[process.pid] = line
        }
        processes = processTable.sorted { $0.key < $1.key }.map(\.value).filter { $0.buffersDelta != 0 || $0.bytesDelta != 0 }
        kernelOnlyBytesBefore = before.kernelOnlyBytes
        kernelOnlyBytesAfter = after.kernelOnlyBytes
    }

    /// The elements of `a` left after removing one match in `b` for each element of `b`.
    static func minus(_ a: [String], _ b: [String]) -> [String] {
        var left: [String: Int] = [:]
        for item in b { left[item, default: 0] += 1 }
        var result: [String] = []
        for item in a {
            if let count = left[item], count > 0 { left[item] = count - 1 } else { result.append(item) }
        }
        return result
    }
}

extension DMABufKernelView {
    /// The view a plain census gives (`dmabuf ls --json` output as a `--diff` baseline): no
    /// kernel list, so nothing is held by the kernel only.
    public init(census: DMABufCensus) {
        self.init(bufinfo: nil, census: census, source: Source(bufinfo: "", readable: false, unavailable: nil, kernelRelease: nil))
    }
}

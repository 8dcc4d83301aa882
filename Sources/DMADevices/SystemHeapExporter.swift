import DMABuf
import DMACore
import DMAMapping
import Synchronization

/// A buffer of the system dma-heap (`drivers/dma-buf/heaps/system_heap.c`, `/dev/dma_heap/system`):
/// scattered pages of RAM, exported by a static exporter (no pin, it never moves). Every importer
/// gets system pages, bounced where its mask needs it.
public final class SystemHeapExporter: DMABufExporter {
    public let exporterName = "system"
    /// The pages, in order.
    public let pages: [PhysicalRange]
    /// The machine's memory.
    public let memory: SimulatedMemory
    private let bufferBox = ModelMutex<DMABuffer?>(nil)

    /// Allocates `size` bytes of pages.
    /// - Throws: `EINVAL` for a size that is not a positive page multiple; `ENOMEM`.
    public init(name: String, memory: SimulatedMemory, size: UInt64) throws(DMAError) {
        guard size > 0, size % pageSize == 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "heap buffer '\(name)': size \(size) is not a positive multiple of \(pageSize)")
        }
        pages = try allocateSystemPages(memory, size: size)
        self.memory = memory
        let buffer = try DMABuffer(name: name, size: size, exporter: self)
        bufferBox.withLock { $0 = buffer }
    }

    /// The dma-buf.
    /// - Precondition: the buffer has not been released (``release()``).
    public var buffer: DMABuffer {
        bufferBox.withLock { box in
            guard let buffer = box else { preconditionFailure("the exporter's buffer was used after its release") }
            return buffer
        }
    }
    public var isDynamic: Bool { false }

    /// `release`: frees the pages and drops the reference to the buffer.
    public func release() {
        guard let buffer = bufferBox.withLock({ box -> DMABuffer? in defer { box = nil }; return box }) else { return }
        _ = buffer
        for page in pages { try? memory.free(page) }
    }
    public var placement: DMABufPlacement { .system }
    public func cpuRanges() throws(DMAError) -> [PhysicalRange] { pages }

    public func map(_ attachment: DMABufAttachment, direction: DMADirection, in context: ReservationContext) throws(DMAError)
        -> DMABufMapping
    {
        try mapForDevice(try ScatterList.host(pages), attachment, direction, placement: .system)
    }

    public func unmap(_ attachment: DMABufAttachment, _ mapping: DMABufMapping, direction: DMADirection) throws(DMAError) {
        try attachment.device.unmapScatterList(mapping.table, direction: direction)
    }

    /// `system_heap_dma_buf_begin_cpu_access`: syncs every mapping for the CPU.
    public func beginCPUAccess(direction: DMADirection) throws(DMAError) {
        for attachment in buffer.attachments {
            for mapping in attachment.mappings { try attachment.device.syncForCPU(mapping.table, direction: direction) }
        }
    }

    /// `system_heap_dma_buf_end_cpu_access`: syncs every mapping for the device.
    public func endCPUAccess(direction: DMADirection) throws(DMAError) {
        for attachment in buffer.attachments {
            for mapping in attachment.mappings { try attachment.device.syncForDevice(mapping.table, direction: direction) }
        }
    }
}

import DMABuf
import DMACore
import DMAMapping
import Synchronization

/// A buffer of the system dma-heap (`drivers/dma-buf/heaps/system_heap.c`, `/dev/dma_heap/system`):
/// scattered pages of RAM, exported by a static exporter (no pin, it never moves). Every importer
/// gets system pages, bounced where its mask needs it.
public final class SystemHeapExporter: DMABufExporter {
    public let exporterName = "system"
    /// The pages, in order; none after ``release()`` (they went back to the allocator).
    public var pages: [PhysicalRange] { backing.withLock { $0 ?? [] } }
    /// The pages, or `nil` once released, so that no call reaches freed memory.
    private let backing: ModelMutex<[PhysicalRange]?>
    /// The machine's memory.
    public let memory: SimulatedMemory
    private let held = ExportedBuffer(whenReleased: "the system-heap buffer was released")

    /// Allocates `size` bytes of pages.
    /// - Throws: `EINVAL` for a size that is not a positive page multiple; `ENOMEM`.
    public init(name: String, memory: SimulatedMemory, size: UInt64) throws(DMAError) {
        guard size > 0, size % pageSize == 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "heap buffer '\(name)': size \(size) is not a positive multiple of \(pageSize)")
        }
        backing = ModelMutex(try allocateSystemPages(memory, size: size))
        self.memory = memory
        let buffer = try DMABuffer(name: name, size: size, exporter: self)
        held.hold(buffer)
    }

    /// The dma-buf.
    /// - Precondition: the buffer has not been released (``release()``).
    public var buffer: DMABuffer { held.buffer }
    public var isDynamic: Bool { false }

    /// `release`: frees the pages, leaves no backing (`DMABufPlacement.released`) and drops the
    /// reference to the buffer.
    public func release() {
        held.drop()
        let freed = backing.withLock { pages in
            defer { pages = nil }
            return pages ?? []
        }
        // Pages next to each other go back as one range: a 6 GiB buffer is 1.5 million pages.
        for run in freed.sorted(by: { $0.start < $1.start }).mergingAdjacent() { try? memory.free(run) }
    }
    public var placement: DMABufPlacement { backing.withLock { $0 == nil } ? .released : .system }

    /// - Throws: `ENODEV` after ``release()``.
    public func cpuRanges() throws(DMAError) -> [PhysicalRange] {
        guard let pages = backing.withLock({ $0 }) else {
            throw DMAError(.noDevice, .ENODEV, "the system-heap buffer was released; its pages were freed")
        }
        return pages
    }

    public func map(_ attachment: DMABufAttachment, direction: DMADirection, in context: ReservationContext) throws(DMAError)
        -> DMABufMapping
    {
        try mapForDevice(try ScatterList.host(try cpuRanges()), attachment, direction, placement: .system)
    }

    public func unmap(_ attachment: DMABufAttachment, _ mapping: DMABufMapping, direction: DMADirection) throws(DMAError) {
        try attachment.device.unmapScatterList(mapping.table, direction: direction)
    }

    /// `system_heap_dma_buf_begin_cpu_access`: syncs every mapping for the CPU.
    public func beginCPUAccess(direction: DMADirection) throws(DMAError) {
        for attachment in try held.live().attachments {
            for mapping in attachment.mappings { try attachment.device.syncForCPU(mapping.table, direction: direction) }
        }
    }

    /// `system_heap_dma_buf_end_cpu_access`: syncs every mapping for the device.
    public func endCPUAccess(direction: DMADirection) throws(DMAError) {
        for attachment in try held.live().attachments {
            for mapping in attachment.mappings { try attachment.device.syncForDevice(mapping.table, direction: direction) }
        }
    }
}

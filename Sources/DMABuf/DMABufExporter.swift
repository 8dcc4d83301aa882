import DMACore

/// The exporter's side of a buffer (`struct dma_buf_ops`, `include/linux/dma-buf.h`): the driver
/// that owns the memory. The DMA-BUF core calls these; importers never do.
///
/// A *dynamic* exporter (one with `pin`/`unpin`) may move its memory while it is not pinned and
/// must then tell dynamic importers (``DMABuffer/invalidateMappings(in:)``).
public protocol DMABufExporter: AnyObject, Sendable {
    /// `exp_name`, as `fdinfo` shows it.
    var exporterName: String { get }
    /// Whether the exporter can move the memory (`dma_buf_is_dynamic`: it has `pin`).
    var isDynamic: Bool { get }
    /// Where the memory is now.
    var placement: DMABufPlacement { get }

    /// `attach`: may refuse the importer (VFIO refuses one without P2P with `EOPNOTSUPP`) or clear
    /// ``DMABufAttachment/peerToPeer`` when P2P cannot work for this device.
    func attach(_ attachment: DMABufAttachment) throws(DMAError)
    /// `detach`.
    func detach(_ attachment: DMABufAttachment)
    /// `pin`: the memory stays where it is until `unpin` (a GPU first moves it where every
    /// pinning importer can reach it). Called with the reservation lock held by `context`, which
    /// a move inside it passes on to ``DMABuffer/invalidateMappings(in:)``.
    func pin(_ attachment: DMABufAttachment, in context: ReservationContext) throws(DMAError)
    /// `unpin`.
    func unpin(_ attachment: DMABufAttachment)
    /// `map_dma_buf`: a mapped scatter-list for the attachment's device, one homogeneous list.
    /// Called with the reservation lock held by `context` (a move inside it passes it on).
    func map(_ attachment: DMABufAttachment, direction: DMADirection, in context: ReservationContext) throws(DMAError)
        -> DMABufMapping
    /// `unmap_dma_buf`.
    func unmap(_ attachment: DMABufAttachment, _ mapping: DMABufMapping, direction: DMADirection) throws(DMAError)
    /// `begin_cpu_access`: the CPU is about to touch the memory.
    func beginCPUAccess(direction: DMADirection) throws(DMAError)
    /// `end_cpu_access`.
    func endCPUAccess(direction: DMADirection) throws(DMAError)
    /// The CPU physical ranges of the memory now, for CPU access in the simulator.
    func cpuRanges() throws(DMAError) -> [PhysicalRange]
    /// `release`: the last reference to the buffer is gone; the exporter frees the memory and
    /// drops its own reference to the buffer.
    func release()
}

extension DMABufExporter {
    public func release() {}
    public func attach(_ attachment: DMABufAttachment) throws(DMAError) {}
    public func detach(_ attachment: DMABufAttachment) {}
    public func pin(_ attachment: DMABufAttachment, in context: ReservationContext) throws(DMAError) {}
    public func unpin(_ attachment: DMABufAttachment) {}
    public func beginCPUAccess(direction: DMADirection) throws(DMAError) {}
    public func endCPUAccess(direction: DMADirection) throws(DMAError) {}
}

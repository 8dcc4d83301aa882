/// The importer's side (`struct dma_buf_attach_ops`): what a dynamic importer gives at attach.
/// A static importer gives none (`dma_buf_attach`), so it can never have P2P and its mappings
/// pin the buffer.
public protocol DMABufImporter: AnyObject, Sendable {
    /// `allow_peer2peer`: the importer can handle P2P addresses (no `struct page` behind them).
    var allowPeerToPeer: Bool { get }
    /// Whether the importer has `invalidate_mappings` (optional since 7.1: a pinned RDMA MR has
    /// none, so it cannot be revoked and is never told).
    var canInvalidate: Bool { get }
    /// `invalidate_mappings` (`move_notify` before 7.1): the exporter is moving or revoking the
    /// memory; the importer must stop using its mappings of `attachment` and map again later.
    /// Called with the reservation lock held by `context` (the exporter's), which the importer
    /// passes to ``DMABuffer/unmap(_:_:direction:in:)`` to drop its mappings.
    func invalidateMappings(_ attachment: DMABufAttachment, in context: ReservationContext)
}

extension DMABufImporter {
    public var canInvalidate: Bool { true }
}

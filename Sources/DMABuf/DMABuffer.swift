import DMACore
import DMAMapping
import Synchronization

/// A shared buffer (`struct dma_buf`, `drivers/dma-buf/dma-buf.c`): its size, its exporter, its
/// reservation object, and its attachments.
///
/// The core's rules, which hold whatever the exporter:
/// - a static importer's attachment never has P2P; its maps pin a dynamic exporter's buffer for as
///   long as they live (`dma_buf_pin_on_map`, 6.15: no more sg-table cache at attach);
/// - mapping, unmapping, pinning and invalidating need the reservation lock held by the context
///   passed in (`dma_resv_assert_held`); the `…Unlocked` calls take it themselves, waiting while
///   another context holds it;
/// - an unmap must name a live mapping of that attachment; a detach with live mappings is refused
///   with `EBUSY` and changes nothing; every call on a detached attachment is `ENODEV`;
/// - a move or revoke calls `invalidate_mappings` on every dynamic attachment
///   (``invalidateMappings(in:)``);
/// - a released buffer is dead (`dma_buf_release`: nothing can reach a `struct dma_buf` after its
///   last reference): every entry point after ``release()`` throws `ENODEV` before it reaches the
///   exporter, and the exporters let go of the memory (their placement is
///   ``DMABufPlacement/released``).
public final class DMABuffer: Sendable, CustomStringConvertible {
    /// A name for traces and `DMA_BUF_SET_NAME`.
    public let name: String
    /// The size in bytes (page-aligned).
    public let size: UInt64
    /// The exporter.
    public let exporter: any DMABufExporter
    /// The rules of the kernel the buffer lives in (`KernelRules.newest` unless the exporter
    /// was given others): whether every map pins, which call maps MMIO.
    public let rules: KernelRules
    /// The reservation object.
    public let resv = ReservationObject()
    /// The buffer's own state, behind one lock so that what is checked together is set together
    /// (a release against an attach, an invalidation round against a map).
    private struct State {
        var attachments: [DMABufAttachment] = []
        /// How many `invalidate_mappings` rounds are running (see ``invalidateMappings(in:)``).
        var invalidating = 0
        var released = false
    }

    private let state = ModelMutex(State())

    /// `dma_buf_export`.
    /// - Throws: `EINVAL` for a size of 0 or one that is not a multiple of the page size.
    public init(name: String, size: UInt64, exporter: any DMABufExporter, rules: KernelRules = .newest) throws(DMAError) {
        guard size > 0, size % pageSize == 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "dma_buf_export of '\(name)': size \(size) is not a positive multiple of \(pageSize)")
        }
        self.name = name
        self.size = size
        self.exporter = exporter
        self.rules = rules
    }

    /// The live attachments.
    public var attachments: [DMABufAttachment] { state.withLock { $0.attachments } }

    /// `dma_buf_attach` (static, `importer` `nil`) or `dma_buf_dynamic_attach`.
    /// - Throws: `ENODEV` after ``release()``; whatever the exporter's `attach` throws; nothing is
    ///   attached then.
    public func attach(_ device: DMADevice, importer: (any DMABufImporter)? = nil) throws(DMAError) -> DMABufAttachment {
        try checkAlive("dma_buf_attach")
        // Before 7.1 (drivers/dma-buf/dma-buf.c, dma_buf_dynamic_attach) the callback is required:
        // importer ops without move_notify are a WARN_ON and EINVAL.
        if !rules.has(.revocableAttachments), let importer, !importer.canInvalidate {
            throw DMAError(
                .invalidArgument, .EINVAL,
                "dma_buf_dynamic_attach: \(device.name)'s importer has no move_notify, which Linux \(rules.version) requires of a dynamic importer (optional from 7.1)")
        }
        let attachment = DMABufAttachment(buffer: self, device: device, importer: importer)
        try exporter.attach(attachment)
        // The list is added to in one step with the released check: a release that came while the
        // exporter attached wins, and the attachment is undone.
        guard state.withLock({ state -> Bool in
            guard !state.released else { return false }
            state.attachments.append(attachment)
            return true
        }) else {
            exporter.detach(attachment)
            throw released("dma_buf_attach")
        }
        // Before 6.15 (drivers/dma-buf/dma-buf.c, dma_buf_dynamic_attach): when one side cannot
        // handle dynamic mappings, the attach itself takes the lock, pins a dynamic exporter's
        // buffer and maps it bidirectionally; a failure there undoes the attach.
        if rules.cachesMappingAtAttach, attachment.isDynamic != exporter.isDynamic {
            do {
                try resv.withLock { (context) throws(DMAError) in
                    attachment.setCached(try map(attachment, direction: .bidirectional, in: context))
                }
            } catch {
                _ = attachment.markDetachedIfIdle()
                exporter.detach(attachment)
                state.withLock { $0.attachments.removeAll { $0 === attachment } }
                throw error
            }
        }
        return attachment
    }

    /// `dma_buf_detach`. The kernel does not check for live mappings here (it warns only when the
    /// buffer is released with attachments left); the model refuses instead, so the mistake is
    /// reported where it is made.
    /// - Throws: `ENODEV` for an attachment already detached or of another buffer; `EBUSY` while
    ///   it has live mappings or pins (nothing changes: unmap and unpin first).
    public func detach(_ attachment: DMABufAttachment) throws(DMAError) {
        try checkAlive("dma_buf_detach")
        try checkLive(attachment, "dma_buf_detach")
        // The mapping cached at attach (before 6.15) is unmapped and unpinned here, with the lock,
        // when it is all that is left.
        if let cached = attachment.cachedMapping, attachment.mappings == [cached], attachment.adjustPin(0) == 0 {
            try resv.withLock { (_) throws(DMAError) in
                try exporter.unmap(attachment, cached, direction: .bidirectional)
                if attachment.remove(cached) == true { exporter.unpin(attachment) }
                attachment.setCached(nil)
            }
        }
        // The check and the mark are one step: a map racing with this detach either lands first
        // (EBUSY here) or finds the attachment detached (ENODEV there), never a mapping left on a
        // detached attachment.
        if let busy = attachment.markDetachedIfIdle() {
            if busy.mappings > 0 {
                throw DMAError(.busy, .EBUSY, "dma_buf_detach of \(attachment) with \(busy.mappings) live mapping(s): unmap them first")
            }
            throw DMAError(.busy, .EBUSY, "dma_buf_detach of \(attachment) while it pins the buffer: unpin first")
        }
        exporter.detach(attachment)
        state.withLock { $0.attachments.removeAll { $0 === attachment } }
    }

    /// Every entry point's first check: a released buffer is dead.
    private func checkAlive(_ call: String) throws(DMAError) {
        guard !state.withLock({ $0.released }) else { throw released(call) }
    }

    private func released(_ call: String) -> DMAError {
        DMAError(.noDevice, .ENODEV, "\(call): \(name) was released (its last dma_buf_put); its memory is gone")
    }

    private func checkLive(_ attachment: DMABufAttachment, _ call: String) throws(DMAError) {
        guard attachment.buffer === self, !attachment.isDetached else {
            throw DMAError(.noDevice, .ENODEV, "\(call): \(attachment) is not attached to \(name)")
        }
    }

    /// Whether mapping this attachment pins the buffer (`dma_buf_pin_on_map`): a dynamic exporter
    /// and a static importer; before 7.1 with `CONFIG_DMABUF_MOVE_NOTIFY` off, a dynamic exporter
    /// and any importer (`dma_buf_map_attachment` in `drivers/dma-buf/dma-buf.c`, 6.12: the pin
    /// is taken whenever the option is not enabled; `KernelRules.everyMapPins`).
    public func pinsOnMap(_ attachment: DMABufAttachment) -> Bool {
        exporter.isDynamic && (!attachment.isDynamic || rules.everyMapPins)
    }

    /// `dma_buf_map_attachment`: the reservation lock must be held, whatever the importer. A
    /// static importer of a dynamic exporter pins first; a static importer then waits for the
    /// kernel fences (a migration copy) before it may use the mapping, which the model cannot do
    /// for a fence nobody will signal, so it fails with `ETIMEDOUT` instead.
    /// - Throws: `DMAError/Code/lockNotHeld` when `context` does not hold the lock; `ENODEV` for
    ///   a detached attachment; whatever the exporter's pin or map throws (nothing stays pinned or
    ///   mapped then).
    public func map(_ attachment: DMABufAttachment, direction: DMADirection, in context: ReservationContext) throws(DMAError)
        -> DMABufMapping
    {
        try checkAlive("dma_buf_map_attachment")
        try resv.assertHeld("dma_buf_map_attachment", by: context)
        try checkNotInvalidating("dma_buf_map_attachment")
        try checkLive(attachment, "dma_buf_map_attachment")
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "dma_buf_map_attachment") }
        // The table cached at attach (before 6.15) is bidirectional, so it serves every direction.
        if let cached = attachment.cachedMapping { return cached }
        let pin = pinsOnMap(attachment)
        if pin { try exporter.pin(attachment, in: context) }
        let mapping: DMABufMapping
        do {
            mapping = try exporter.map(attachment, direction: direction, in: context)
        } catch {
            if pin { exporter.unpin(attachment) }
            throw error
        }
        if !attachment.isDynamic, !resv.isIdle(for: .kernel) {
            try? exporter.unmap(attachment, mapping, direction: direction)
            if pin { exporter.unpin(attachment) }
            throw DMAError(
                .timedOut, .ETIMEDOUT,
                "dma_buf_map_attachment: \(attachment) would wait for an unsignalled kernel fence (ETIMEDOUT in the model)")
        }
        guard attachment.record(mapping, pinned: pin) else {
            // Detached by another task while the exporter was mapping: undo, as if it came first.
            try? exporter.unmap(attachment, mapping, direction: direction)
            if pin { exporter.unpin(attachment) }
            throw DMAError(.noDevice, .ENODEV, "dma_buf_map_attachment: \(attachment) was detached while it was being mapped")
        }
        return mapping
    }

    /// `dma_buf_map_attachment_unlocked`: takes the lock around ``map(_:direction:in:)`` (for
    /// static importers, which do not hold it), waiting while another context holds it.
    public func mapUnlocked(_ attachment: DMABufAttachment, direction: DMADirection) throws(DMAError) -> DMABufMapping {
        try resv.withLock { (context) throws(DMAError) in try map(attachment, direction: direction, in: context) }
    }

    /// `dma_buf_unmap_attachment`: the reservation lock must be held; the mapping must be live.
    /// - Throws: `DMAError/Code/lockNotHeld` when `context` does not hold the lock;
    ///   `DMAError/Code/notMapped` (`EINVAL`) for a mapping that is not live (an unmap twice).
    public func unmap(
        _ attachment: DMABufAttachment, _ mapping: DMABufMapping, direction: DMADirection, in context: ReservationContext
    ) throws(DMAError) {
        try checkAlive("dma_buf_unmap_attachment")
        try resv.assertHeld("dma_buf_unmap_attachment", by: context)
        try checkLive(attachment, "dma_buf_unmap_attachment")
        guard attachment.mappings.contains(mapping) else {
            throw DMAError(.notMapped, .EINVAL, "dma_buf_unmap_attachment: \(attachment) has no such live mapping (unmapped twice?)")
        }
        // The table cached at attach stays mapped until detach (before 6.15).
        if mapping == attachment.cachedMapping { return }
        try exporter.unmap(attachment, mapping, direction: direction)
        if attachment.remove(mapping) == true { exporter.unpin(attachment) }
    }

    /// `dma_buf_unmap_attachment_unlocked`.
    public func unmapUnlocked(_ attachment: DMABufAttachment, _ mapping: DMABufMapping, direction: DMADirection) throws(DMAError) {
        try resv.withLock { (context) throws(DMAError) in try unmap(attachment, mapping, direction: direction, in: context) }
    }

    /// `dma_buf_pin`: a dynamic importer keeps the memory where it is (RDMA pinned MRs).
    /// - Throws: `DMAError/Code/lockNotHeld`; `EINVAL` for a static attachment (it pins on map);
    ///   whatever the exporter's pin throws.
    public func pin(_ attachment: DMABufAttachment, in context: ReservationContext) throws(DMAError) {
        try checkAlive("dma_buf_pin")
        try resv.assertHeld("dma_buf_pin", by: context)
        try checkNotInvalidating("dma_buf_pin")
        try checkLive(attachment, "dma_buf_pin")
        guard attachment.isDynamic else {
            throw DMAError(.invalidArgument, .EINVAL, "dma_buf_pin is for dynamic importers; \(attachment) is static and pins when it maps")
        }
        try exporter.pin(attachment, in: context)
        _ = attachment.adjustPin(1)
    }

    /// `dma_buf_unpin`.
    /// - Throws: `DMAError/Code/lockNotHeld`; `EINVAL` when it is not pinned.
    public func unpin(_ attachment: DMABufAttachment, in context: ReservationContext) throws(DMAError) {
        try checkAlive("dma_buf_unpin")
        try resv.assertHeld("dma_buf_unpin", by: context)
        try checkLive(attachment, "dma_buf_unpin")
        guard attachment.isDynamic, attachment.adjustPin(0) > 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "dma_buf_unpin: \(attachment) is not pinned")
        }
        _ = attachment.adjustPin(-1)
        exporter.unpin(attachment)
    }

    /// The last `dma_buf_put` (`dma_buf_release`): the exporter's `release` frees the memory and
    /// drops its reference to the buffer, which breaks the exporter ↔ buffer reference cycle. A
    /// second call does nothing. From then on the buffer is dead: every entry point throws
    /// `ENODEV`.
    ///
    /// The check for attachments and the mark are one step under the buffer's lock, taken with
    /// the reservation lock held, so no attach can slip in and no map, pin or invalidation that
    /// holds the reservation lock is half-way through the exporter when the memory goes.
    /// - Throws: `EBUSY` while attachments remain (detach them first; nothing changes);
    ///   `EDEADLK` when called with the reservation lock held on this thread.
    public func release() throws(DMAError) {
        let now = try resv.withLock { (_) throws(DMAError) -> Bool in
            try state.withLock { (state) throws(DMAError) -> Bool in
                guard state.attachments.isEmpty else {
                    throw DMAError(
                        .busy, .EBUSY, "\(name) still has \(state.attachments.count) attachment(s): detach them before the last dma_buf_put")
                }
                defer { state.released = true }
                return !state.released
            }
        }
        if now { exporter.release() }
    }

    /// Whether the buffer has been released.
    public var isReleased: Bool { state.withLock { $0.released } }

    /// Whether any attachment pins the buffer now.
    public var isPinned: Bool { attachments.contains { $0.isPinned } }

    /// `dma_buf_invalidate_mappings` (`dma_buf_move_notify` before 7.1): tells every dynamic
    /// importer that its mappings are about to become invalid. The reservation lock must be held
    /// by `context`, which each importer gets to drop its mappings with.
    /// - Returns: the attachments that were told.
    /// - Throws: `DMAError/Code/lockNotHeld`.
    @discardableResult
    public func invalidateMappings(in context: ReservationContext) throws(DMAError) -> [DMABufAttachment] {
        try checkAlive("dma_buf_invalidate_mappings")
        try resv.assertHeld("dma_buf_invalidate_mappings", by: context)
        let told = state.withLock { state -> [DMABufAttachment] in
            state.invalidating += 1
            return state.attachments.filter { $0.importer?.canInvalidate == true }
        }
        defer { state.withLock { $0.invalidating -= 1 } }
        for attachment in told { attachment.importer?.invalidateMappings(attachment, in: context) }
        return told
    }

    /// Inside `invalidate_mappings` an importer may only drop its mappings (`unmap`, with the lock
    /// the exporter holds, as `ib_umem_dmabuf_unmap_pages` does): a map or pin there would reach
    /// memory the exporter is about to move, and the `…Unlocked` calls would take the reservation
    /// lock a second time. Both are `EDEADLK`, as a `ww_mutex` taken again in one context is.
    /// Called with the lock held by the caller's context, so a round running now is that
    /// context's own (no other context can be inside one).
    private func checkNotInvalidating(_ call: String) throws(DMAError) {
        guard state.withLock({ $0.invalidating }) == 0 else {
            throw DMAError(
                .wouldDeadlock, .EDEADLK,
                "\(call) from inside invalidate_mappings of \(name): the exporter holds the reservation lock to move or revoke the memory; drop the mapping now and map again after the callback")
        }
    }

    /// `dma_buf_attach_revocable` (7.1): whether the importer of `attachment` can have its access
    /// revoked (it has `invalidate_mappings`), which exporters such as VFIO require.
    public func isRevocable(_ attachment: DMABufAttachment) -> Bool { attachment.importer?.canInvalidate == true }

    /// `dma_buf_begin_cpu_access`. The exporter's callback runs with the reservation lock held
    /// (as amdgpu's reserves the BO), so a release cannot free the memory under it.
    /// - Throws: `ENODEV` after ``release()``; `EINVAL` for `DMA_NONE`; whatever the exporter
    ///   throws.
    public func beginCPUAccess(direction: DMADirection) throws(DMAError) {
        try cpuAccess("dma_buf_begin_cpu_access", direction) { (direction) throws(DMAError) in try exporter.beginCPUAccess(direction: direction) }
    }

    /// `dma_buf_end_cpu_access`, with the reservation lock held as for ``beginCPUAccess(direction:)``.
    /// - Throws: `ENODEV` after ``release()``; `EINVAL` for `DMA_NONE`; whatever the exporter
    ///   throws.
    public func endCPUAccess(direction: DMADirection) throws(DMAError) {
        try cpuAccess("dma_buf_end_cpu_access", direction) { (direction) throws(DMAError) in try exporter.endCPUAccess(direction: direction) }
    }

    /// The checks of both CPU-access calls, then the exporter's callback under the reservation
    /// lock, the buffer checked alive again once the lock is held (a release may have won it).
    private func cpuAccess(
        _ call: String, _ direction: DMADirection, _ callback: (DMADirection) throws(DMAError) -> Void
    ) throws(DMAError) {
        try checkAlive(call)
        guard direction.isValidForMapping else { throw .invalidDirection(direction, call) }
        try resv.withLock { (_) throws(DMAError) in
            try checkAlive(call)
            try callback(direction)
        }
    }

    public var description: String { "\(name) (\(formatBytes(size)), \(exporter.exporterName), \(exporter.placement))" }
}

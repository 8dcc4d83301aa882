import DMABuf
import DMACore
import DMAMapping
import Synchronization

/// An RDMA memory region over a dma-buf (`struct ib_umem_dmabuf`,
/// `drivers/infiniband/core/umem_dmabuf.c`), as mlx5 (`drivers/infiniband/hw/mlx5/mr.c`) uses it.
///
/// - The MR covers `[offset, offset + length)` of the buffer: an offset and length that overflow,
///   a zero length, or a window past the end of the buffer are `EINVAL` at registration
///   (`ib_umem_dmabuf_get_with_dma_device`).
/// - A dynamic MR (`ib_umem_dmabuf_get`) attaches dynamically with `allow_peer2peer`; mlx5 maps it
///   at registration (`mlx5_ib_init_dmabuf_mr` faults the whole MR in), so a map failure fails
///   the registration. When the exporter moves or revokes the memory, the MR is invalidated
///   (`invalidate_mappings` → the driver zaps its translation and calls
///   `ib_umem_dmabuf_unmap_pages`); the next access faults in again and re-maps.
/// - A pinned MR (`ib_umem_dmabuf_get_pinned`) attaches the same way, then pins and maps at once,
///   so the memory never moves; it has no `invalidate_mappings` (7.1), so exporters that must be
///   able to revoke (VFIO) refuse it at attach. Before 7.1 it has a `move_notify` that only warns,
///   so VFIO (6.19, 7.0) lets it attach and its `pin` refuses it (`EOPNOTSUPP`).
/// - A revocable pinned MR (`ib_umem_dmabuf_get_pinned_revocable_and_lock`, 7.1, irdma's) pins and
///   maps as a pinned MR does, but has an `invalidate_mappings` (`ib_umem_dmabuf_revoke_locked`)
///   that revokes it for good: unmap, unpin, and every later map is `EINVAL`, even after the
///   exporter makes the memory reachable again. So VFIO accepts it, and a VFIO revoke ends (every
///   importer has unmapped) instead of waiting for good.
/// - Every map (`ib_umem_dmabuf_map_pages`) is `DMA_BIDIRECTIONAL` whatever the access, trims the
///   table to the window (the first entry advanced to the page holding `offset`, the last cut at
///   the page after the window's end), and then waits for the kernel fences (a migration copy):
///   one that cannot end is `ETIMEDOUT`. After ``revoke()`` a map is `EINVAL`.
public final class RDMAMemoryRegion: DMABufImporter {
    /// The NIC's device.
    public let device: DMADevice
    /// The buffer.
    public let buffer: DMABuffer
    /// Whether it is a pinned MR.
    public let pinned: Bool
    /// Whether it is a revocable pinned MR (`ib_umem_dmabuf_get_pinned_revocable_and_lock`, 7.1).
    public let revocable: Bool
    /// The access the MR was registered for (its mappings are bidirectional whatever it is).
    public let direction: DMADirection
    /// The first byte of the buffer the MR covers (`umem.address`).
    public let offset: UInt64
    /// The bytes the MR covers (`umem.length`).
    public let length: UInt64
    public var allowPeerToPeer: Bool { true }
    /// A pinned MR has no `invalidate_mappings` (7.1 removed the warning stub), so it cannot be
    /// revoked, unless it is a revocable one (`ib_umem_dmabuf_attach_pinned_revocable_ops`, 7.1);
    /// a dynamic MR has mlx5's callback. Before 7.1 a pinned MR has a `move_notify` that only warns
    /// (`ib_umem_dmabuf_unsupported_move_notify`, `umem_dmabuf.c`): the callback was required then.
    public var canInvalidate: Bool { !pinned || revocable || !buffer.rules.has(.revocableAttachments) }

    private struct State {
        var attachment: DMABufAttachment?
        var mapping: DMABufMapping?
        var faults = 0
        var invalidations = 0
        var unsupportedInvalidations = 0
        var revoked = false
        var isPinnedNow = false
        var deregistered = false
    }

    private let state = ModelMutex(State())

    init(device: DMADevice, buffer: DMABuffer, pinned: Bool, revocable: Bool, direction: DMADirection, offset: UInt64, length: UInt64?)
        throws(DMAError)
    {
        // ib_umem_dmabuf_get_pinned_revocable_and_lock came in 7.1 (drivers/infiniband/core/umem_dmabuf.c).
        if revocable {
            guard buffer.rules.has(.revocablePinnedMR) else {
                throw DMAError(
                    .notSupported, .EOPNOTSUPP,
                    "a revocable pinned MR does not exist in Linux \(buffer.rules.version): ib_umem_dmabuf_get_pinned_revocable_and_lock came in \(KernelRule.revocablePinnedMR.introduced)")
            }
            guard pinned else {
                throw DMAError(
                    .invalidArgument, .EINVAL,
                    "a revocable MR is a pinned MR (ib_umem_dmabuf_get_pinned_revocable_and_lock); a dynamic MR is always invalidated, never revoked")
            }
        }
        let length = length ?? (offset < buffer.size ? buffer.size - offset : 0)
        // ib_umem_dmabuf_get_with_dma_device: the window must not overflow, must hold a page, and
        // must lie inside the buffer.
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow else {
            throw DMAError(.invalidArgument, .EINVAL, "MR of \(buffer.name): offset \(hex(offset)) + length \(hex(length)) overflows")
        }
        guard length > 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "MR of \(buffer.name): a zero-length window holds no page")
        }
        guard end <= buffer.size else {
            throw DMAError(
                .invalidArgument, .EINVAL,
                "MR of \(buffer.name): [\(hex(offset)), \(hex(end))) runs past the end of the \(formatBytes(buffer.size)) buffer")
        }
        self.device = device
        self.buffer = buffer
        self.pinned = pinned
        self.revocable = revocable
        self.direction = direction
        self.offset = offset
        self.length = length
        let attachment = try buffer.attach(device, importer: self)
        state.withLock { $0.attachment = attachment }
        do throws(DMAError) {
            try buffer.resv.withLock { (context) throws(DMAError) in
                if pinned {
                    try buffer.pin(attachment, in: context)
                    state.withLock { $0.isPinnedNow = true }
                }
                // ib_umem_dmabuf_get_pinned maps at once; mlx5_ib_init_dmabuf_mr maps a dynamic
                // MR at registration too.
                _ = try mapPages(attachment, in: context)
            }
        } catch {
            try? teardown(attachment)
            throw error
        }
    }

    /// The live mapping, if any (the exporter's whole table, before the trim to the window).
    public var mapping: DMABufMapping? { state.withLock { $0.mapping } }
    /// How many times the NIC faulted the MR in (mapped it), the registration's map included.
    public var faultIns: Int { state.withLock { $0.faults } }
    /// How many times the exporter invalidated it.
    public var invalidations: Int { state.withLock { $0.invalidations } }
    /// How many times a pinned MR's warn-only `move_notify` was called (before 7.1): the kernel
    /// warns "Invalidate callback should not be called when memory is pinned" and does nothing.
    public var unsupportedInvalidations: Int { state.withLock { $0.unsupportedInvalidations } }
    /// Whether ``revoke()`` ran.
    public var isRevoked: Bool { state.withLock { $0.revoked } }

    /// The DMA segments of the window (`umem.sgt_append`): the mapping's entries that overlap the
    /// window's pages, the first advanced to the page holding ``offset``, the last cut at the page
    /// after the window's end (`ib_umem_dmabuf_map_pages`).
    public var windowSegments: [DMASegment] {
        guard let mapping else { return [] }
        return Self.trim(mapping.table.segments, start: offset / pageSize * pageSize, end: Self.pageEnd(offset + length))
    }

    private static func pageEnd(_ value: UInt64) -> UInt64 { (value + pageSize - 1) / pageSize * pageSize }

    static func trim(_ segments: [DMASegment], start: UInt64, end: UInt64) -> [DMASegment] {
        var out: [DMASegment] = []
        var cur: UInt64 = 0
        for segment in segments {
            let segEnd = cur + segment.length
            defer { cur = segEnd }
            guard segEnd > start, cur < end else { continue }
            let from = max(start, cur)
            let to = min(end, segEnd)
            out.append(DMASegment(address: DMAAddress(segment.address.rawValue + (from - cur)), length: to - from, isBusAddress: segment.isBusAddress))
        }
        return out
    }

    /// `invalidate_mappings`: a dynamic MR drops its mapping (the next access faults in again); a
    /// revocable pinned MR is revoked for good (`ib_umem_dmabuf_revoke_locked`: unmap, unpin, later
    /// maps `EINVAL`); before 7.1 a pinned MR's `move_notify` only warns
    /// (``unsupportedInvalidations``).
    public func invalidateMappings(_ attachment: DMABufAttachment, in context: ReservationContext) {
        if revocable {
            state.withLock { $0.invalidations += 1 }
            try? revokeLocked(attachment, in: context)
            return
        }
        if pinned {
            state.withLock { $0.unsupportedInvalidations += 1 }
            return
        }
        let mapping = state.withLock { state -> DMABufMapping? in
            state.invalidations += 1
            defer { state.mapping = nil }
            return state.mapping
        }
        if let mapping { try? buffer.unmap(attachment, mapping, direction: .bidirectional, in: context) }
    }

    /// `ib_umem_dmabuf_map_pages`, with the lock held: `EINVAL` after a revoke; a map
    /// (`DMA_BIDIRECTIONAL`) when there is none; then the wait for the kernel fences.
    private func mapPages(_ attachment: DMABufAttachment, in context: ReservationContext) throws(DMAError) -> DMABufMapping {
        let (current, revoked) = state.withLock { ($0.mapping, $0.revoked) }
        guard !revoked else {
            throw DMAError(.invalidArgument, .EINVAL, "ib_umem_dmabuf_map_pages: the MR of \(buffer.name) was revoked")
        }
        let mapping: DMABufMapping
        if let current {
            mapping = current
        } else {
            mapping = try buffer.map(attachment, direction: .bidirectional, in: context)
            state.withLock {
                $0.mapping = mapping
                $0.faults += 1
            }
        }
        // dma_resv_wait_timeout(DMA_RESV_USAGE_KERNEL): the pages may still be being migrated.
        guard buffer.resv.isIdle(for: .kernel) else {
            throw DMAError(
                .timedOut, .ETIMEDOUT,
                "ib_umem_dmabuf_map_pages: \(buffer.name) has an unsignalled kernel fence (a migration copy) that the MR would wait for (ETIMEDOUT in the model)")
        }
        return mapping
    }

    /// Faults the MR in when it has no mapping: lock, map, unlock.
    private func ensureMapped() throws(DMAError) -> DMABufMapping {
        let (attachment, current, gone) = state.withLock { ($0.attachment, $0.mapping, $0.deregistered) }
        guard !gone, let attachment else { throw DMAError(.noDevice, .ENODEV, "the MR of \(buffer.name) is deregistered") }
        if let current { return current }
        return try buffer.resv.withLock { (context) throws(DMAError) in try mapPages(attachment, in: context) }
    }

    /// The MR's view of `mapping` for `count` bytes at buffer offset `at`: the mapping trimmed to
    /// the window (`umem.sgt_append`), and where `at` falls in it.
    /// - Throws: `EINVAL` when the bytes are not all inside the window.
    private func window(_ mapping: DMABufMapping, at: UInt64, count: UInt64) throws(DMAError) -> (view: DMABufMapping, offset: UInt64) {
        let (end, overflow) = at.addingReportingOverflow(count)
        guard !overflow, at >= offset, end <= offset + length else {
            throw DMAError(
                .invalidArgument, .EINVAL,
                "\(count) bytes at \(hex(at)) are outside the MR's window [\(hex(offset)), \(hex(offset + length))) of \(buffer.name)")
        }
        let start = offset / pageSize * pageSize
        let window = Self.trim(mapping.table.segments, start: start, end: Self.pageEnd(offset + length))
        let view = DMABufMapping(table: DMAScatterTable(list: mapping.table.list, segments: window, p2pMapType: mapping.table.p2pMapType), placement: mapping.placement)
        return (view, at - start)
    }

    /// The NIC writes `bytes` at `offset` of the buffer (an RDMA write landing in the MR).
    /// - Throws: `EINVAL` outside the MR's window; the fault-in's errors (`ENODEV` after a
    ///   VFIO revoke, `EINVAL` after ``revoke()``), the engine's faults.
    public func write(_ bytes: [UInt8], offset: UInt64) throws(DMAError) {
        let (view, at) = try window(try ensureMapped(), at: offset, count: UInt64(bytes.count))
        try view.write(bytes, offset: at, by: device)
    }

    /// The NIC reads `count` bytes at `offset` of the buffer (an RDMA read or send from the MR).
    public func read(offset: UInt64, count: Int) throws(DMAError) -> [UInt8] {
        let (view, at) = try window(try ensureMapped(), at: offset, count: UInt64(count))
        return try view.read(offset: at, count: count, by: device)
    }

    /// The NIC writes `count` bytes of `pattern` at `offset` of the buffer (the pattern's offsets
    /// are the buffer's), generated, never held whole. See ``write(_:offset:)``.
    public func fill(_ pattern: BytePattern, offset: UInt64, count: Int) throws(DMAError) {
        let (view, at) = try window(try ensureMapped(), at: offset, count: UInt64(count))
        try view.fill(pattern, offset: at, count: count, patternOffset: offset, by: device)
    }

    /// The NIC reads `count` bytes at `offset` and compares them with `pattern` piece by piece:
    /// the index of the first byte that differs and the byte read, or nil. See ``read(offset:count:)``.
    public func compare(offset: UInt64, count: Int, with pattern: BytePattern?) throws(DMAError) -> (index: Int, found: UInt8)? {
        let (view, at) = try window(try ensureMapped(), at: offset, count: UInt64(count))
        return try view.compare(offset: at, count: count, with: pattern, patternOffset: offset, by: device)
    }

    /// `ib_umem_dmabuf_revoke` (mlx5 revokes an MR it deregisters): with the lock, unmap, unpin,
    /// and refuse every later map with `EINVAL`. A second call does nothing. An exporter's
    /// `invalidate_mappings` does the same to a revocable pinned MR.
    public func revoke() throws(DMAError) {
        guard let attachment = state.withLock({ $0.attachment }) else { return }
        try buffer.resv.withLock { (context) throws(DMAError) in try revokeLocked(attachment, in: context) }
    }

    private func revokeLocked(_ attachment: DMABufAttachment, in context: ReservationContext) throws(DMAError) {
        let (mapping, wasPinned, revoked) = state.withLock { state -> (DMABufMapping?, Bool, Bool) in
            defer {
                state.mapping = nil
                state.isPinnedNow = false
                state.revoked = true
            }
            return (state.mapping, state.isPinnedNow, state.revoked)
        }
        guard !revoked else { return }
        if let mapping { try buffer.unmap(attachment, mapping, direction: .bidirectional, in: context) }
        if wasPinned { try buffer.unpin(attachment, in: context) }
    }

    /// Undoes a registration that failed half-way: unmap and unpin what was done, detach.
    private func teardown(_ attachment: DMABufAttachment) throws(DMAError) {
        try buffer.resv.withLock { (context) throws(DMAError) in try revokeLocked(attachment, in: context) }
        state.withLock {
            $0.deregistered = true
            $0.attachment = nil
        }
        try buffer.detach(attachment)
    }

    /// `ib_umem_dmabuf_release`: revoke (unmap, unpin), then detach.
    public func deregister() throws(DMAError) {
        let attachment = state.withLock { state -> DMABufAttachment? in
            defer { state.deregistered = true }
            return state.deregistered ? nil : state.attachment
        }
        guard let attachment else { return }
        try buffer.resv.withLock { (context) throws(DMAError) in try revokeLocked(attachment, in: context) }
        state.withLock { $0.attachment = nil }
        try buffer.detach(attachment)
    }
}

/// An RDMA NIC: a device that registers dma-bufs as memory regions.
public final class RDMANIC: Sendable {
    /// Its name.
    public let name: String
    /// Its device.
    public let device: DMADevice

    /// Creates the NIC.
    public init(name: String, device: DMADevice) {
        self.name = name
        self.device = device
    }

    /// Registers `[offset, offset + length)` of `buffer` as an MR (the whole buffer by default):
    /// dynamic by default (`ib_umem_dmabuf_get`), pinned on request (`ib_umem_dmabuf_get_pinned`),
    /// pinned and revocable on request (`ib_umem_dmabuf_get_pinned_revocable_and_lock`, 7.1, as
    /// irdma registers). Either way it is mapped before this returns (`mlx5_ib_reg_user_mr_dmabuf`).
    /// - Parameters:
    ///   - buffer: the dma-buf.
    ///   - pinned: a pinned MR instead of a dynamic one.
    ///   - revocable: with `pinned`, a pinned MR that has `invalidate_mappings`, which revokes it for
    ///     good (`drivers/infiniband/core/umem_dmabuf.c`, 7.1): VFIO accepts it where it refuses a
    ///     plain pinned MR.
    ///   - direction: the access it is registered for; the mapping is `DMA_BIDIRECTIONAL` anyway.
    ///   - offset: the first byte of the buffer the MR covers.
    ///   - length: the bytes it covers; the rest of the buffer from `offset` when `nil`.
    /// - Throws: `EOPNOTSUPP` for `revocable` before 7.1 (the call does not exist; the message
    ///   names both releases); `EINVAL` for `revocable` without `pinned`, and for a window that
    ///   overflows, is empty or runs past the buffer; whatever attach, pin or map throw (VFIO's
    ///   `EOPNOTSUPP` for a pinned MR: at pin on 6.19 and 7.0, at attach from 7.1); `ETIMEDOUT` for
    ///   a kernel fence the map would wait for; nothing stays attached then.
    public func registerMR(
        _ buffer: DMABuffer, pinned: Bool = false, revocable: Bool = false, direction: DMADirection = .bidirectional, offset: UInt64 = 0,
        length: UInt64? = nil
    ) throws(DMAError) -> RDMAMemoryRegion {
        try RDMAMemoryRegion(
            device: device, buffer: buffer, pinned: pinned, revocable: revocable, direction: direction, offset: offset, length: length)
    }
}

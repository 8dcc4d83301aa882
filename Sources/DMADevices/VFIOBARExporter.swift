import DMABuf
import DMACore
import DMAMapping
import Synchronization

/// A VFIO device's BAR exported as a dma-buf (`VFIO_DEVICE_FEATURE_DMA_BUF`,
/// `drivers/vfio/pci/vfio_pci_dmabuf.c`, 6.19, with 7.1's revoke): page-aligned (offset, length)
/// ranges of one memory BAR, reached only peer-to-peer.
///
/// Rules:
/// - creation checks, in the order Linux 7.3.4 makes them (held against the real kernel by the
///   kernel tier's VFIO guest, docs/kernel-tier.md): a variant driver without `get_dmabuf_phys`
///   → `EOPNOTSUPP`; the feature asked with SET (it is GET only, `vfio_check_feature`) → `EINVAL`;
///   no ranges or flags set → `EINVAL`; a region
///   index that is not a BAR (≥ the ROM region, 6), or a BAR whose resource cannot be claimed (an
///   empty BAR such as the upper half of a 64-bit one: `vfio_pci_core_setup_barmap` fails, a
///   check the 2026 stable kernels added) → `ENODEV`; more ranges than one kmalloc can copy in
///   (`memdup_array_user`: more than `KMALLOC_MAX_SIZE`, 4 MiB on x86-64, of 16-byte ranges) →
///   `ENOMEM`; a zero or unaligned range, or a total that overflows → `EINVAL`; a BAR that is not
///   memory (an I/O BAR: no P2P provider) → `EINVAL`; `start + offset + length` overflowing →
///   `EOVERFLOW`; a range past the end of the BAR → `EINVAL`; a device whose registration is gone
///   (being unregistered: `vfio_device_try_get_registration` fails) → `ENODEV`;
/// - `attach` refuses an importer without P2P (`EOPNOTSUPP`), any attach while revoked (`ENODEV`),
///   and an importer that cannot be revoked (`dma_buf_attach_revocable`, `EOPNOTSUPP`);
/// - `map` fails with `ENODEV` while revoked; otherwise it maps as `dma_buf_phys_vec_to_sgt` does
///   (`drivers/dma-buf/dma-buf-mapping.c`, 6.19), by the route the topology alone gives (the
///   importer's DMA ops are not asked): bus addresses per range; through the host bridge one IOVA
///   reservation with every range linked `DMA_ATTR_MMIO` and one sync (one DMA segment, cut only at
///   `UINT_MAX` bytes), or per-range `dma_map_phys(DMA_ATTR_MMIO)` without an IOMMU; no route is
///   `EINVAL`; nothing is half-mapped;
/// - a reset, a cleared memory-enable bit or low-power entry revokes it: every importer is told
///   (`invalidate_mappings`) before memory decoding stops (the simulated device faults), maps fail
///   until ``restore()``, which tells the importers again; closing the device revokes for good and
///   always tells them. From 7.1 a revoke also waits for every fence and for every importer to
///   unmap (`vfio_pci_dma_buf_move`); the model cannot wait for what nothing will finish, so it
///   reports that wait as `ETIMEDOUT`. A revoke, like every move, runs with the reservation lock
///   held (``revoke(_:in:)``).
/// - `pin` per release (`drivers/vfio/pci/vfio_pci_dmabuf.c`): 6.19 and 7.0 give a `pin` that always
///   fails with `EOPNOTSUPP` (and an `unpin` that does nothing), added late in 6.19 so that pinned
///   importers cannot use the buffer. Having `pin` makes the buffer dynamic (`dma_buf_is_dynamic`),
///   so a pinned importer attaches and then fails at `dma_buf_pin`, and with
///   `CONFIG_DMABUF_MOVE_NOTIFY` off (the default; `drivers/vfio/pci/Kconfig` does not require it)
///   `dma_buf_map_attachment` pins every attachment first (`drivers/dma-buf/dma-buf.c`), so every
///   map is `EOPNOTSUPP` too: only a kernel with the option set maps a VFIO dma-buf. From 7.1
///   (`KernelRule.revocableAttachments`, "vfio: Permit VFIO to work with pinned importers") VFIO
///   has no `pin`: it is not dynamic, `dma_buf_pin` succeeds without asking it, and the attach
///   refuses instead every importer that cannot be revoked, so a pinned importer is welcome
///   exactly when it has `invalidate_mappings` (an RDMA MR from
///   `ib_umem_dmabuf_get_pinned_revocable_and_lock`).
public final class VFIOBARExporter: DMABufExporter {
    /// One requested range (`struct vfio_region_dma_range`).
    public struct Range: Hashable, Sendable {
        /// Offset into the BAR.
        public let offset: UInt64
        /// Length in bytes.
        public let length: UInt64
        /// Creates a range.
        public init(offset: UInt64, length: UInt64) {
            self.offset = offset
            self.length = length
        }
    }

    /// How `VFIO_DEVICE_FEATURE_DMA_BUF` is asked (`VFIO_DEVICE_FEATURE_GET` / `_SET`).
    public enum FeatureAccess: Sendable {
        /// `VFIO_DEVICE_FEATURE_GET`: the only access the feature allows.
        case get
        /// `VFIO_DEVICE_FEATURE_SET`: refused with `EINVAL`.
        case set
    }

    /// Why memory was revoked.
    public enum RevokeReason: String, Sendable, CaseIterable {
        /// `VFIO_DEVICE_RESET`, FLR, hot reset.
        case reset
        /// `PCI_COMMAND_MEMORY` cleared by a config write.
        case memoryDisabled = "memory-disabled"
        /// Runtime-PM / D3 entry.
        case lowPower = "low-power"
        /// The device was closed (`vfio_pci_dma_buf_cleanup`): for good.
        case closed
    }

    private struct State {
        var revoked: Bool
        var closed = false
        /// After ``release()``: the buffer is gone (the BAR stays the device's, but no call here
        /// reaches it any more).
        var released = false
    }

    public let exporterName = "vfio_pci_core"
    /// The BAR's provider.
    public let provider: P2PProvider
    /// The physical ranges of the buffer, in order (`phys_vec`).
    public let physicalRanges: [PhysicalRange]
    /// The machine's memory.
    public let memory: SimulatedMemory
    private let state: ModelMutex<State>
    /// Whether the exporter has 6.19's always-failing `pin` (6.19 and 7.0).
    private let hasFailingPin: Bool
    private let held = ExportedBuffer(whenReleased: "the VFIO dma-buf was released")
    private let book = MMIOMappingBook()

    /// The most ranges one export can name: `memdup_array_user` copies them in with one kmalloc,
    /// which cannot exceed `KMALLOC_MAX_SIZE` (`1 << (MAX_PAGE_ORDER + PAGE_SHIFT)`, 4 MiB on
    /// x86-64), and a range is 16 bytes (`struct vfio_region_dma_range`).
    public static let maximumRanges = (4 << 20) / 16

    /// `VFIO_DEVICE_FEATURE_DMA_BUF`.
    /// - Note: About the arguments:
    ///   - regionIndex: the VFIO region (BAR index, 0…5).
    ///   - bars: the device's memory BARs by index (only memory BARs are P2P providers).
    ///   - ioBARs: the indices of its I/O-port BARs: they exist (VFIO can claim them) but are not
    ///     memory, so an export of one is refused later, with `EINVAL`, than an empty BAR's `ENODEV`.
    ///   - flags: must be 0.
    ///   - rules: the kernel's rules; the feature exists from 6.19 (`KernelRule.vfioDMABufExport`).
    ///   - hasDMABufPhys: whether the device's driver provides `get_dmabuf_phys` (vfio-pci does; a
    ///     variant driver may not: `EOPNOTSUPP`).
    ///   - access: how the feature is asked; it is GET only (SET is `EINVAL`).
    ///   - registered: whether the VFIO device is still registered (`ENODEV` once it is going away).
    /// - Throws: `DMAError.Code.notInKernelVersion` (`ENOTTY`, what `vfio_pci_core_ioctl_feature`
    ///   answers an unknown feature) before 6.19; the kernel's errors listed in the type's
    ///   documentation; nothing is exported then.
    public init(
        name: String, regionIndex: Int, bars: [Int: P2PProvider], ioBARs: Set<Int> = [], ranges: [Range], memory: SimulatedMemory,
        flags: UInt32 = 0, rules: KernelRules = .newest, hasDMABufPhys: Bool = true, access: FeatureAccess = .get,
        registered: Bool = true
    ) throws(DMAError) {
        // drivers/vfio/pci/vfio_pci_dmabuf.c came in 6.19; before, VFIO_DEVICE_FEATURE_DMA_BUF is
        // a feature vfio_pci_core_ioctl_feature does not know.
        guard rules.has(.vfioDMABufExport) else {
            throw DMAError(
                .notInKernelVersion, .ENOTTY,
                "VFIO_DEVICE_FEATURE_DMA_BUF does not exist in Linux \(rules.version): VFIO PCI dma-buf export came in \(KernelRule.vfioDMABufExport.introduced)")
        }
        // vfio_pci_core_feature_dma_buf (drivers/vfio/pci/vfio_pci_dmabuf.c, 6.19): the driver
        // must give physical ranges, then vfio_check_feature allows GET only.
        guard hasDMABufPhys else {
            throw DMAError(.notSupported, .EOPNOTSUPP, "the device's VFIO driver has no get_dmabuf_phys: it cannot export dma-bufs")
        }
        guard access == .get else {
            throw DMAError(.invalidArgument, .EINVAL, "VFIO_DEVICE_FEATURE_DMA_BUF is GET only; it cannot be SET")
        }
        guard !ranges.isEmpty, flags == 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "VFIO_DEVICE_FEATURE_DMA_BUF needs at least one range and flags 0")
        }
        guard regionIndex >= 0, regionIndex < 6 else {
            throw DMAError(.noDevice, .ENODEV, "VFIO region \(regionIndex) is not a BAR (regions 0…5; 6 is the ROM)")
        }
        guard bars[regionIndex] != nil || ioBARs.contains(regionIndex) else {
            throw DMAError(.noDevice, .ENODEV, "BAR \(regionIndex) is empty: VFIO cannot claim it (vfio_pci_core_setup_barmap)")
        }
        guard ranges.count <= Self.maximumRanges else {
            throw DMAError(
                .resourceExhausted, .ENOMEM,
                "\(ranges.count) ranges are more than the kernel copies in at once (\(Self.maximumRanges): memdup_array_user, KMALLOC_MAX_SIZE)")
        }
        var total: UInt64 = 0
        for range in ranges {
            guard range.length > 0, range.offset % pageSize == 0, range.length % pageSize == 0 else {
                throw DMAError(
                    .invalidArgument, .EINVAL,
                    "range at offset \(hex(range.offset)) of \(range.length) bytes is empty or not page-aligned")
            }
            let (sum, overflow) = total.addingReportingOverflow(range.length)
            guard !overflow, sum & (1 << 63) == 0 else {
                throw DMAError(.invalidArgument, .EINVAL, "the ranges add up past what a dma-buf can hold")
            }
            total = sum
        }
        guard let provider = bars[regionIndex] else {
            throw DMAError(.invalidArgument, .EINVAL, "BAR \(regionIndex) is not a memory BAR: it cannot be a P2P provider")
        }
        var physical: [PhysicalRange] = []
        for range in ranges {
            let (start, o1) = provider.cpuRange.start.rawValue.addingReportingOverflow(range.offset)
            let (_, o2) = start.addingReportingOverflow(range.length)
            guard !o1, !o2 else {
                throw DMAError(.addressOverflow, .EOVERFLOW, "BAR \(regionIndex) + \(hex(range.offset)) + \(hex(range.length)) overflows")
            }
            guard range.offset < provider.cpuRange.length, range.length <= provider.cpuRange.length - range.offset else {
                throw DMAError(
                    .invalidArgument, .EINVAL,
                    "range \(hex(range.offset))+\(hex(range.length)) runs past the end of BAR \(regionIndex) (\(formatBytes(provider.cpuRange.length)))")
            }
            physical.append(try PhysicalRange(start: PhysicalAddress(start), length: range.length))
        }
        // After the ranges are filled in: vfio_device_try_get_registration.
        guard registered else {
            throw DMAError(.noDevice, .ENODEV, "the VFIO device is being unregistered: no new dma-buf")
        }
        self.provider = provider
        self.physicalRanges = physical
        self.memory = memory
        self.state = ModelMutex(State(revoked: !memory.isDecoding(provider)))
        self.hasFailingPin = !rules.has(.revocableAttachments)
        let buffer = try DMABuffer(name: name, size: total, exporter: self, rules: rules)
        held.hold(buffer)
    }

    /// The dma-buf.
    /// - Precondition: the buffer has not been released (``release()``).
    public var buffer: DMABuffer { held.buffer }
    /// `dma_buf_is_dynamic`: true on 6.19 and 7.0, whose `vfio_pci_dmabuf_ops` have a `pin` (one
    /// that always fails); false from 7.1, which has none.
    public var isDynamic: Bool { hasFailingPin }

    /// `vfio_pci_dma_buf_pin`: on 6.19 and 7.0 it refuses every pin; from 7.1 the op does not
    /// exist and `dma_buf_pin` succeeds without calling it (nothing to do: a BAR never moves).
    /// - Throws: `EOPNOTSUPP` on 6.19 and 7.0, for a pinned importer's `dma_buf_pin` and, with
    ///   `CONFIG_DMABUF_MOVE_NOTIFY` off, for the pin every `dma_buf_map_attachment` takes first.
    public func pin(_ attachment: DMABufAttachment, in context: ReservationContext) throws(DMAError) {
        guard hasFailingPin else { return }
        throw DMAError(
            .notSupported, .EOPNOTSUPP,
            "vfio_pci_dma_buf_pin refuses every pin in Linux \(attachment.buffer.rules.version) (\(attachment)): a pinned importer's, and the one dma_buf_map_attachment takes first while CONFIG_DMABUF_MOVE_NOTIFY is not set; 7.1 drops the pin and refuses unrevocable importers at attach instead")
    }

    /// `vfio_pci_dma_buf_unpin` (6.19, 7.0): does nothing; from 7.1 there is no such op.
    public func unpin(_ attachment: DMABufAttachment) {}

    /// `release`: marks the export released and drops the reference to the buffer (the BAR stays
    /// the device's).
    public func release() {
        state.withLock { $0.released = true }
        held.drop()
    }
    public var placement: DMABufPlacement { state.withLock { $0.released ? .released : .bar } }
    /// Whether access is revoked now.
    public var isRevoked: Bool { state.withLock { $0.revoked } }
    /// - Throws: `ENODEV` after ``release()``.
    public func cpuRanges() throws(DMAError) -> [PhysicalRange] {
        try checkNotReleased("cpuRanges")
        return physicalRanges
    }

    private func checkNotReleased(_ call: String) throws(DMAError) {
        guard !state.withLock({ $0.released }) else {
            throw DMAError(.noDevice, .ENODEV, "\(call): the VFIO dma-buf was released")
        }
    }

    public func attach(_ attachment: DMABufAttachment) throws(DMAError) {
        guard attachment.peerToPeer else {
            throw DMAError(
                .notSupported, .EOPNOTSUPP,
                "a VFIO BAR can only be reached peer-to-peer: \(attachment.device.name) must attach dynamically with allow_peer2peer")
        }
        try checkNotReleased("attach")
        guard !isRevoked else {
            throw DMAError(.noDevice, .ENODEV, "\(attachment.buffer.name) is revoked (device reset, memory disabled or closed)")
        }
        // dma_buf_attach_revocable came with 7.1's revoke (drivers/dma-buf/dma-buf.c); 6.19 and
        // 7.0 check only peer2peer.
        guard !attachment.buffer.rules.has(.revocableAttachments) || attachment.buffer.isRevocable(attachment) else {
            throw DMAError(
                .notSupported, .EOPNOTSUPP,
                "\(attachment.device.name) cannot be revoked (no invalidate_mappings, e.g. a pinned RDMA MR): VFIO refuses it (dma_buf_attach_revocable)")
        }
    }

    public func map(_ attachment: DMABufAttachment, direction: DMADirection, in context: ReservationContext) throws(DMAError)
        -> DMABufMapping
    {
        try checkNotReleased("map")
        guard !isRevoked else {
            throw DMAError(.noDevice, .ENODEV, "\(attachment.buffer.name) is revoked: map again after the device's memory is enabled")
        }
        let (table, how) = try mapPhysVec(physicalRanges, provider: provider, device: attachment.device, direction: direction)
        book.record(attachment, table, how)
        let call: String? =
            switch how {
            case .none: nil
            case .iova: "dma_iova_link(DMA_ATTR_MMIO)"
            case .perPiece: "dma_map_phys(DMA_ATTR_MMIO)"
            }
        return DMABufMapping(table: table, placement: .bar, mmioMapCall: call)
    }

    /// `dma_buf_free_sgt`: undoes the mapping as it was made.
    /// - Throws: `EINVAL` for a table this exporter did not map for the attachment.
    public func unmap(_ attachment: DMABufAttachment, _ mapping: DMABufMapping, direction: DMADirection) throws(DMAError) {
        guard let how = book.take(attachment, mapping.table) else {
            throw DMAError(.notMapped, .EINVAL, "dma_buf_free_sgt: \(attachment) has no such VFIO mapping")
        }
        try MMIOMappingBook.undo(how, device: attachment.device, direction: direction)
    }

    /// `vfio_pci_dma_buf_move(vdev, true)`, or `vfio_pci_dma_buf_cleanup` for ``RevokeReason/closed``:
    /// tell every importer, then (7.1) wait, then stop memory decoding and refuse maps. Like every
    /// exporter move in this package (``GPUVRAMExporter/evict(in:)`` too), the caller holds the
    /// reservation lock and passes its context; VFIO's own reset paths take `dma_resv_lock` just
    /// around this, which is `resv.withLock { try revoke(reason, in: $0) }`.
    ///
    /// The importers are told only when the state changes, except on close, which always tells
    /// them (`vfio_pci_dma_buf_cleanup`). From 7.1 (`KernelRule.revocableAttachments`, the same
    /// series) the kernel then waits, with the lock held, for every fence of the buffer
    /// (`dma_resv_wait_timeout` with `DMA_RESV_USAGE_BOOKKEEP` in the released code; an earlier
    /// revision of the patch waited for `DMA_RESV_USAGE_KERNEL` only) and, once unlocked, for every
    /// importer to unmap; the buffer is revoked by then (maps fail), but memory decoding goes off
    /// only after the waits.
    /// - Returns: the importers told (empty when it was already revoked).
    /// - Throws: `ENODEV` after ``release()``; `DMAError/Code/lockNotHeld` when `context` does not
    ///   hold the lock; `ETIMEDOUT` (7.1) when any fence is pending or an importer kept a
    ///   mapping: the kernel would wait there for good; the buffer stays revoked with decoding on,
    ///   and a later revoke once the fence signalled or the mapping is gone finishes the job.
    @discardableResult
    public func revoke(_ reason: RevokeReason, in context: ReservationContext) throws(DMAError) -> [DMABufAttachment] {
        let buffer = try held.live("vfio_pci_dma_buf_move")
        try buffer.resv.assertHeld("vfio_pci_dma_buf_move", by: context)
        let (wasRevoked, wasClosed) = state.withLock { ($0.revoked, $0.closed) }
        // No map can land between the telling and the state change: maps need the lock held here.
        let tell = !wasRevoked || (reason == .closed && !wasClosed)
        let told = tell ? try buffer.invalidateMappings(in: context) : []
        state.withLock {
            $0.revoked = true
            if reason == .closed { $0.closed = true }
        }
        if buffer.rules.has(.revocableAttachments) {
            if !buffer.resv.isIdle(for: .bookkeep) {
                throw DMAError(
                    .timedOut, .ETIMEDOUT,
                    "vfio_pci_dma_buf_move: \(buffer.name) has an unsignalled fence (DMA_RESV_USAGE_BOOKKEEP waits for all); Linux \(buffer.rules.version) waits for it before memory is disabled (ETIMEDOUT in the model)")
            }
            let holding = buffer.attachments.filter { !$0.mappings.isEmpty }
            if let first = holding.first {
                throw DMAError(
                    .timedOut, .ETIMEDOUT,
                    "vfio_pci_dma_buf_move: \(first) still has \(first.mappings.count) mapping(s) after invalidate_mappings; Linux \(buffer.rules.version) waits for every importer to unmap (ETIMEDOUT in the model)")
            }
        }
        try memory.setDecoding(provider, enabled: false)
        return told
    }

    /// `vfio_pci_dma_buf_move(vdev, false)` once memory is enabled again: the state changes under
    /// the reservation lock (taken here, as VFIO takes it), every importer is told again
    /// (`invalidate_mappings`: mappings made before the revoke are stale), and maps work again.
    /// - Returns: the importers told (empty when it was not revoked).
    /// - Throws: `ENODEV` after the device was closed (revoked for good) or the buffer released;
    ///   `EDEADLK` when called with the lock held in this thread.
    @discardableResult
    public func restore() throws(DMAError) -> [DMABufAttachment] {
        let buffer = try held.live("restore")
        return try buffer.resv.withLock { (context) throws(DMAError) -> [DMABufAttachment] in
            let wasRevoked = try state.withLock { (state) throws(DMAError) -> Bool in
                guard !state.closed else {
                    throw DMAError(.noDevice, .ENODEV, "\(buffer.name) was revoked for good when the VFIO device was closed")
                }
                defer { state.revoked = false }
                return state.revoked
            }
            try memory.setDecoding(provider, enabled: true)
            return wasRevoked ? try buffer.invalidateMappings(in: context) : []
        }
    }
}

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
///   kernel tier's VFIO guest, docs/kernel-tier.md): no ranges or flags set → `EINVAL`; a region
///   index that is not a BAR (≥ the ROM region, 6), or a BAR whose resource cannot be claimed (an
///   empty BAR such as the upper half of a 64-bit one: `vfio_pci_core_setup_barmap` fails, a
///   check the 2026 stable kernels added) → `ENODEV`; more ranges than one kmalloc can copy in
///   (`memdup_array_user`: more than `KMALLOC_MAX_SIZE`, 4 MiB on x86-64, of 16-byte ranges) →
///   `ENOMEM`; a zero or unaligned range, or a total that overflows → `EINVAL`; a BAR that is not
///   memory (an I/O BAR: no P2P provider) → `EINVAL`; `start + offset + length` overflowing →
///   `EOVERFLOW`; a range past the end of the BAR → `EINVAL`;
/// - `attach` refuses an importer without P2P (`EOPNOTSUPP`), any attach while revoked (`ENODEV`),
///   and an importer that cannot be revoked (`dma_buf_attach_revocable`, `EOPNOTSUPP`);
/// - `map` fails with `ENODEV` while revoked, and with `EINVAL` when the device cannot reach the
///   BAR (`dma_buf_phys_vec_to_sgt`: `PCI_P2PDMA_MAP_NOT_SUPPORTED`); nothing is half-mapped;
/// - a reset, a cleared memory-enable bit or low-power entry revokes it: memory decoding stops (the
///   simulated device faults), every importer is told (`invalidate_mappings`), maps fail until
///   ``restore()``; closing the device revokes for good. A revoke, like every move, runs with the
///   reservation lock held (``revoke(_:in:)``).
/// VFIO has no `pin`: it is not a moving exporter.
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
    private let bufferBox = ModelMutex<DMABuffer?>(nil)

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
    /// - Throws: `DMAError.Code.notInKernelVersion` (`ENOTTY`, what `vfio_pci_core_ioctl_feature`
    ///   answers an unknown feature) before 6.19; the kernel's errors listed in the type's
    ///   documentation; nothing is exported then.
    public init(
        name: String, regionIndex: Int, bars: [Int: P2PProvider], ioBARs: Set<Int> = [], ranges: [Range], memory: SimulatedMemory,
        flags: UInt32 = 0, rules: KernelRules = .newest
    ) throws(DMAError) {
        // drivers/vfio/pci/vfio_pci_dmabuf.c came in 6.19; before, VFIO_DEVICE_FEATURE_DMA_BUF is
        // a feature vfio_pci_core_ioctl_feature does not know.
        guard rules.has(.vfioDMABufExport) else {
            throw DMAError(
                .notInKernelVersion, .ENOTTY,
                "VFIO_DEVICE_FEATURE_DMA_BUF does not exist in Linux \(rules.version): VFIO PCI dma-buf export came in \(KernelRule.vfioDMABufExport.introduced)")
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
        self.provider = provider
        self.physicalRanges = physical
        self.memory = memory
        self.state = ModelMutex(State(revoked: !memory.isDecoding(provider)))
        let buffer = try DMABuffer(name: name, size: total, exporter: self, rules: rules)
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

    /// The dma-buf for one of the exporter's own calls.
    /// - Throws: `ENODEV` after ``release()``.
    private func liveBuffer(_ call: String) throws(DMAError) -> DMABuffer {
        guard let buffer = bufferBox.withLock({ $0 }) else {
            throw DMAError(.noDevice, .ENODEV, "\(call): the VFIO dma-buf was released")
        }
        return buffer
    }

    /// `release`: marks the export released and drops the reference to the buffer (the BAR stays
    /// the device's).
    public func release() {
        state.withLock { $0.released = true }
        bufferBox.withLock { $0 = nil }
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
        let list = try ScatterList.peerToPeer(physicalRanges, provider: provider)
        guard attachment.device.p2pMapType(to: provider) != .notSupported else {
            throw DMAError(
                .invalidArgument, .EINVAL,
                "\(attachment.device.name) cannot reach \(provider) peer-to-peer (dma_buf_phys_vec_to_sgt: PCI_P2PDMA_MAP_NOT_SUPPORTED)")
        }
        return try mapForDevice(list, attachment, direction, placement: .bar)
    }

    public func unmap(_ attachment: DMABufAttachment, _ mapping: DMABufMapping, direction: DMADirection) throws(DMAError) {
        try attachment.device.unmapScatterList(mapping.table, direction: direction)
    }

    /// `vfio_pci_dma_buf_move(vdev, true)`: tell every importer, then stop memory decoding and
    /// refuse maps. Like every exporter move in this package (``GPUVRAMExporter/evict(in:)``
    /// too), the caller holds the reservation lock and passes its context; VFIO's own reset paths
    /// take `dma_resv_lock` just around this, which is `resv.withLock { try revoke(reason, in: $0) }`.
    ///
    /// The buffer becomes revoked only after every importer was told: a call made without the
    /// lock changes nothing, so a retry with it tells them all.
    /// - Returns: the importers told (empty when it was already revoked).
    /// - Throws: `ENODEV` after ``release()``; `DMAError/Code/lockNotHeld` when `context` does not
    ///   hold the lock.
    @discardableResult
    public func revoke(_ reason: RevokeReason, in context: ReservationContext) throws(DMAError) -> [DMABufAttachment] {
        let buffer = try liveBuffer("vfio_pci_dma_buf_move")
        try buffer.resv.assertHeld("vfio_pci_dma_buf_move", by: context)
        // No map can land between the telling and the state change: maps need the lock held here.
        let told = isRevoked ? [] : try buffer.invalidateMappings(in: context)
        try memory.setDecoding(provider, enabled: false)
        state.withLock {
            $0.revoked = true
            if reason == .closed { $0.closed = true }
        }
        return told
    }

    /// `vfio_pci_dma_buf_move(vdev, false)` once memory is enabled again: maps work again.
    /// - Throws: `ENODEV` after the device was closed (revoked for good) or the buffer released.
    public func restore() throws(DMAError) {
        let buffer = try liveBuffer("restore")
        try state.withLock { (state) throws(DMAError) in
            guard !state.closed else {
                throw DMAError(.noDevice, .ENODEV, "\(buffer.name) was revoked for good when the VFIO device was closed")
            }
            state.revoked = false
        }
        try memory.setDecoding(provider, enabled: true)
    }
}

import DMACore

/// Mapping through an IOMMU (`drivers/iommu/dma-iommu.c` over `drivers/iommu/iova.c`): the device
/// sees IOVAs, which the IOMMU translates page by page.
///
/// Rules, from `iommu_dma_map_phys`, `iommu_dma_map_sg`, `__finalise_sg` and `iommu_dma_unmap_sg`:
/// - a single range keeps its offset inside the first page (`iova_offset`) and takes whole pages;
/// - a scatter-list of discontiguous pages gets **one** IOVA allocation; each entry keeps its
///   in-page offset, is widened to whole pages, and is padded so that no entry crosses the device's
///   segment boundary; then adjacent entries are merged into DMA segments when the next one starts
///   on a page, the join is not on a segment boundary, and the result stays within the maximum
///   segment size;
/// - bus-address P2P entries get the provider's bus address and never touch the IOMMU; through-host-
///   bridge entries get regular IOVAs in the list's one range, with the protection of the list's
///   direction and attributes (no `IOMMU_MMIO`: `iommu_dma_map_sg` lets them through to the same
///   `iommu_map_sg` as RAM, 6.x and 7.x alike);
/// - a single mapping for a device whose `min_align_mask` is wider than the IOVA granule is
///   refused (`__iommu_dma_map`: "Unsupported alignment constraint"; the IOVA allocator cannot
///   keep those address bits);
/// - IOVA exhaustion fails the whole list with `ENOMEM` and leaves nothing mapped;
/// - the device may access a page only as the direction allows (`dma_info_to_prot`).
/// It also implements the two-step IOVA API (6.16, `Documentation/core-api/dma-api.rst`).
/// IOMMU-backed DMA supports P2P (`dma_pci_p2pdma_supported`).
public struct IOMMUDMAOps: DMAOps {
    public var name: String { "iommu" }
    public var p2pSupported: Bool { true }
    public var summary: String {
        "iommu: IOVAs from a size-aligned allocator, one contiguous IOVA range per scatter-list (drivers/iommu/dma-iommu.c)"
    }

    /// Creates the ops; the per-device state lives in the device's ``IOMMUDomain``.
    public init() {}

    private static let granule = IOMMUDomain.granule

    private func domain(_ device: DMADevice) throws(DMAError) -> IOMMUDomain {
        guard let domain = device.iommu else {
            throw DMAError(.noDevice, .ENODEV, "\(device.name) is not attached to an IOMMU domain; iommu ops cannot map for it")
        }
        return domain
    }

    /// `value + extra` rounded up to whole granules.
    /// - Throws: ``DMAError/Code/addressOverflow`` (`EOVERFLOW`) when that passes 2^64 − 1 (a
    ///   length near 2^64 from a caller, or a list whose entries add up past it).
    private static func align(_ value: UInt64, plus extra: UInt64 = 0) throws(DMAError) -> UInt64 {
        let (sum, carried) = value.addingReportingOverflow(extra)
        let (rounded, roundedOver) = sum.addingReportingOverflow(granule - 1)
        guard !carried, !roundedOver else {
            throw DMAError(.addressOverflow, .EOVERFLOW, "\(hex(value)) + \(hex(extra)) bytes in whole IOVA pages pass 2^64 − 1")
        }
        return rounded / granule * granule
    }

    /// `a + b`, or `EOVERFLOW` naming `what` when the sum passes 2^64 − 1.
    private static func sum(_ a: UInt64, _ b: UInt64, _ what: String) throws(DMAError) -> UInt64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        guard !overflow else { throw DMAError(.addressOverflow, .EOVERFLOW, "\(what): \(hex(a)) + \(hex(b)) passes 2^64 − 1") }
        return sum
    }

    /// Where one scatter-list entry sits in the list's IOVA range.
    private struct Placement {
        var iova: UInt64  // from the start of the range
        var offset: UInt64  // in-page offset of the entry
        var widened: UInt64  // whole pages mapped
        var padded: UInt64  // IOVA taken, with the padding to the segment boundary
    }

    public func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAAddress
    {
        try checkMemoryKind(range, attributes: attributes, device: device)
        let domain = try domain(device)
        // __iommu_dma_map (drivers/iommu/dma-iommu.c): the allocator keeps only the bits under the
        // granule, so a wider min_align_mask is a WARN and DMA_MAPPING_ERROR.
        guard device.minAlignMask <= Self.granule - 1 else {
            throw DMAError(
                .invalidArgument, .EINVAL,
                "\(device.name): Unsupported alignment constraint: min_align_mask \(hex(device.minAlignMask)) is wider than the IOVA granule mask \(hex(Self.granule - 1)) (__iommu_dma_map)")
        }
        let offset = range.start.rawValue % Self.granule
        let size = try Self.align(range.length, plus: offset)
        let iova = try domain.allocateIOVA(pages: size / Self.granule, limit: device.mask.value, device: device.name)
        do {
            try domain.map(
                iova, physical: PhysicalAddress(range.start.rawValue - offset), length: size,
                protection: IOMMUDomain.Protection(direction: direction, attributes: attributes))
        } catch {
            try? domain.freeIOVA(iova)
            throw error
        }
        return DMAAddress(iova.rawValue + offset)
    }

    public func unmapPhys(
        _ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        try unmapRange(address, length: length, device: device)
    }

    /// `__iommu_dma_unmap`: unmap the pages and free the IOVA allocation that holds them.
    private func unmapRange(_ address: DMAAddress, length: UInt64, device: DMADevice) throws(DMAError) {
        let domain = try domain(device)
        let offset = address.rawValue % Self.granule
        let start = DMAAddress(address.rawValue - offset)
        guard let allocation = domain.iovaAllocation(containing: start), allocation.start == start else {
            throw DMAError(.notMapped, .EINVAL, "\(device.name): \(address) is not the start of a live IOVA mapping")
        }
        domain.unmap(start, length: try Self.align(length, plus: offset))
        try domain.freeIOVA(start)
    }

    public func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAScatterTable
    {
        let type = try checkScatterList(list, device: device)
        if type == .busAddress, let provider = list.provider { return .busAddresses(list, provider: provider) }
        // A host-bridge P2P entry is a page of a BAR: MMIO as memory goes, but mapped with the
        // list's own protection (iommu_dma_map_sg: "mapped with regular IOVAs").
        let kind = type == .throughHostBridge ? attributes.union(.mmio) : attributes
        for range in list { try checkMemoryKind(range, attributes: kind, device: device) }
        let domain = try domain(device)

        // Lay the entries out in one IOVA range, as iommu_dma_map_sg does: each entry keeps its
        // in-page offset, is widened to whole pages and padded to the segment boundary.
        let boundary = device.segmentBoundaryMask
        var layout: [Placement] = []
        layout.reserveCapacity(list.count)
        var iovaLength: UInt64 = 0
        for range in list {
            let offset = range.start.rawValue % Self.granule
            let widened = try Self.align(range.length, plus: offset)
            let pad = (boundary &- iovaLength &+ 1) & boundary
            if pad != 0 && pad < widened - 1, !layout.isEmpty {
                layout[layout.count - 1].padded += pad
                iovaLength = try Self.sum(iovaLength, pad, "the IOVA range of \(list.count) segments")
            }
            layout.append(Placement(iova: iovaLength, offset: offset, widened: widened, padded: widened))
            iovaLength = try Self.sum(iovaLength, widened, "the IOVA range of \(list.count) segments")
        }
        let base = try domain.allocateIOVA(pages: iovaLength / Self.granule, limit: device.mask.value, device: device.name)
        // iommu_map_sg: every entry in one call, all or nothing.
        var runs: [IOMMUDomain.Run] = []
        runs.reserveCapacity(list.count)
        for (index, range) in list.enumerated() {
            let place = layout[index]
            runs.append(
                IOMMUDomain.Run(
                    iova: DMAAddress(base.rawValue + place.iova), physical: PhysicalAddress(range.start.rawValue - place.offset),
                    length: place.widened))
        }
        do {
            try domain.map(runs, protection: IOMMUDomain.Protection(direction: direction, attributes: attributes))
        } catch {
            try? domain.freeIOVA(base)
            throw DMAError(.mapFailed, .EINVAL, "mapping \(list.count) segments: \(error.message)", cause: error)
        }

        // __finalise_sg: merge entries into DMA segments.
        let maxSegmentSize = device.maxSegmentSize
        var segments: [DMASegment] = []
        segments.reserveCapacity(list.count)
        var current: UInt64 = 0  // length of the open output segment, 0 when none may be appended to
        for (index, range) in list.enumerated() {
            let place = layout[index]
            let dma = base.rawValue + place.iova
            // `max_len - cur_len >= s_length`, without the unsigned wrap when an entry alone is
            // longer than the device's maximum segment (a VFIO BAR exported in 1 MiB ranges to a
            // device whose dma_parms say 64 KiB): such a segment is never merged into.
            if current != 0 && place.offset == 0 && dma & boundary != 0 && current <= maxSegmentSize
                && maxSegmentSize - current >= range.length
            {
                current += range.length
                segments[segments.count - 1].length = current
            } else {
                segments.append(DMASegment(address: DMAAddress(dma + place.offset), length: range.length))
                current = range.length
            }
            if range.length + place.offset < place.padded { current = 0 }
        }
        return DMAScatterTable(list: list, segments: segments, p2pMapType: type)
    }

    public func unmapScatterList(
        _ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        // iommu_dma_unmap_sg: the IOVA-backed segments form one range from the first to the last.
        let mapped = table.segments.filter { !$0.isBusAddress && $0.length > 0 }
        guard let first = mapped.first, let last = mapped.last else { return }
        let end = try Self.sum(last.address.rawValue, last.length, "the end of the mapped segments")
        guard end >= first.address.rawValue else {
            throw DMAError(.notMapped, .EINVAL, "\(device.name): the table's segments end before they start; it is not one this ops mapped")
        }
        try unmapRange(first.address, length: end - first.address.rawValue, device: device)
    }

    // A coherent device behind an IOMMU needs no CPU cache work and no bounce.
    public func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}
    public func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}

    public func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress {
        try domain(device).translate(address, access: access, device: device.name)
    }

    // MARK: Two-step IOVA API (6.16)

    /// `dma_iova_try_alloc`: reserves IOVA space for `size` bytes starting at the in-page offset of
    /// `physical`; `nil` when the device has no IOMMU domain, for a zero size, or when IOVA space
    /// is exhausted (the caller then maps range by range).
    public func iovaTryAlloc(_ physical: PhysicalAddress, size: UInt64, device: DMADevice) throws(DMAError) -> DMAIOVAState? {
        guard let domain = device.iommu, size > 0, size < 1 << 63 else { return nil }
        let offset = physical.rawValue % Self.granule
        guard let iova = try? domain.allocateIOVA(pages: Self.align(size + offset) / Self.granule, limit: device.mask.value, device: device.name) else {
            return nil
        }
        return DMAIOVAState(address: DMAAddress(iova.rawValue + offset), size: size, offset: offset)
    }

    /// `dma_iova_link`: maps `length` bytes of `physical` at `offset` into the reservation, without
    /// an IOTLB sync. Every link after the first must start on a granule (the merge boundary).
    /// - Throws: `EIO` when a link after the first is not granule-aligned; `EINVAL` when it does
    ///   not fit in the reservation; `EEXIST` when it overlaps an earlier link.
    public func iovaLink(
        _ state: DMAIOVAState, physical: PhysicalAddress, offset: UInt64, length: UInt64, direction: DMADirection,
        attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        let domain = try domain(device)
        let pad = physical.rawValue % Self.granule
        guard pad == 0 || offset == 0 else {
            throw DMAError(
                .ioError, .EIO,
                "dma_iova_link at offset \(hex(offset)): \(physical) is not granule-aligned; only the first link may start inside a page")
        }
        guard length > 0, offset <= state.size, length <= state.size - offset else {
            throw DMAError(.invalidArgument, .EINVAL, "dma_iova_link of \(length) bytes at offset \(hex(offset)) does not fit the \(state.size)-byte reservation")
        }
        let range = try PhysicalRange(start: physical, length: length)
        try checkMemoryKind(range, attributes: attributes, device: device)
        let iova = DMAAddress(try Self.sum(state.address.rawValue, offset, "dma_iova_link") - pad)
        try domain.map(
            iova, physical: PhysicalAddress(physical.rawValue - pad), length: try Self.align(length, plus: pad),
            protection: IOMMUDomain.Protection(direction: direction, attributes: attributes), synced: false)
    }

    /// `dma_iova_sync`: one IOTLB sync for the links in `offset ..< offset + length`.
    public func iovaSync(_ state: DMAIOVAState, offset: UInt64, length: UInt64, device: DMADevice) throws(DMAError) {
        let domain = try domain(device)
        let start = try Self.sum(state.address.rawValue, offset, "dma_iova_sync")
        let pad = start % Self.granule
        domain.sync(DMAAddress(start - pad), length: try Self.align(length, plus: pad))
    }

    /// `dma_iova_destroy`: unlinks the first `mappedLength` bytes and frees the reservation.
    public func iovaDestroy(
        _ state: DMAIOVAState, mappedLength: UInt64, direction: DMADirection, attributes: DMAAttributes,
        device: DMADevice
    ) throws(DMAError) {
        let domain = try domain(device)
        let base = DMAAddress(state.address.rawValue - state.offset)
        if mappedLength > 0 { domain.unmap(base, length: try Self.align(mappedLength, plus: state.offset)) }
        try domain.freeIOVA(base)
    }
}

/// HFI-style "virt" ops (`dma_virt_ops`, once `lib/dma-virt.c`, removed in 5.11 in favour of
/// `ib_uses_virt_dma` in `include/rdma/ib_verbs.h`): for software devices (rdmavt, hfi1, rxe) that
/// "DMA" with the CPU, the DMA address is the kernel virtual address of the page
/// (`page_address(page) + offset`, the direct map at `PAGE_OFFSET`).
///
/// Such ops cannot carry P2P: MMIO has no direct-map address. They refuse a P2P scatter-list or an
/// MMIO range with `EREMOTEIO`, map nothing, and never crash. The mask does not limit them (they
/// hand out CPU addresses); unmap and sync have nothing to do.
public struct VirtDMAOps: DMAOps {
    public var name: String { "virt" }
    public var p2pSupported: Bool { false }
    public var summary: String {
        "virt: DMA address = CPU virtual address (HFI/rdmavt-style dma_virt_ops); not P2P capable"
    }

    public var addressesAreCPUVirtual: Bool { true }

    /// The base of the x86-64 direct map (`__PAGE_OFFSET_BASE_L4` without KASLR).
    public static let pageOffset: UInt64 = 0xffff_8880_0000_0000

    /// Creates the ops.
    public init() {}

    public func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAAddress
    {
        if attributes.contains(.mmio) {
            throw DMAError(
                .peerToPeerNotSupported, .EREMOTEIO,
                "virt ops hand out CPU virtual addresses and MMIO \(range) has none; \(device.name) cannot map it")
        }
        try checkMemoryKind(range, attributes: attributes, device: device)
        return try DMAAddress(range.start.rawValue).advanced(by: Self.pageOffset)
    }

    // Nothing was set up, so unmap and sync have nothing to do.
    public func unmapPhys(
        _ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {}
    public func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}
    public func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}

    public func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress {
        guard address.rawValue >= Self.pageOffset else {
            throw DMAError(.iommuFault, .EFAULT, "\(device.name): \(address) is not a direct-map virtual address")
        }
        return PhysicalAddress(address.rawValue - Self.pageOffset)
    }
}

import DMACore

/// Direct mapping (`kernel/dma/direct.c`, `kernel/dma/direct.h`): the DMA address is the physical
/// address plus the device's bus offset (`phys_to_dma`), with no translation in between.
///
/// Rules, from `dma_direct_map_phys`, `dma_direct_map_sg` and `dma_direct_unmap_phys`:
/// - RAM beyond the device's mask (`dma_capable`: `addr + size - 1 <= mask`) is bounced through
///   the device's swiotlb pool when it has one, and is an error otherwise;
/// - `DMA_ATTR_MMIO` memory is used at its physical address as it is (no bus offset, as the
///   kernel copies from `dma_direct_map_resource`), never bounced and never synced; beyond the mask
///   it is an error;
/// - with forced bouncing (`swiotlb=force`, confidential guests: ``swiotlb``) every RAM mapping is
///   bounced and MMIO cannot be mapped at all;
/// - P2P scatter-lists: bus-address segments get the provider's bus address and are marked
///   (`sg_dma_mark_bus_address`); through-host-bridge segments take the normal physical path of
///   a page (bus offset, bounced when the device cannot reach it), not the MMIO one
///   (`dma_direct_map_sg` hands them to `dma_direct_map_phys` with the list's own attributes; a
///   P2P page has a `struct page`, so from 6.18 it may be bounced like RAM, while before 6.18
///   `dma_direct_map_page` refused to bounce a P2P page); a failed segment unwinds the ones
///   before it and the list fails with `EIO` (`EREMOTEIO` for P2P).
/// Direct mapping supports P2P (`dma_pci_p2pdma_supported` is true for a device with no ops).
public struct DirectDMAOps: DMAOps {
    public let name: String
    public var p2pSupported: Bool { true }
    /// Whether every RAM mapping is bounced (`is_swiotlb_force_bounce`).
    public let forceBounce: Bool

    /// Direct mapping that bounces only what the device cannot reach.
    public init() {
        self.name = "direct"
        self.forceBounce = false
    }

    /// Direct mapping with every RAM mapping bounced through the device's swiotlb pool
    /// (`swiotlb=force`, as in confidential-computing guests), registered as `swiotlb`.
    public static let swiotlb = DirectDMAOps(name: "swiotlb", forceBounce: true)

    private init(name: String, forceBounce: Bool) {
        self.name = name
        self.forceBounce = forceBounce
    }

    public var summary: String {
        forceBounce
            ? "swiotlb: every RAM mapping is bounced through 2 KiB slots (kernel/dma/swiotlb.c, swiotlb=force)"
            : "direct: DMA address = physical + bus offset; bounces beyond the mask when a pool exists (kernel/dma/direct.c)"
    }

    public func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAAddress
    {
        try checkMemoryKind(range, attributes: attributes, device: device)
        if attributes.contains(.mmio) {
            if forceBounce {
                throw DMAError(
                    .notDMACapable, .ENOMEM, "\(device.name): MMIO \(range) cannot be mapped while every mapping is bounced (swiotlb=force)")
            }
            let address = DMAAddress(range.start.rawValue)
            guard device.mask.isCapable(address, length: range.length) else {
                throw overflow(address, range.length, device)
            }
            return address
        }
        return try mapPage(range, direction: direction, device: device, p2pPage: false)
    }

    /// The physical path of a page, RAM or a P2P page reached through the host bridge
    /// (`dma_direct_map_phys` without `DMA_ATTR_MMIO`, `kernel/dma/direct.h`): the bus offset is
    /// added, and the page is bounced when every mapping is, or when the device cannot reach it
    /// and it has a pool. A P2P page is never bounced before 6.18 (`dma_direct_map_page` answered
    /// `DMA_MAPPING_ERROR` for `is_pci_p2pdma_page`); from 6.18 the check is gone and a P2P page
    /// is bounced as RAM is (`KernelRule.mapPhysMMIO`, the same change).
    private func mapPage(_ range: PhysicalRange, direction: DMADirection, device: DMADevice, p2pPage: Bool) throws(DMAError)
        -> DMAAddress
    {
        let address = try DMAAddress(range.start.rawValue).advanced(by: device.dmaOffset)
        let capable = device.mask.isCapable(address, length: range.length)
        if forceBounce || !capable {
            if p2pPage && !device.kernel.has(.mapPhysMMIO) {
                throw DMAError(
                    .notDMACapable, .ENOMEM,
                    "\(device.name): P2P page \(range) would need a bounce buffer, which Linux \(device.kernel.version) refuses for P2P pages (dma_direct_map_page, before 6.18)")
            }
            if forceBounce || device.swiotlb != nil { return try bounce(range, direction: direction, device: device) }
            throw overflow(address, range.length, device)
        }
        return address
    }

    private func overflow(_ address: DMAAddress, _ length: UInt64, _ device: DMADevice) -> DMAError {
        DMAError(
            .notDMACapable, .ENOMEM,
            "\(device.name): DMA addr \(address)+\(length) overflow (mask \(hex(device.mask.value))) and the device has no bounce pool")
    }

    /// `swiotlb_map`: bounce, then check that the device can reach the bounce buffer.
    private func bounce(_ range: PhysicalRange, direction: DMADirection, device: DMADevice) throws(DMAError) -> DMAAddress {
        guard let pool = device.swiotlb else {
            throw DMAError(.notDMACapable, .ENOMEM, "\(device.name): bouncing is needed but the device has no swiotlb pool")
        }
        let slot = try pool.map(
            range, minAlignMask: device.minAlignMask, segmentBoundaryMask: device.segmentBoundaryMask, dmaOffset: device.dmaOffset)
        let address = DMAAddress(slot.rawValue &+ device.dmaOffset)
        guard device.mask.isCapable(address, length: range.length) else {
            try? pool.unmap(slot, length: range.length, direction: direction, attributes: .skipCPUSync)
            throw DMAError(
                .notDMACapable, .ENOMEM,
                "\(device.name): swiotlb addr \(address)+\(range.length) overflow (mask \(hex(device.mask.value)))")
        }
        return address
    }

    private func physical(_ address: DMAAddress, _ device: DMADevice) -> PhysicalAddress {
        PhysicalAddress(address.rawValue &- device.dmaOffset)
    }

    public func unmapPhys(
        _ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        if attributes.contains(.mmio) { return }
        let phys = physical(address, device)
        // dma_direct_unmap_phys: sync for the CPU unless told not to, then free any bounce slots.
        if let pool = device.swiotlb, pool.contains(phys) {
            try pool.unmap(phys, length: length, direction: direction, attributes: attributes)
        }
    }

    /// `dma_direct_map_sg`: the default's P2P check and bus-address fast path; every other entry,
    /// host-bridge P2P included, on the physical path of a page (bus offset, bounce when needed)
    /// rather than the MMIO one, so this ops keeps its own scatter-list map.
    public func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAScatterTable
    {
        let type = try checkScatterList(list, device: device)
        if type == .busAddress, let provider = list.provider { return .busAddresses(list, provider: provider) }
        // dma_direct_map_sg (kernel/dma/direct.c): a host-bridge P2P entry falls through to the
        // same dma_direct_map_phys call as RAM, with the list's attributes (no DMA_ATTR_MMIO): bus
        // offset, bounce when needed. (From the refactor a25e7962db0d to the fix 560000d619ef,
        // backported to 6.18.y, a misplaced `break` left such entries unmapped; the model follows
        // the fixed code.) A failed entry unwinds the others and the list fails with EIO.
        return try mapEachEntry(list, p2pMapType: type, direction: direction, attributes: attributes, device: device) {
            (range) throws(DMAError) -> DMAAddress in
            guard type == .throughHostBridge else { return try mapPhys(range, direction: direction, attributes: attributes, device: device) }
            try checkMemoryKind(range, attributes: .mmio, device: device)
            return try mapPage(range, direction: direction, device: device, p2pPage: true)
        }
    }

    /// `dma_direct_unmap_sg`: every segment that is not a bus address is unmapped as a page
    /// (host-bridge P2P included: it was mapped on the physical path, perhaps bounced), so without
    /// the `DMA_ATTR_MMIO` the default adds for host-bridge tables.
    public func unmapScatterList(
        _ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        try unmapScatterListSegments(table, direction: direction, attributes: attributes, device: device)
    }

    public func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice)
        throws(DMAError)
    {
        let phys = physical(address, device)
        if let pool = device.swiotlb, pool.contains(phys) {
            try pool.syncForCPU(phys, length: length, direction: direction)
        }
    }

    public func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice)
        throws(DMAError)
    {
        let phys = physical(address, device)
        if let pool = device.swiotlb, pool.contains(phys) {
            try pool.syncForDevice(phys, length: length, direction: direction)
        }
    }

    public func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress {
        // MMIO was handed out at its physical address; everything else carries the bus offset.
        let asPhysical = PhysicalAddress(address.rawValue)
        if let region = device.memory.region(containing: asPhysical), case .bar = region.kind { return asPhysical }
        guard address.rawValue >= device.dmaOffset else {
            throw DMAError(.busError, .EIO, "\(device.name): \(address) is below the bus offset \(hex(device.dmaOffset))")
        }
        return physical(address, device)
    }
}

extension DMAOps {
    /// Refuses a range that is not what the attributes say: RAM without `DMA_ATTR_MMIO` must be RAM
    /// (a BAR would be handed to the CPU cache paths), and nothing may be unbacked.
    /// - Throws: `EINVAL` naming the range.
    public func checkMemoryKind(_ range: PhysicalRange, attributes: DMAAttributes, device: DMADevice) throws(DMAError) {
        guard let region = device.memory.region(containing: range.start), region.range.contains(range) else {
            throw DMAError(.invalidArgument, .EINVAL, "\(device.name): \(range) is not backed by one RAM or BAR region")
        }
        if case .bar = region.kind, !attributes.contains(.mmio) {
            throw DMAError(
                .invalidArgument, .EINVAL,
                "\(device.name): \(range) is MMIO (\(region.name)); map it with DMA_ATTR_MMIO or as a P2P scatter-list")
        }
    }
}

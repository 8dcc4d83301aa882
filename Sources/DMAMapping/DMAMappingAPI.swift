import DMACore

/// The driver-facing DMA-mapping API (`kernel/dma/mapping.c`): each call checks what the kernel's
/// wrapper checks (a valid direction), then dispatches to the device's ops, which check the rest
/// (a P2P list: `DMAOps.checkScatterList(_:device:)`, as dma-direct and dma-iommu check it). Drivers in the model call these, not the ops directly, exactly as kernel
/// drivers call `dma_map_phys` and never `ops->map_phys`.
///
/// The direction is checked here and only here: every entry below starts, as the kernel's does,
/// with `BUG_ON(!valid_dma_direction(dir))` (7.1 and every release the model knows), so `DMA_NONE`
/// never reaches an ops. The kernel crashes there; the model throws `DMAError/Code/kernelBug`
/// (`ENOTRECOVERABLE`, see `DMAError.invalidDirection(_:_:)`) and changes nothing.
extension DMADevice {
    /// Maps one physical range (`dma_map_phys`).
    /// - Throws: `kernelBug` (`ENOTRECOVERABLE`) for `DMA_NONE`; whatever the ops throw.
    public func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes = [])
        throws(DMAError) -> DMAAddress
    {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "dma_map_phys") }
        return try ops.mapPhys(range, direction: direction, attributes: attributes, device: self)
    }

    /// Unmaps what ``mapPhys(_:direction:attributes:)`` returned (`dma_unmap_phys`).
    public func unmapPhys(
        _ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes = []
    ) throws(DMAError) {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "dma_unmap_phys") }
        try ops.unmapPhys(address, length: length, direction: direction, attributes: attributes, device: self)
    }

    /// Maps a scatter-list (`dma_map_sgtable`). A P2P list is mapped only by ops that declare
    /// `p2pSupported` and only along a route the topology gives; otherwise the ops throw
    /// `EREMOTEIO` and nothing is mapped.
    /// - Throws: `kernelBug` (`ENOTRECOVERABLE`) for `DMA_NONE`; `EREMOTEIO` for a P2P list the
    ///   ops or the topology cannot carry; whatever else the ops throw.
    public func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes = [])
        throws(DMAError) -> DMAScatterTable
    {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "dma_map_sgtable") }
        return try ops.mapScatterList(list, direction: direction, attributes: attributes, device: self)
    }

    /// Unmaps a mapped scatter-list (`dma_unmap_sgtable`).
    public func unmapScatterList(_ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes = [])
        throws(DMAError)
    {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "dma_unmap_sgtable") }
        try ops.unmapScatterList(table, direction: direction, attributes: attributes, device: self)
    }

    /// `dma_sync_single_for_cpu`.
    public func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection) throws(DMAError) {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "dma_sync_single_for_cpu") }
        try ops.syncForCPU(address, length: length, direction: direction, device: self)
    }

    /// `dma_sync_single_for_device`.
    public func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection) throws(DMAError) {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "dma_sync_single_for_device") }
        try ops.syncForDevice(address, length: length, direction: direction, device: self)
    }

    /// `dma_sync_sgtable_for_cpu`.
    public func syncForCPU(_ table: DMAScatterTable, direction: DMADirection) throws(DMAError) {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "dma_sync_sgtable_for_cpu") }
        try ops.syncScatterListForCPU(table, direction: direction, device: self)
    }

    /// `dma_sync_sgtable_for_device`.
    public func syncForDevice(_ table: DMAScatterTable, direction: DMADirection) throws(DMAError) {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "dma_sync_sgtable_for_device") }
        try ops.syncScatterListForDevice(table, direction: direction, device: self)
    }
}

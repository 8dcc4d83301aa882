import DMACore

/// The driver-facing DMA-mapping API (`kernel/dma/mapping.c`): each call checks what the kernel's
/// wrapper checks (a valid direction; for P2P lists, ops that declare support), then dispatches to
/// the device's ops. Drivers in the model call these, not the ops directly, exactly as kernel
/// drivers call `dma_map_phys` and never `ops->map_phys`.
extension DMADevice {
    /// Maps one physical range (`dma_map_phys`).
    /// - Throws: `EINVAL` for `DMA_NONE`; whatever the ops throw.
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

    /// Maps a scatter-list (`dma_map_sgtable`). A P2P list reaches the ops only when they declare
    /// `p2pSupported`; otherwise this throws `EREMOTEIO` and nothing is mapped.
    public func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes = [])
        throws(DMAError) -> DMAScatterTable
    {
        if list.isPeerToPeer || !direction.isValidForMapping {
            _ = try ops.checkScatterList(list, direction: direction, device: self)
        }
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

import DMACore
import DMAMapping

/// A vendor's identity-mapped ops done right: DMA address = physical address, refused (not
/// wrapped, not truncated) when the device cannot reach it, and P2P segments given their bus
/// addresses. It declares P2P support and keeps that promise.
public struct IdentityOps: DMAOps {
    public init() {}
    public var name: String { "vendor-identity" }
    public var p2pSupported: Bool { true }

    public func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAAddress
    {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "vendor map_phys") }
        try checkMemoryKind(range, attributes: attributes, device: device)
        let address = DMAAddress(range.start.rawValue)
        guard device.mask.isCapable(address, length: range.length) else {
            throw DMAError(.notDMACapable, .ENOMEM, "\(device.name) cannot reach \(range) (mask \(device.mask))")
        }
        return address
    }

    public func unmapPhys(_ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError)
    {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "vendor unmap_phys") }
    }

    public func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAScatterTable
    {
        let type = try checkScatterList(list, direction: direction, device: device)
        if let provider = list.provider, type == .busAddress {
            return DMAScatterTable(
                list: list, segments: list.map { DMASegment(address: provider.busAddress(of: $0.start), length: $0.length, isBusAddress: true) },
                p2pMapType: type)
        }
        let attrs = type == .throughHostBridge ? attributes.union(.mmio) : attributes
        var segments: [DMASegment] = []
        for range in list {
            segments.append(DMASegment(address: try mapPhys(range, direction: direction, attributes: attrs, device: device), length: range.length))
        }
        return DMAScatterTable(list: list, segments: segments, p2pMapType: type)
    }

    public func unmapScatterList(_ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError)
    {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "vendor unmap_sg") }
    }

    public func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}
    public func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}

    public func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress {
        PhysicalAddress(address.rawValue)
    }
}

/// The same ops with a bug vendors really ship: the DMA mask is never checked, so a 32-bit device
/// is handed addresses above 4 GiB (on hardware its top address bits are dropped and it scribbles
/// over low memory). The suite must catch exactly that.
public struct MaskIgnoringOps: DMAOps {
    private let base = IdentityOps()
    public init() {}
    public var name: String { "vendor-mask-ignoring" }
    public var p2pSupported: Bool { true }

    public func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAAddress
    {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "vendor map_phys") }
        try checkMemoryKind(range, attributes: attributes, device: device)
        return DMAAddress(range.start.rawValue)  // the bug: no dma_capable() check
    }

    public func unmapPhys(_ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError)
    { try base.unmapPhys(address, length: length, direction: direction, attributes: attributes, device: device) }

    public func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAScatterTable
    {
        let type = try checkScatterList(list, direction: direction, device: device)
        if list.isPeerToPeer, type == .busAddress {
            return try base.mapScatterList(list, direction: direction, attributes: attributes, device: device)
        }
        var segments: [DMASegment] = []
        for range in list {
            segments.append(DMASegment(address: try mapPhys(range, direction: direction, attributes: attributes, device: device), length: range.length))
        }
        return DMAScatterTable(list: list, segments: segments, p2pMapType: type)
    }

    public func unmapScatterList(_ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError)
    { try base.unmapScatterList(table, direction: direction, attributes: attributes, device: device) }

    public func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}
    public func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}

    public func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress {
        PhysicalAddress(address.rawValue)
    }
}

import DMACore

/// How an importer's mapping of a buffer reaches the memory: host pages through its DMA ops, or
/// peer-to-peer by one of the two routes of `enum pci_p2pdma_map_type`
/// (`include/linux/pci-p2pdma.h`). Its raw value is the name the JSON output and scenario files
/// use (`host`, `bus-address`, `through-host-bridge`).
public enum DMABufMapType: String, Hashable, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// System memory pages, mapped by the importer's ops (direct, IOMMU or swiotlb bounce).
    case host
    /// `PCI_P2PDMA_MAP_BUS_ADDR`: bus addresses through a common upstream bridge, no IOMMU.
    case busAddress = "bus-address"
    /// `PCI_P2PDMA_MAP_THRU_HOST_BRIDGE`: the BAR's physical address mapped as MMIO by the
    /// importer's ops, through the IOMMU if there is one.
    case throughHostBridge = "through-host-bridge"
    /// `PCI_P2PDMA_MAP_NOT_SUPPORTED`: named for completeness; a mapping that succeeded never has
    /// it (the DMA API refuses such a list with `EREMOTEIO`).
    case notSupported = "not-supported"

    /// The map type of a scatter table's P2P route: `nil` (host memory) is ``host``.
    /// - Parameter p2pMapType: the table's P2P map type, `nil` for host memory.
    public init(_ p2pMapType: P2PMapType?) {
        switch p2pMapType {
        case nil: self = .host
        case .busAddress: self = .busAddress
        case .throughHostBridge: self = .throughHostBridge
        case .notSupported: self = .notSupported
        }
    }

    public var description: String { rawValue }
}

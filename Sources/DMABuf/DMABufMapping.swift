import DMAMapping

/// One mapping of an attachment: the table the importer's device uses, and how it was made.
public struct DMABufMapping: Hashable, Sendable {
    /// The mapped scatter-list.
    public let table: DMAScatterTable
    /// Where the memory was when it was mapped.
    public let placement: DMABufPlacement
    /// Bytes copied into bounce buffers by the map.
    public let bouncedBytes: UInt64
    /// Bytes the exporter migrated to make the map possible.
    public let migratedBytes: UInt64
    /// The DMA API call that mapped P2P memory through the host bridge, as the buffer's kernel
    /// has it (`KernelRules.mmioMapCall`: `dma_map_resource` before 6.18,
    /// `dma_map_phys(DMA_ATTR_MMIO)` from 6.18); `nil` for other mappings.
    public let mmioMapCall: String?

    /// Creates a mapping record.
    public init(
        table: DMAScatterTable, placement: DMABufPlacement, bouncedBytes: UInt64 = 0, migratedBytes: UInt64 = 0,
        mmioMapCall: String? = nil
    ) {
        self.table = table
        self.placement = placement
        self.bouncedBytes = bouncedBytes
        self.migratedBytes = migratedBytes
        self.mmioMapCall = mmioMapCall
    }

    /// Whether the device got P2P addresses.
    public var peerToPeer: Bool { table.list.isPeerToPeer }

    /// How the mapping reaches the memory: host pages, or one of the P2P routes.
    public var mapType: DMABufMapType { DMABufMapType(table.p2pMapType) }
}

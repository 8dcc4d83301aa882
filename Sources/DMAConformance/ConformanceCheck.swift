/// One check of the conformance suites, by its stable name: the raw value is what reports, the
/// JSON output and expected-failure lists have always called it (`dma-mask`).
public enum ConformanceCheck: String, Hashable, Sendable, Codable, CaseIterable, CustomStringConvertible {
    // The ops suite (`DMAOpsConformance`), in the order it runs.
    /// `dma_map_phys`: bytes reach the device and come back, in every valid direction.
    case roundTripSingle = "round-trip-single"
    /// `dma_map_sgtable`: the same for discontiguous pages.
    case roundTripScatterList = "round-trip-scatterlist"
    /// `dma_capable`: no address the device uses lies beyond its mask.
    case dmaMask = "dma-mask"
    /// `valid_dma_direction`: `DMA_NONE` refused with nothing changed.
    case directionNone = "direction-none"
    /// Unbacked ranges and address overflow refused, nothing mapped.
    case badRanges = "bad-ranges"
    /// A P2P list only for ops with `p2pSupported`, bus addresses untouched.
    case p2pPolicy = "p2p-policy"
    /// Syncs show device writes to the CPU and CPU writes to the device.
    case syncSemantics = "sync-semantics"
    /// A scatter-list map that runs out of room leaves nothing mapped.
    case allOrNothing = "all-or-nothing"
    /// After unmap no IOVA, page-table entry or bounce slot is left.
    case unmapReleases = "unmap-releases"
    /// The DMA-API debug layer reports nothing for a correct driver.
    case debugClean = "debug-clean"
    /// Map and unmap from many threads: no overlapping live mappings, none lost.
    case concurrency

    // The exporter suite (`DMABufExporterConformance`), in the order it runs.
    /// Attach, map, read the bytes through the device, unmap, detach.
    case attachMapDetach = "attach-map-detach"
    /// A static importer pins the buffer where it can reach it, and it stays there.
    case staticPin = "static-pin"
    /// A move reaches every dynamic importer, and the bytes survive it.
    case invalidateReachesDynamic = "invalidate-reaches-dynamic"

    public var description: String { rawValue }
}

/// The memory a scatter-list describes: all host RAM, or all the BAR of one P2P provider.
public enum ScatterListMemory: Hashable, Sendable, CustomStringConvertible {
    /// System RAM (pages the CPU owns).
    case host
    /// Memory of one peer-to-peer provider (one BAR of one device).
    case peerToPeer(P2PProvider)

    public var description: String {
        switch self {
        case .host: "host memory"
        case .peerToPeer(let provider): "P2P memory of \(provider)"
        }
    }
}

/// A list of physical ranges to map for DMA (`struct scatterlist` / `sg_table`, before mapping).
///
/// Homogeneous by construction, as this package's design and the P2P series that introduced the
/// per-list provider require: either every range is host memory, or every range lies in the BAR of
/// one P2P provider. The only ways to make one are ``host(_:)`` and ``peerToPeer(_:provider:)``,
/// and there is no public way to make a list that mixes the two. (Newer kernels allow mixed lists
/// with a per-segment bus-address flag, `sg_dma_mark_bus_address`; DESIGN.md §7 keeps that out of
/// the default.)
public struct ScatterList: RandomAccessCollection, Hashable, Sendable, CustomStringConvertible {
    /// What kind of memory every range is.
    public let memory: ScatterListMemory
    /// The ranges, in order; never empty.
    public let ranges: PhysicalRangeList

    private init(memory: ScatterListMemory, ranges: PhysicalRangeList) {
        self.memory = memory
        self.ranges = ranges
    }

    /// A list of host-memory ranges.
    /// - Throws: `EINVAL` for an empty list or overlapping ranges; `EOVERFLOW` for a total length
    ///   past 2^64 − 1.
    public static func host(_ ranges: [PhysicalRange]) throws(DMAError) -> ScatterList {
        guard !ranges.isEmpty else {
            throw DMAError(.invalidArgument, .EINVAL, "a scatter-list needs at least one range")
        }
        return ScatterList(memory: .host, ranges: try PhysicalRangeList(ranges))
    }

    /// A list of ranges of one P2P provider's BAR.
    /// - Throws: `EINVAL` for an empty list, overlapping ranges, or a range that is not wholly
    ///   inside the provider's BAR (that would make the list mixed).
    public static func peerToPeer(_ ranges: [PhysicalRange], provider: P2PProvider) throws(DMAError) -> ScatterList {
        guard !ranges.isEmpty else {
            throw DMAError(.invalidArgument, .EINVAL, "a scatter-list needs at least one range")
        }
        for range in ranges where !provider.cpuRange.contains(range) {
            throw DMAError(
                .invalidArgument, .EINVAL,
                "range \(range) is not inside \(provider): a P2P scatter-list holds memory of one provider only")
        }
        return ScatterList(memory: .peerToPeer(provider), ranges: try PhysicalRangeList(ranges))
    }

    /// Whether this is a peer-to-peer list.
    public var isPeerToPeer: Bool {
        if case .peerToPeer = memory { return true }
        return false
    }

    /// The provider of a peer-to-peer list, `nil` for host memory.
    public var provider: P2PProvider? {
        if case .peerToPeer(let provider) = memory { return provider }
        return nil
    }

    /// The total number of bytes.
    public var totalLength: UInt64 { ranges.totalLength }

    public var startIndex: Int { ranges.startIndex }
    public var endIndex: Int { ranges.endIndex }
    public subscript(position: Int) -> PhysicalRange { ranges[position] }

    public var description: String { "\(ranges.count) ranges, \(formatBytes(totalLength)) of \(memory)" }
}

import DMACore

/// The answer for one (provider, client) pair: how P2P traffic travels and how far
/// (`calc_map_type_and_dist`, `drivers/pci/p2pdma.c`).
public struct P2PVerdict: Hashable, Sendable {
    /// How the client reaches the provider.
    public let mapType: P2PMapType
    /// The kernel's hop count (0 same function, 2 two functions of one device, 4 two ports of one
    /// switch, …); -1 when not supported (`pci_p2pdma_distance`).
    public let distance: Int
    /// Whether an unknown ACS state (config space not readable) was taken as redirecting, so the
    /// verdict is conservative.
    public let acsUnknown: Bool

    /// Creates a verdict.
    public init(mapType: P2PMapType, distance: Int, acsUnknown: Bool) {
        self.mapType = mapType
        self.distance = distance
        self.acsUnknown = acsUnknown
    }
}

extension P2PVerdict: Encodable {
    enum CodingKeys: String, CodingKey { case mapType, distance, acsUnknown }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(mapType.rawValue, forKey: .mapType)
        try container.encode(distance, forKey: .distance)
        try container.encode(acsUnknown, forKey: .acsUnknown)
    }
}

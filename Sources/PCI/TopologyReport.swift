import DMACore

/// The stable JSON contract of `dmabuf topo --json` (scripts read it; fields are only ever added):
/// `{"cpu", "hostBridges", "devices": [{"bdf", "vendor", "device", "class", "parent", "hostBridge",
/// "acsRedirect", "bars": [{"index", "start", "size"}]}], "pairs": [{"provider", "client",
/// "distance", "mapType", "link"}], "warnings"}`. `acsRedirect` is `null` where the ACS state is
/// unknown (config space read without root).
public struct TopologyReport: Encodable, Equatable, Sendable {
    /// One BAR.
    public struct BAR: Encodable, Equatable, Sendable {
        public let index: Int
        /// CPU physical start, `0x…`.
        public let start: String
        /// Size in bytes.
        public let size: UInt64
        /// Bus address of the start, `0x…`.
        public let bus: String
        public let prefetchable: Bool
        public let is64Bit: Bool
    }

    /// One device.
    public struct Device: Encodable, Equatable, Sendable {
        public let bdf: String
        public let vendor: String
        public let device: String
        public let `class`: String
        public let className: String
        public let parent: String?
        public let hostBridge: String
        public let portType: String?
        public let acsRedirect: Bool?
        public let acs: String
        public let dmaMaskBits: Int?
        public let numaNode: Int?
        public let driver: String?
        public let bars: [BAR]

        enum CodingKeys: String, CodingKey {
            case bdf, vendor, device, `class`, className, parent, hostBridge, portType, acsRedirect, acs, dmaMaskBits,
                numaNode, driver, bars
        }

        /// Encodes every key, writing `null` for what is unknown, so the shape never changes.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(bdf, forKey: .bdf)
            try c.encode(vendor, forKey: .vendor)
            try c.encode(device, forKey: .device)
            try c.encode(`class`, forKey: .class)
            try c.encode(className, forKey: .className)
            try c.encode(parent, forKey: .parent)
            try c.encode(hostBridge, forKey: .hostBridge)
            try c.encode(portType, forKey: .portType)
            try c.encode(acsRedirect, forKey: .acsRedirect)
            try c.encode(acs, forKey: .acs)
            try c.encode(dmaMaskBits, forKey: .dmaMaskBits)
            try c.encode(numaNode, forKey: .numaNode)
            try c.encode(driver, forKey: .driver)
            try c.encode(bars, forKey: .bars)
        }
    }

    /// One host bridge and its whitelist standing.
    public struct HostBridge: Encodable, Equatable, Sendable {
        public let name: String
        /// The identity device (`pci_host_bridge_dev`).
        public let device: String?
        public let ids: String?
        public let whitelisted: Bool
        public let sameHostBridgeOnly: Bool

        enum CodingKeys: String, CodingKey { case name, device, ids, whitelisted, sameHostBridgeOnly }

        /// Encodes every key, `null` where there is no identity device.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(device, forKey: .device)
            try c.encode(ids, forKey: .ids)
            try c.encode(whitelisted, forKey: .whitelisted)
            try c.encode(sameHostBridgeOnly, forKey: .sameHostBridgeOnly)
        }
    }

    /// One ordered pair of non-bridge devices.
    public struct Pair: Encodable, Equatable, Sendable {
        public let provider: String
        public let client: String
        public let distance: Int
        public let mapType: String
        public let link: String
    }

    public let cpu: String
    public let hostBridges: [HostBridge]
    public let devices: [Device]
    public let pairs: [Pair]
    public let warnings: [String]

    /// Builds the report of a topology; pairs cover every ordered pair of distinct devices whose
    /// base class is not a bridge (0x06).
    public init(_ topology: PCITopology) {
        cpu = topology.cpu.description
        hostBridges = topology.hostBridges.map { name in
            let device = topology.hostBridgeDevice(name)
            let entry = topology.whitelistEntry(name)
            return HostBridge(
                name: name, device: device?.address.description, ids: device?.ids, whitelisted: entry != nil,
                sameHostBridgeOnly: entry?.sameHostBridgeOnly ?? false)
        }
        devices = topology.functions.map { f in
            Device(
                bdf: f.address.description, vendor: hexID(f.vendor), device: hexID(f.device),
                class: "0x" + String(format6: f.classCode), className: f.className, parent: f.parent?.description,
                hostBridge: f.hostBridge, portType: f.portType?.name, acsRedirect: f.acs.redirects, acs: f.acs.description,
                dmaMaskBits: f.dmaMaskBits, numaNode: f.numaNode, driver: f.driver,
                bars: f.bars.map {
                    BAR(index: $0.index, start: hex($0.cpuStart.rawValue), size: $0.size, bus: hex($0.busStart.rawValue),
                        prefetchable: $0.prefetchable, is64Bit: $0.is64Bit)
                })
        }
        let endpoints = topology.functions.filter { !$0.isBridge }
        var pairs: [Pair] = []
        for provider in endpoints {
            for client in endpoints where client.address != provider.address {
                let verdict = (try? topology.verdict(provider: provider.address, client: client.address))
                    ?? P2PVerdict(mapType: .notSupported, distance: -1, acsUnknown: false)
                pairs.append(
                    Pair(
                        provider: provider.address.description, client: client.address.description, distance: verdict.distance,
                        mapType: verdict.mapType.rawValue, link: topology.link(provider, client).rawValue))
            }
        }
        self.pairs = pairs
        warnings = topology.warnings
    }
}

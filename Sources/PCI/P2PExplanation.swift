import DMACore

/// Every step of one pair's verdict, for `dmabuf topo explain`.
public struct P2PExplanation: Sendable, Encodable {
    /// One device on a path.
    public struct Hop: Sendable, Encodable {
        /// Its address.
        public let bdf: PCIAddress
        /// Its port type or class.
        public let role: String
        /// Its ACS state in words.
        public let acs: String
        /// Whether its ACS redirects P2P (`nil`: unknown).
        public let redirects: Bool?
    }

    /// What the whitelist says of a host bridge.
    public struct HostBridgeFacts: Sendable, Encodable {
        /// `pci0000:00`.
        public let name: String
        /// Its identity device (`pci_host_bridge_dev`), if any.
        public let device: String?
        /// That device's `vendor:device`.
        public let ids: String?
        /// Whether it is in `pci_p2pdma_whitelist`.
        public let whitelisted: Bool
        /// Whether the entry has `REQ_SAME_HOST_BRIDGE`.
        public let sameHostBridgeOnly: Bool
        /// The entry's comment.
        public let whitelistEntry: String?
        /// The release the entry came in, when it is listed.
        public let listedFrom: String?
    }

    /// The provider.
    public let provider: PCIAddress
    /// The client.
    public let client: PCIAddress
    /// The provider's walk upwards, ending at the common device when there is one.
    public let providerPath: [Hop]
    /// The client's devices below the common device (its whole chain when there is none).
    public let clientPath: [Hop]
    /// The common upstream device, if any.
    public let commonUpstream: PCIAddress?
    /// Devices on the path whose ACS redirects P2P, in the kernel's order.
    public let acsRedirect: [PCIAddress]
    /// Devices on the path whose ACS state is unknown (counted as redirecting).
    public let acsUnknown: [PCIAddress]
    /// The provider's host bridge.
    public let providerHostBridge: HostBridgeFacts
    /// The client's host bridge.
    public let clientHostBridge: HostBridgeFacts
    /// Whether both hang below one host bridge.
    public let sameHostBridge: Bool
    /// The CPU.
    public let cpu: String
    /// Whether the CPU rule alone allows the host-bridge route (`cpu_supports_p2pdma`, from 5.9).
    public let cpuSupportsP2P: Bool
    /// The outcome.
    public let verdict: P2PVerdict
    /// The `nvidia-smi` link class.
    public let link: LinkClass
    /// What the kernel itself suggests, when P2P is not on the bus-address path.
    public let remedy: String?
}

/// The explanation of one pair, for a person to read.
extension PCITopology {
    /// Works the pair out step by step, exactly as `calc_map_type_and_dist` does, keeping every
    /// step for a person to read.
    /// - Throws: `ENODEV` when either address is not in the topology.
    public func explain(provider providerAddress: PCIAddress, client clientAddress: PCIAddress) throws(DMAError) -> P2PExplanation {
        func require(_ address: PCIAddress, _ role: String) throws(DMAError) -> PCIFunction {
            guard let function = byAddress[address] else {
                throw DMAError(.notFound, .ENODEV, "no PCI device \(address) in this topology, which has \(functions.count): the \(role) is not there")
            }
            return function
        }
        let provider = try require(providerAddress, "provider")
        let client = try require(clientAddress, "client")
        let w = walk(try index(providerAddress), try index(clientAddress), keepSteps: true)
        let common = w.common.map { functions[$0] }
        let acsList = w.acsList.map { functions[$0].address }
        let acsUnknown = w.acsUnknown.map { functions[$0].address }
        let devA = hostBridgeDevice(provider.hostBridge)
        let devB = hostBridgeDevice(client.hostBridge)
        let (verdict, mapType) = (w.verdict, w.verdict.mapType)
        let hostA = provider.hostBridge
        let hostB = client.hostBridge

        func hostBridgeFacts(_ name: String, _ device: PCIFunction?) -> P2PExplanation.HostBridgeFacts {
            let entry = whitelistEntry(name)
            return .init(
                name: name, device: device?.address.description, ids: device?.ids, whitelisted: entry != nil,
                sameHostBridgeOnly: entry?.sameHostBridgeOnly ?? false, whitelistEntry: entry?.comment,
                listedFrom: entry?.introduced.description)
        }

        var remedy: String?
        switch mapType {
        case .busAddress:
            remedy = nil
        case .throughHostBridge, .notSupported:
            if common != nil, !acsList.isEmpty {
                let unknown = acsUnknown.isEmpty ? "" : " (ACS state unknown for \(acsUnknown.map(\.description).joined(separator: ", ")): read config space as root)"
                remedy = "ACS redirect is set between the client and provider; to disable it for this path, add the kernel parameter: pci=disable_acs_redir=\(acsList.map(\.description).joined(separator: ";"))" + unknown
            } else if mapType == .notSupported && kernel < KernelRule.p2pHostBridgeWhitelist.introduced {
                remedy =
                    "Linux \(kernel) routes P2P only below a common bridge, or between AMD Zen root complexes (1022:1450, from 5.2); the host-bridge whitelist came in 5.4 (drivers/pci/p2pdma.c)"
            } else if mapType == .notSupported {
                let culprits = [(hostA, devA), (hostB, devB)].compactMap { name, device in whitelistEntry(name) == nil ? device : nil }
                let cpuRule =
                    cpuRuleMissing
                    ? "the CPU (\(cpu)) is an AMD Zen, but cpu_supports_p2pdma came in 5.9 (Linux \(kernel) here)"
                    : "the CPU (\(cpu)) is not an AMD Zen or newer"
                if let first = culprits.first {
                    remedy = "host bridge \(first.ids) is not whitelisted for P2PDMA (pci_p2pdma_whitelist in drivers/pci/p2pdma.c), and \(cpuRule)"
                    if let later = P2PHostBridgeWhitelist.anyRelease(vendor: first.vendor, device: first.device), later.introduced > kernel {
                        remedy! += "; its table lists \(later.ids) (\(later.comment)) from Linux \(later.introduced): this kernel is \(kernel)"
                    }
                } else if devA == nil || devB == nil {
                    remedy = "the host bridge has no identity device (no device at 00.0 and no root port first on the root bus), so it cannot be whitelisted"
                } else {
                    remedy = "host bridges \(hostA) and \(hostB) are whitelisted only for traffic below one host bridge (REQ_SAME_HOST_BRIDGE)"
                }
            }
        }

        return P2PExplanation(
            provider: provider.address, client: client.address,
            providerPath: w.providerPath.map { hop(functions[$0]) }, clientPath: w.clientPath.map { hop(functions[$0]) },
            commonUpstream: common?.address, acsRedirect: acsList, acsUnknown: acsUnknown,
            providerHostBridge: hostBridgeFacts(hostA, devA), clientHostBridge: hostBridgeFacts(hostB, devB),
            sameHostBridge: hostA == hostB, cpu: cpu.description, cpuSupportsP2P: cpuSupportsP2P,
            verdict: verdict, link: link(provider, client), remedy: remedy)
    }

    private func hop(_ function: PCIFunction) -> P2PExplanation.Hop {
        P2PExplanation.Hop(
            bdf: function.address, role: function.portType?.name ?? function.className, acs: function.acs.description,
            redirects: function.acs.redirects)
    }
}

import DMACore

/// The P2P rules of `drivers/pci/p2pdma.c` over the topology (`calc_map_type_and_dist`,
/// `pci_p2pdma_map_type`): the walk of one pair and the cache of its verdict.
extension PCITopology {
    /// The verdict for a pair, computed once and then answered from the cache.
    /// - Throws: `ENODEV` when either address is not in the topology.
    public func verdict(provider: PCIAddress, client: PCIAddress) throws(DMAError) -> P2PVerdict {
        let key = Pair(provider: provider, client: client)
        if let cached = cache.withLock({ $0[key] }) { return cached }
        let verdict = walk(try index(provider), try index(client), keepSteps: false).verdict
        cache.withLock { $0[key] = verdict }
        return verdict
    }

    func index(_ address: PCIAddress) throws(DMAError) -> Int {
        guard let index = nodeIndex[address] else {
            throw DMAError(.notFound, .ENODEV, "no PCI device \(address) in this topology")
        }
        return index
    }

    /// The number of pairs in the verdict cache.
    public var cachedVerdicts: Int { cache.withLock { $0.count } }

    /// `pci_p2pdma_map_type` for the mapping layer: a provider's owner and a client by address.
    /// A function that is not in this topology is not supported.
    public func mapType(provider: P2PProvider, client: PCIAddress) -> P2PMapType {
        guard let verdict = try? verdict(provider: provider.owner, client: client) else { return .notSupported }
        return verdict.mapType
    }

    /// One pair worked out as `calc_map_type_and_dist` does it; the steps (indices into
    /// `functions`) are kept only when asked for, for ``explain(provider:client:)``.
    struct Walk {
        var providerPath: [Int] = []
        var clientPath: [Int] = []
        var common: Int?
        var acsList: [Int] = []
        var acsUnknown: [Int] = []
        var verdict = P2PVerdict(mapType: .notSupported, distance: -1, acsUnknown: false)
    }

    /// Walks up from the provider, at each step looking for that device on the client's chain.
    /// ACS is checked on every device of the provider's walk up to and including the common one,
    /// and on the client's chain below the common one (the kernel's two loops); without a common
    /// device the host-bridge rule decides (`host_bridge_whitelist`, `cpu_supports_p2pdma`).
    /// A device on the client's chain is the client's ancestor at its own depth, so the search
    /// needs no list of the chain.
    func walk(_ provider: Int, _ client: Int, keepSteps: Bool) -> Walk {
        var w = Walk()
        var redirects = false
        var unknown = false
        func checkACS(_ index: Int) {
            switch nodes[index].acs {
            case 1:
                redirects = true
                if keepSteps { w.acsList.append(index) }
            case -1:  // conservative: unknown counts as redirecting
                redirects = true
                unknown = true
                if keepSteps {
                    w.acsUnknown.append(index)
                    w.acsList.append(index)
                }
            default: break
            }
        }
        let clientDepth = nodes[client].depth
        func isOnClientChain(_ index: Int) -> Bool {
            let depth = nodes[index].depth
            guard depth <= clientDepth else { return false }
            var step = client
            for _ in 0..<(clientDepth - depth) { step = nodes[step].upstream }
            return step == index
        }
        var a = provider
        var distA = 0
        var distB = 0
        while a >= 0 {
            if keepSteps { w.providerPath.append(a) }
            checkACS(a)
            if isOnClientChain(a) {
                w.common = a
                distB = clientDepth - nodes[a].depth
                break
            }
            distB = clientDepth + 1
            a = nodes[a].upstream
            distA += 1
        }
        var step = client
        while step >= 0 && step != w.common {
            if keepSteps { w.clientPath.append(step) }
            if w.common != nil { checkACS(step) }
            step = nodes[step].upstream
        }
        func whitelisted(_ hostBridge: Int, same: Bool) -> Bool {
            guard let entry = hostBridgeEntries[hostBridge] else { return false }
            return !(entry.sameHostBridgeOnly && !same)
        }
        let (bridgeA, bridgeB) = (nodes[provider].hostBridge, nodes[client].hostBridge)
        let hostBridgeOK =
            bridgeA == bridgeB ? whitelisted(bridgeA, same: true) : whitelisted(bridgeA, same: false) && whitelisted(bridgeB, same: false)
        let mapType: P2PMapType
        var distance = distA + distB
        if w.common != nil && !redirects {
            mapType = .busAddress
        } else if kernel < KernelRule.p2pHostBridgeWhitelist.introduced {
            // 4.20–5.3 (upstream_bridge_distance): ACS redirect on the path refuses the pair; with
            // no common bridge only two AMD Zen root complexes (5.2, root_complex_whitelist) reach
            // each other, 0x1000 further, and mapped by bus address like every P2P page then.
            let amdRootComplexes =
                kernel >= KernelRule.p2pAMDRootComplex.introduced && w.common == nil
                && hostBridgeEntries[bridgeA]?.vendor == P2PHostBridgeWhitelist.amd
                && hostBridgeEntries[bridgeB]?.vendor == P2PHostBridgeWhitelist.amd
            mapType = amdRootComplexes ? .busAddress : .notSupported
            distance += 0x1000
        } else if cpuSupportsP2P || hostBridgeOK {
            mapType = .throughHostBridge
        } else {
            mapType = .notSupported
        }
        w.verdict = P2PVerdict(
            mapType: mapType, distance: mapType == .notSupported ? -1 : distance, acsUnknown: unknown && w.common != nil)
        return w
    }
}

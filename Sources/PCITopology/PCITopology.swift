import DMACore
import Synchronization

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

/// The link class people know from `nvidia-smi topo -m`, for lining the two tools up.
public enum LinkClass: String, Hashable, Sendable, Codable {
    /// The same function.
    case same = "X"
    /// At most one PCIe bridge (a switch counts as one).
    case pix = "PIX"
    /// Several bridges, no host bridge.
    case pxb = "PXB"
    /// Through a PCIe host bridge (the root complex).
    case phb = "PHB"
    /// Across host bridges within one NUMA node.
    case node = "NODE"
    /// Across NUMA nodes.
    case sys = "SYS"
}

/// A machine's PCI topology: host bridges, bridges and endpoints with their BARs and ACS state, the
/// CPU, and the P2P rules of `drivers/pci/p2pdma.c` over them.
///
/// A reference type because it has identity (one machine) and a verdict cache: as the kernel keeps
/// each provider's verdicts in an xarray indexed by client (`map_types`), a pair is computed once
/// and answered from the cache after. Everything else is immutable; the cache is behind a `Mutex`.
public final class PCITopology: P2PTopology, Sendable {
    /// The CPU the host-bridge rule reads.
    public let cpu: CPUInfo
    /// Every function, sorted by address.
    public let functions: [PCIFunction]
    /// Things a reader should know: unreadable config spaces, assumptions made.
    public let warnings: [String]
    private let byAddress: [PCIAddress: PCIFunction]
    /// Every memory BAR as a P2P provider, sorted by CPU address.
    public let providers: [P2PProvider]
    private let cache = ModelMutex<[Pair: P2PVerdict]>([:])

    private struct Pair: Hashable {
        let provider: PCIAddress
        let client: PCIAddress
    }
    private let identities: [String: PCIFunction]

    /// A function as the walk of every verdict sees it: indices and flags, so that no
    /// `PCIFunction` (strings, BAR arrays) is copied on the way.
    private struct Node {
        var upstream: Int  // index of `pci_upstream_bridge`, -1 on a root bus
        var depth: Int  // bridges above it
        var acs: Int8  // 1: redirects P2P, 0: does not, -1: unknown
        var hostBridge: Int  // index into `hostBridgeEntries`
    }

    private let nodes: [Node]  // indexed like `functions`
    private let nodeIndex: [PCIAddress: Int]
    /// Per host bridge: the whitelist entry of its identity device (`pci_host_bridge_dev`), nil
    /// when it has none or is not listed.
    private let hostBridgeEntries: [P2PHostBridgeWhitelist.Entry?]

    /// Builds a topology and checks it.
    /// - Throws: `EINVAL` for a duplicate address, a parent that is not in the topology, a parent
    ///   chain that loops, a host bridge that differs from the parent's, or two BARs that overlap
    ///   (in CPU addresses, or in bus addresses below one host bridge).
    public convenience init(cpu: CPUInfo, functions: [PCIFunction], warnings: [String] = []) throws(DMAError) {
        do { try self.init(checking: cpu, functions: functions, warnings: warnings) } catch { throw error.error }
    }

    /// A check of ``init(cpu:functions:warnings:)`` that failed, with the function it is about, so
    /// that a loader can name the line or the file that function came from.
    struct Problem: Error {
        /// The function the problem is about.
        var address: PCIAddress
        /// Whether it is about the function's BARs (its `resource` file, its `bars:` key).
        var inBARs: Bool
        /// The error.
        var error: DMAError
    }

    /// ``init(cpu:functions:warnings:)``, saying which function a refusal is about.
    init(checking cpu: CPUInfo, functions: [PCIFunction], warnings: [String]) throws(Problem) {
        func problem(_ address: PCIAddress, bars: Bool = false, _ message: String) -> Problem {
            Problem(address: address, inBARs: bars, error: DMAError(.invalidArgument, .EINVAL, message))
        }
        var byAddress: [PCIAddress: PCIFunction] = [:]
        for function in functions {
            guard byAddress[function.address] == nil else {
                throw problem(function.address, "PCI address \(function.address) appears twice")
            }
            byAddress[function.address] = function
        }
        // Each parent link is checked once, and the chains are walked once in all (a function
        // whose chain is known to end on a root bus is not walked again): linear in the number of
        // functions even for a chain 10,000 deep.
        for function in functions {
            guard let parentAddress = function.parent else { continue }
            guard let parent = byAddress[parentAddress] else {
                throw problem(function.address, "the parent \(parentAddress) of \(function.address) is not in the topology")
            }
            guard parent.hostBridge == function.hostBridge else {
                throw problem(
                    function.address,
                    "\(function.address) is below host bridge \(function.hostBridge) but its parent \(parentAddress) is below \(parent.hostBridge)")
            }
        }
        var endsOnRootBus: [PCIAddress: Bool] = [:]  // false while on the walk in progress
        for function in functions where endsOnRootBus[function.address] == nil {
            var path: [PCIAddress] = []
            var current: PCIFunction? = function
            while let node = current, endsOnRootBus[node.address] == nil {
                endsOnRootBus[node.address] = false
                path.append(node.address)
                current = node.parent.flatMap { byAddress[$0] }
            }
            if let node = current, endsOnRootBus[node.address] == false {
                throw problem(function.address, "the parents of \(function.address) form a loop through \(node.address)")
            }
            for address in path { endsOnRootBus[address] = true }
        }
        var providers: [P2PProvider] = []
        var onBus: [(bridge: String, provider: P2PProvider, owner: PCIAddress)] = []
        for function in functions {
            for bar in function.bars {
                let provider: P2PProvider
                do {
                    provider = try P2PProvider(
                        owner: function.address.description, barIndex: bar.index, cpuRange: bar.cpuRange, busAddress: bar.busStart)
                } catch {
                    throw Problem(address: function.address, inBARs: true, error: error)
                }
                providers.append(provider)
                onBus.append((function.hostBridge, provider, function.address))
            }
        }
        onBus.sort { $0.provider.cpuRange.start < $1.provider.cpuRange.start }
        providers = onBus.map(\.provider)
        for (a, b) in zip(onBus, onBus.dropFirst()) where a.provider.cpuRange.overlaps(b.provider.cpuRange) {
            throw problem(b.owner, bars: true, "BARs overlap: \(a.provider) and \(b.provider)")
        }
        // Below one host bridge, bus addresses are one address space too: two BARs at the same bus
        // address would make a device's P2P access reach the other's memory.
        onBus.sort { ($0.bridge, $0.provider.busStart.rawValue) < ($1.bridge, $1.provider.busStart.rawValue) }
        for (a, b) in zip(onBus, onBus.dropFirst()) where a.bridge == b.bridge {
            // Bus ranges do not wrap (P2PProvider checked), so the last byte is start + length - 1.
            let aLast = a.provider.busStart.rawValue + (a.provider.cpuRange.length - 1)
            if b.provider.busStart.rawValue <= aLast {
                throw problem(
                    b.owner, bars: true,
                    "BARs overlap on the bus of host bridge \(a.bridge): \(a.provider) and \(b.provider) (bus \(a.provider.busStart) and \(b.provider.busStart))")
            }
        }
        // pci_host_bridge_dev, once per host bridge: the first device on its root bus, when that is
        // devfn 00.0 or a PCIe root port.
        var firstOnRootBus: [String: PCIFunction] = [:]
        for function in functions where function.parent == nil {
            if let first = firstOnRootBus[function.hostBridge], first.address < function.address { continue }
            firstOnRootBus[function.hostBridge] = function
        }
        let identities = firstOnRootBus.filter { $0.value.address.devfn == 0 || $0.value.portType == .rootPort }
        self.identities = identities
        self.cpu = cpu
        let sorted = functions.sorted { $0.address < $1.address }
        self.functions = sorted
        self.byAddress = byAddress
        var nodeIndex: [PCIAddress: Int] = [:]
        for (index, function) in sorted.enumerated() { nodeIndex[function.address] = index }
        let bridgeNames = Array(Set(sorted.map(\.hostBridge))).sorted()
        let bridgeIndex = Dictionary(uniqueKeysWithValues: bridgeNames.enumerated().map { ($1, $0) })
        self.hostBridgeEntries = bridgeNames.map { name in
            identities[name].flatMap { P2PHostBridgeWhitelist.entry(vendor: $0.vendor, device: $0.device) }
        }
        var nodes = sorted.map { function in
            Node(
                upstream: function.parent.flatMap { nodeIndex[$0] } ?? -1, depth: 0,
                acs: function.acs.redirects.map { $0 ? 1 : 0 } ?? -1, hostBridge: bridgeIndex[function.hostBridge]!)
        }
        // Depths, each chain walked once: up to the first function whose depth is known, then down
        // again along the walked path (the parent chains were checked above: no loop).
        var known = [Bool](repeating: false, count: nodes.count)
        for index in nodes.indices where !known[index] {
            var path: [Int] = []
            var up = index
            while up >= 0 && !known[up] {
                path.append(up)
                up = nodes[up].upstream
            }
            var depth = up >= 0 ? nodes[up].depth + 1 : 0
            for walked in path.reversed() {
                nodes[walked].depth = depth
                known[walked] = true
                depth += 1
            }
        }
        self.nodes = nodes
        self.nodeIndex = nodeIndex
        self.providers = providers
        self.warnings = warnings
    }

    /// The function at `address`, if any.
    public func function(_ address: PCIAddress) -> PCIFunction? { byAddress[address] }

    /// The function at `address`.
    /// - Throws: `DMAError/Code/notFound` (`ENODEV`) naming the address.
    public func require(_ address: PCIAddress) throws(DMAError) -> PCIFunction {
        guard let function = byAddress[address] else {
            throw DMAError(.notFound, .ENODEV, "no PCI device \(address) in this topology")
        }
        return function
    }

    /// The bridge above a function (`pci_upstream_bridge`): `nil` on a root bus.
    public func upstreamBridge(of function: PCIFunction) -> PCIFunction? {
        function.parent.flatMap { byAddress[$0] }
    }

    /// The host bridges, by sysfs name, sorted.
    public var hostBridges: [String] { Array(Set(functions.map(\.hostBridge))).sorted() }

    /// The device that stands for a host bridge in the whitelist (`pci_host_bridge_dev`): the first
    /// device on the root bus if it is devfn 00.0 or a PCIe root port, else none.
    public func hostBridgeDevice(_ hostBridge: String) -> PCIFunction? { identities[hostBridge] }

    /// The P2P provider whose BAR holds `address`.
    /// - Complexity: O(log n) in the number of BARs.
    public func provider(containing address: PhysicalAddress) -> P2PProvider? {
        let low = providers.partitioningIndex { $0.cpuRange.last >= address }
        return low < providers.count && providers[low].cpuRange.contains(address) ? providers[low] : nil
    }

    /// The providers (memory BARs) of one function.
    public func providers(of address: PCIAddress) -> [P2PProvider] {
        providers.filter { $0.owner == address.description }.sorted { $0.barIndex < $1.barIndex }
    }

    // MARK: The P2P rules

    /// The verdict for a pair, computed once and then answered from the cache.
    /// - Throws: `ENODEV` when either address is not in the topology.
    public func verdict(provider: PCIAddress, client: PCIAddress) throws(DMAError) -> P2PVerdict {
        let key = Pair(provider: provider, client: client)
        if let cached = cache.withLock({ $0[key] }) { return cached }
        let verdict = walk(try index(provider), try index(client), keepSteps: false).verdict
        cache.withLock { $0[key] = verdict }
        return verdict
    }

    private func index(_ address: PCIAddress) throws(DMAError) -> Int {
        guard let index = nodeIndex[address] else {
            throw DMAError(.notFound, .ENODEV, "no PCI device \(address) in this topology")
        }
        return index
    }

    /// The number of pairs in the verdict cache.
    public var cachedVerdicts: Int { cache.withLock { $0.count } }

    /// `pci_p2pdma_map_type` for the mapping layer: a provider's owner and a client by name.
    /// Anything that is not a PCI device of this topology is not supported.
    public func mapType(provider: P2PProvider, client: String) -> P2PMapType {
        guard let owner = try? PCIAddress(parsing: provider.owner), let client = try? PCIAddress(parsing: client),
            let verdict = try? verdict(provider: owner, client: client)
        else { return .notSupported }
        return verdict.mapType
    }

    /// One pair worked out as `calc_map_type_and_dist` does it; the steps (indices into
    /// `functions`) are kept only when asked for, for ``explain(provider:client:)``.
    private struct Walk {
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
    private func walk(_ provider: Int, _ client: Int, keepSteps: Bool) -> Walk {
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
        if w.common != nil && !redirects {
            mapType = .busAddress
        } else if cpu.supportsP2PThroughHostBridge || hostBridgeOK {
            mapType = .throughHostBridge
        } else {
            mapType = .notSupported
        }
        w.verdict = P2PVerdict(
            mapType: mapType, distance: mapType == .notSupported ? -1 : distA + distB, acsUnknown: unknown && w.common != nil)
        return w
    }

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
            let entry = device.flatMap { P2PHostBridgeWhitelist.entry(vendor: $0.vendor, device: $0.device) }
            return .init(
                name: name, device: device?.address.description, ids: device?.ids, whitelisted: entry != nil,
                sameHostBridgeOnly: entry?.sameHostBridgeOnly ?? false, whitelistEntry: entry?.comment)
        }

        var remedy: String?
        switch mapType {
        case .busAddress:
            remedy = nil
        case .throughHostBridge, .notSupported:
            if common != nil, !acsList.isEmpty {
                let unknown = acsUnknown.isEmpty ? "" : " (ACS state unknown for \(acsUnknown.map(\.description).joined(separator: ", ")): read config space as root)"
                remedy = "ACS redirect is set between the client and provider; to disable it for this path, add the kernel parameter: pci=disable_acs_redir=\(acsList.map(\.description).joined(separator: ";"))" + unknown
            } else if mapType == .notSupported {
                let culprits = [devA, devB].compactMap { $0 }.filter { P2PHostBridgeWhitelist.entry(vendor: $0.vendor, device: $0.device) == nil }
                if let first = culprits.first {
                    remedy = "host bridge \(first.ids) is not whitelisted for P2PDMA (pci_p2pdma_whitelist in drivers/pci/p2pdma.c), and the CPU (\(cpu)) is not an AMD Zen or newer"
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
            sameHostBridge: hostA == hostB, cpu: cpu.description, cpuSupportsP2P: cpu.supportsP2PThroughHostBridge,
            verdict: verdict, link: link(provider, client), remedy: remedy)
    }

    private func hop(_ function: PCIFunction) -> P2PExplanation.Hop {
        P2PExplanation.Hop(
            bdf: function.address, role: function.portType?.name ?? function.className, acs: function.acs.description,
            redirects: function.acs.redirects)
    }

    /// The `nvidia-smi topo -m` link class of a pair: with a common upstream device, PIX when the
    /// path crosses at most one bridge (a switch, upstream port and downstream ports, counts as
    /// one) and PXB otherwise; without one, PHB below one host bridge, NODE across host bridges in
    /// one NUMA node (or where the node is unknown), SYS across NUMA nodes.
    public func link(_ a: PCIFunction, _ b: PCIFunction) -> LinkClass {
        if a.address == b.address { return .same }
        func chain(_ f: PCIFunction) -> [PCIFunction] {
            var out: [PCIFunction] = []
            var c = upstreamBridge(of: f)
            while let step = c {
                out.append(step)
                c = upstreamBridge(of: step)
            }
            return out
        }
        let chainA = chain(a)
        let chainB = chain(b)
        guard let common = chainA.first(where: { x in chainB.contains { $0.address == x.address } }) else {
            if a.hostBridge == b.hostBridge { return .phb }
            let nodeA = a.numaNode ?? -1
            let nodeB = b.numaNode ?? -1
            return nodeA == nodeB || nodeA < 0 || nodeB < 0 ? .node : .sys
        }
        func bridges(_ chain: [PCIFunction]) -> [PCIAddress] {
            chain.prefix { $0.address != common.address }.map { step in
                step.portType == .downstreamPort ? (step.parent ?? step.address) : step.address
            }
        }
        let switchKey = common.portType == .downstreamPort ? (common.parent ?? common.address) : common.address
        let traversed = Set(bridges(chainA) + bridges(chainB) + [switchKey])
        return traversed.count <= 1 ? .pix : .pxb
    }
}

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
    /// Whether the CPU rule alone allows the host-bridge route (`cpu_supports_p2pdma`).
    public let cpuSupportsP2P: Bool
    /// The outcome.
    public let verdict: P2PVerdict
    /// The `nvidia-smi` link class.
    public let link: LinkClass
    /// What the kernel itself suggests, when P2P is not on the bus-address path.
    public let remedy: String?
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

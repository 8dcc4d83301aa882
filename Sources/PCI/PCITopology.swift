import DMACore
import Synchronization

/// A machine's PCI topology: host bridges, bridges and endpoints with their BARs and ACS state, the
/// CPU, and the P2P rules of `drivers/pci/p2pdma.c` over them.
///
/// A reference type because it has identity (one machine) and a verdict cache: as the kernel keeps
/// each provider's verdicts in an xarray indexed by client (`map_types`), a pair is computed once
/// and answered from the cache after. Everything else is immutable; the cache is behind a `Mutex`.
public final class PCITopology: P2PTopology, Sendable {
    /// The CPU the host-bridge rule reads.
    public let cpu: CPUInfo
    /// The release whose P2PDMA rules the verdicts follow (the whitelist, the CPU rule, the
    /// host bridge's identity device, ACS; `KernelRule`'s `p2pdma-*` rules): the newest unless
    /// the topology was made for another (``following(_:)``).
    public let kernel: KernelVersion
    /// Every function, sorted by address.
    public let functions: [PCIFunction]
    /// Things a reader should know: unreadable config spaces, assumptions made.
    public let warnings: [String]
    let byAddress: [PCIAddress: PCIFunction]
    /// Every memory BAR as a P2P provider, sorted by CPU address.
    public let providers: [P2PProvider]
    /// The verdicts computed so far (`map_types`), read and filled by the P2P rules.
    let cache = ModelMutex<[Pair: P2PVerdict]>([:])

    struct Pair: Hashable {
        let provider: PCIAddress
        let client: PCIAddress
    }
    private let identities: [String: PCIFunction]

    /// A function as the walk of every verdict sees it: indices and flags, so that no
    /// `PCIFunction` (strings, BAR arrays) is copied on the way.
    struct Node {
        var upstream: Int  // index of `pci_upstream_bridge`, -1 on a root bus
        var depth: Int  // bridges above it
        var acs: Int8  // 1: redirects P2P, 0: does not, -1: unknown
        var hostBridge: Int  // index into `hostBridgeEntries`
    }

    let nodes: [Node]  // indexed like `functions`
    let nodeIndex: [PCIAddress: Int]
    /// Per host bridge: the whitelist entry of its identity device (`pci_host_bridge_dev`), nil
    /// when it has none or is not listed.
    let hostBridgeEntries: [P2PHostBridgeWhitelist.Entry?]

    /// Builds a topology and checks it.
    /// - Parameters:
    ///   - cpu: the CPU the host-bridge rule reads.
    ///   - functions: every function.
    ///   - warnings: what a reader should know of how it was read.
    ///   - kernel: the release whose P2PDMA rules the verdicts follow.
    /// - Throws: `EINVAL` for a duplicate address, a parent that is not in the topology, a parent
    ///   chain that loops, a host bridge that differs from the parent's, or two BARs that overlap
    ///   (in CPU addresses, or in bus addresses below one host bridge).
    public convenience init(cpu: CPUInfo, functions: [PCIFunction], warnings: [String] = [], kernel: KernelVersion = .newest) throws(DMAError) {
        do { try self.init(checking: cpu, functions: functions, warnings: warnings, kernel: kernel) } catch { throw error.error }
    }

    /// The same machine judged by the P2PDMA rules of another release (a new topology with its own
    /// verdict cache; `self` when `kernel` is already its release).
    public func following(_ kernel: KernelVersion) -> PCITopology {
        guard kernel != self.kernel else { return self }
        // The functions passed every check when this topology was made, and none depends on the
        // release.
        return try! PCITopology(checking: cpu, functions: functions, warnings: warnings, kernel: kernel)
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
    init(checking cpu: CPUInfo, functions: [PCIFunction], warnings: [String], kernel: KernelVersion = .newest) throws(Problem) {
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
                        owner: function.address, barIndex: bar.index, cpuRange: bar.cpuRange, busAddress: bar.busStart)
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
        // devfn 00.0 or (from 5.19) a PCIe root port. Before 5.14 the kernel looked up devfn 00.0
        // itself (pci_get_slot), which is the same device: a root bus lists its devices by devfn.
        var firstOnRootBus: [String: PCIFunction] = [:]
        for function in functions where function.parent == nil {
            if let first = firstOnRootBus[function.hostBridge], first.address < function.address { continue }
            firstOnRootBus[function.hostBridge] = function
        }
        let rootPortsStand = kernel >= KernelRule.p2pRootPortIdentity.introduced
        let identities = firstOnRootBus.filter { $0.value.address.devfn == 0 || (rootPortsStand && $0.value.portType == .rootPort) }
        self.identities = identities
        self.cpu = cpu
        self.kernel = kernel
        let sorted = functions.sorted { $0.address < $1.address }
        self.functions = sorted
        self.byAddress = byAddress
        var nodeIndex: [PCIAddress: Int] = [:]
        for (index, function) in sorted.enumerated() { nodeIndex[function.address] = index }
        let bridgeNames = Array(Set(sorted.map(\.hostBridge))).sorted()
        let bridgeIndex = Dictionary(uniqueKeysWithValues: bridgeNames.enumerated().map { ($1, $0) })
        self.hostBridgeEntries = bridgeNames.map { name in
            identities[name].flatMap { P2PHostBridgeWhitelist.entry(vendor: $0.vendor, device: $0.device, kernel: kernel) }
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
    /// device on the root bus if it is devfn 00.0 or (from 5.19) a PCIe root port, else none.
    public func hostBridgeDevice(_ hostBridge: String) -> PCIFunction? { identities[hostBridge] }

    /// The whitelist entry of a host bridge's identity device in ``kernel``'s table, if any.
    public func whitelistEntry(_ hostBridge: String) -> P2PHostBridgeWhitelist.Entry? {
        identities[hostBridge].flatMap { P2PHostBridgeWhitelist.entry(vendor: $0.vendor, device: $0.device, kernel: kernel) }
    }

    /// Whether the CPU alone routes P2P through any host bridge under ``kernel``
    /// (`cpu_supports_p2pdma`, from 5.9).
    public var cpuSupportsP2P: Bool { cpu.supportsP2PThroughHostBridge(kernel: kernel) }

    /// Whether the CPU is an AMD Zen or newer but ``kernel`` predates `cpu_supports_p2pdma` (5.9),
    /// so the CPU rule that a newer release would apply does not route anything here.
    public var cpuRuleMissing: Bool { cpu.isAMDZenOrNewer && !cpuSupportsP2P }

    /// The P2P provider whose BAR holds `address`.
    /// - Complexity: O(log n) in the number of BARs.
    public func provider(containing address: PhysicalAddress) -> P2PProvider? {
        let low = providers.partitioningIndex { $0.cpuRange.last >= address }
        return low < providers.count && providers[low].cpuRange.contains(address) ? providers[low] : nil
    }

    /// The providers (memory BARs) of one function.
    public func providers(of address: PCIAddress) -> [P2PProvider] {
        providers.filter { $0.owner == address }.sorted { $0.barIndex < $1.barIndex }
    }
}

import DMACore
import PCI
import Testing

/// The verdict walk works on indices and depths (no function copied); this holds it to the
/// kernel's algorithm written plainly over `PCIFunction`s (`calc_map_type_and_dist` and
/// `host_bridge_whitelist`, drivers/pci/p2pdma.c) on random trees.
@Suite("Verdicts on random trees equal a plain reading of calc_map_type_and_dist")
struct RandomTreeTests {
    /// The kernel's two loops, as plainly as possible: walk up from the provider; at each device
    /// look for it on the client's chain; ACS on the provider's walk up to and including the common
    /// device and on the client's chain below it; without a common device the host-bridge rule.
    static func reference(_ t: PCITopology, _ provider: PCIFunction, _ client: PCIFunction) -> P2PVerdict {
        var clientChain: [PCIFunction] = []
        var step: PCIFunction? = client
        while let s = step {
            clientChain.append(s)
            step = t.upstreamBridge(of: s)
        }
        var acs = false
        var unknown = false
        func check(_ f: PCIFunction) {
            if f.acs.redirects != false { acs = true }
            if f.acs.redirects == nil { unknown = true }
        }
        var a: PCIFunction? = provider
        var distA = 0
        var distB = clientChain.count
        var common: PCIFunction?
        while let current = a {
            check(current)
            if let index = clientChain.firstIndex(where: { $0.address == current.address }) {
                common = current
                distB = index
                break
            }
            a = t.upstreamBridge(of: current)
            distA += 1
        }
        if let common {
            for s in clientChain.prefix(while: { $0.address != common.address }) { check(s) }
        }
        func listed(_ f: PCIFunction, same: Bool) -> Bool {
            guard let device = t.hostBridgeDevice(f.hostBridge),
                let entry = P2PHostBridgeWhitelist.entry(vendor: device.vendor, device: device.device)
            else { return false }
            return same || !entry.sameHostBridgeOnly
        }
        let same = provider.hostBridge == client.hostBridge
        let hostOK = same ? listed(provider, same: true) : listed(provider, same: false) && listed(client, same: false)
        let type: P2PMapType =
            common != nil && !acs ? .busAddress : (t.cpuSupportsP2P || hostOK ? .throughHostBridge : .notSupported)
        return P2PVerdict(mapType: type, distance: type == .notSupported ? -1 : distA + distB, acsUnknown: unknown && common != nil)
    }

    /// A random machine: two or three host bridges, each a random tree up to five bridges deep,
    /// with random ACS states and identity devices (whitelisted, same-host-bridge-only, unknown, none).
    static func randomTopology(seed: UInt64, cpu: CPUInfo) throws -> PCITopology {
        var rng = SplitMix64(seed: seed)
        func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        var functions: [PCIFunction] = []
        let identityIDs: [(UInt16, UInt16)?] = [(0x8086, 0x2030), (0x8086, 0x3c00), (0x8086, 0x1234), nil]
        for domain in 0..<(2 + pick(2)) {
            let hostBridge = "pci\(String(format4: UInt16(domain))):00"
            var bus: UInt8 = 0
            var nodes: [(address: PCIAddress, depth: Int)] = []
            if let ids = identityIDs[pick(identityIDs.count)] {
                let root = try PCIAddress(domain: UInt32(domain), bus: 0, device: 0, function: 0)
                functions.append(PCIFunction(address: root, vendor: ids.0, device: ids.1, classCode: 0x060000, parent: nil, hostBridge: hostBridge))
            }
            for i in 0..<(3 + pick(12)) {
                let parent = nodes.isEmpty || pick(4) == 0 ? nil : nodes[pick(nodes.count)]
                if let parent, parent.depth >= 5 { continue }
                bus &+= 1
                let address = try PCIAddress(domain: UInt32(domain), bus: parent == nil ? 0 : bus, device: UInt8(1 + i % 30), function: 0)
                let acs: ACSState = [.absent, .unknown, .present(offset: 0x148, capability: 0x7f, control: 0x1d), .present(offset: 0x148, capability: 0x7f, control: 0x01)][pick(4)]
                functions.append(
                    PCIFunction(
                        address: address, vendor: 0x1000, device: UInt16(i), classCode: 0x060400, parent: parent?.address,
                        hostBridge: hostBridge, portType: .downstreamPort, acs: acs))
                nodes.append((address, (parent?.depth ?? -1) + 1))
            }
        }
        return try PCITopology(cpu: cpu, functions: functions)
    }

    @Test("every ordered pair of 60 random machines, for an Intel and an AMD Zen CPU", arguments: [CPUInfo(vendor: .intel, family: 6), CPUInfo(vendor: .amd, family: 0x19)])
    func randomTrees(_ cpu: CPUInfo) throws {
        var pairs = 0
        for seed in UInt64(1)...60 {
            let t = try Self.randomTopology(seed: seed, cpu: cpu)
            for a in t.functions {
                for b in t.functions {
                    let expected = Self.reference(t, a, b)
                    #expect(try t.verdict(provider: a.address, client: b.address) == expected, "seed \(seed): \(a.address) → \(b.address)")
                    #expect(try t.explain(provider: a.address, client: b.address).verdict == expected)
                    pairs += 1
                }
            }
        }
        #expect(pairs > 5000)
    }
}

extension String {
    init(format4 value: UInt16) {
        let digits = String(value, radix: 16)
        self = String(repeating: "0", count: 4 - digits.count) + digits
    }
}

/// A small deterministic generator (SplitMix64) so that the random trees repeat exactly.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

import DMACore

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

extension PCITopology {
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

import ArgumentParser
import DMACore
import Foundation
import LinuxDMABuf
import PCI

/// Where a topology comes from: `--sysfs DIR` (default `/sys`) or `--file F`, and the CPU.
struct TopologySource: ParsableArguments {
    @Option(name: .customLong("sysfs"), help: ArgumentHelp("Read the PCI topology from a sysfs tree or a copy of one.", valueName: "DIR"))
    var sysfs: String?

    @Option(name: .customLong("file"), help: ArgumentHelp("Read the PCI topology from a YAML topology file (docs/topology.md).", valueName: "F"))
    var file: String?

    @Option(help: ArgumentHelp("The CPU as VENDOR:FAMILY (intel:0x6, amd:0x19); default: /proc/cpuinfo, or the file's cpu: key.", valueName: "VENDOR:FAMILY"))
    var cpu: String?

    func validate() throws {
        if sysfs != nil && file != nil { throw ValidationError("give --sysfs or --file, not both") }
    }

    /// Loads the topology, mapping every failure to a ``CLIError`` that names the file and its errno.
    func load() throws -> PCITopology {
        let explicitCPU: CPUInfo?
        do { explicitCPU = try cpu.map { try CPUInfo(parsing: $0) } } catch let error as DMAError {
            throw CLIError(error.message + " (--cpu)", errno: error.errno)
        }
        let hostCPU = explicitCPU ?? Self.hostCPU()
        do {
            if let file {
                return try YAMLTopology.load(
                    try InputFile.read(file, what: "the topology file"), file: file, cpu: hostCPU, overrideCPU: explicitCPU != nil)
            }
            let progress = ProgressLine("reading \(sysfs ?? "/sys")")
            defer { progress.finish() }
            return try SysfsTopologyLoader.load(root: sysfs ?? "/sys", cpu: hostCPU, progress: progress.update)
        } catch {
            throw CLIError(error)
        }
    }

    static func hostCPU() -> CPUInfo {
        guard let data = FileManager.default.contents(atPath: "/proc/cpuinfo"),
            let cpu = CPUInfo.parse(procCPUInfo: String(decoding: data, as: UTF8.self))
        else { return CPUInfo(vendor: .other, family: 0) }
        return cpu
    }
}

extension DMABufCommand {
    /// `dmabuf topo`: the PCI topology and the kernel's P2P verdicts.
    package struct Topo: ParsableCommand {
        package static let configuration = CommandConfiguration(
            abstract: "Show the PCI topology and the kernel's P2P verdicts (drivers/pci/p2pdma.c).",
            discussion: """
                Examples:
                  dmabuf topo                                   # this machine's /sys
                  dmabuf topo --sysfs Tests/PCITests/Fixtures/h200-vm --cpu intel:0x6 --pairs
                  dmabuf topo --file topo.yaml --json
                  dmabuf topo --sysfs /sys --export-yaml > topo.yaml
                  dmabuf topo explain 0000:04:00.0 0000:05:00.0 --file topo.yaml
                """,
            subcommands: [Show.self, Explain.self],
            defaultSubcommand: Show.self
        )
        package init() {}

        /// `dmabuf topo [show]`.
        package struct Show: ParsableCommand {
            package static let configuration = CommandConfiguration(
                commandName: "show",
                abstract: "Print the topology as a tree (and with --pairs, every P2P verdict).",
                discussion: """
                    Examples:
                      dmabuf topo show --sysfs /sys --pairs
                      dmabuf topo --file topo.yaml --cpu amd:0x19 --json
                    """
            )
            @OptionGroup var source: TopologySource
            @Flag(help: "Also print every ordered pair of non-bridge devices: map type, distance, nvidia-smi link class.")
            var pairs = false
            @Flag(help: "Print the JSON report (always with pairs).")
            var json = false
            @Flag(name: .customLong("export-yaml"), help: "Print the topology as a YAML topology file instead.")
            var exportYAML = false
            @Flag(help: "On the live machine: make the kernel judge every pair of a p2pmem provider and a block-device client with a real transfer (root), next to the model (dmabuf p2p test).")
            var verify = false
            @Flag(help: "With --verify: read the kernel's own map type with a kprobe on pci_p2pdma_map_type.")
            var kprobe = false
            @OptionGroup var kernel: KernelOption

            package init() {}

            package func run() throws {
                let rules = try kernel.rules()
                // With --verify the running kernel judges, so the model follows its release unless told otherwise.
                let release = rules?.version ?? (verify ? KernelConfig.runningVersion() : .newest)
                let topology = try source.load().following(release)
                if verify {
                    guard source.file == nil else { throw CLIError("--verify asks the running kernel: give a sysfs tree (the default /sys), not --file") }
                    try verifyEveryPair(sysfs: source.sysfs ?? "/sys", topology: topology, kprobe: kprobe, json: json)
                } else if exportYAML {
                    print(YAMLTopology.export(topology), terminator: "")
                } else if json {
                    try printJSON(WithKernelRules(value: TopologyReport(topology), rules: rules))
                } else {
                    print(renderTopology(topology, pairs: pairs), terminator: "")
                    if let rules { print(renderKernelRules(rules), terminator: "") }
                    print(renderRunningKernelFacts(sysfs: source.file == nil ? source.sysfs ?? "/sys" : nil), terminator: "")
                }
            }
        }

        /// `dmabuf topo explain PROVIDER CLIENT`.
        package struct Explain: ParsableCommand {
            package static let configuration = CommandConfiguration(
                abstract: "Explain the P2P verdict for one provider and one client, hop by hop, with the remedy.",
                discussion: """
                    Examples:
                      dmabuf topo explain 0000:00:06.0 0000:00:05.0 --sysfs Tests/PCITests/Fixtures/h200-vm
                      dmabuf topo explain 04:00.0 05:00.0 --file topo.yaml --json
                    """
            )
            @Argument(help: "The device whose memory is shared (BDF).") var provider: String
            @Argument(help: "The device that does the DMA (BDF).") var client: String
            @OptionGroup var source: TopologySource
            @Flag(help: "Print the explanation as JSON.") var json = false
            @OptionGroup var kernel: KernelOption

            package init() {}

            package func run() throws {
                let rules = try kernel.rules()
                let topology = try source.load().following(rules?.version ?? .newest)
                let explanation: P2PExplanation
                func address(_ text: String, _ role: String) throws -> PCIAddress {
                    do { return try PCIAddress(parsing: text) } catch { throw CLIError("<\(role)> \(error.message)", errno: error.errno) }
                }
                do {
                    explanation = try topology.explain(provider: try address(provider, "provider"), client: try address(client, "client"))
                } catch let error as DMAError {
                    throw CLIError(
                        error.message + " (arguments: <provider> '\(ErrorText.printable(provider))', <client> '\(ErrorText.printable(client))')",
                        errno: error.errno)
                }
                if json {
                    try printJSON(WithKernelRules(value: explanation, rules: rules))
                } else {
                    print(renderExplanation(explanation, topology: topology), terminator: "")
                    if let rules { print(renderKernelRules(rules), terminator: "") }
                    print(renderRunningKernelFacts(sysfs: source.file == nil ? source.sysfs ?? "/sys" : nil), terminator: "")
                }
            }
        }
    }
}

/// The topology as a tree like `lspci -t`, then the verdict matrix when asked.
func renderTopology(_ topology: PCITopology, pairs: Bool) -> String {
    var out = "CPU \(topology.cpu): "
    out +=
        topology.cpuSupportsP2P
        ? "AMD Zen or newer, so P2P through the host bridge is allowed (cpu_supports_p2pdma)\n"
        : topology.cpuRuleMissing
            ? "an AMD Zen, but Linux \(topology.kernel) has no cpu_supports_p2pdma (5.9): P2P through a host bridge needs a whitelisted host bridge\n"
            : "P2P through a host bridge needs a whitelisted host bridge (cpu_supports_p2pdma is false)\n"
    let tree = TreeIndex(topology)
    for bridge in topology.hostBridges {
        out += "\n\(bridge)"
        if let device = topology.hostBridgeDevice(bridge) {
            let entry = topology.whitelistEntry(bridge)
            out += "  host bridge \(device.address.short) [\(device.ids)]: "
            out += entry.map { "whitelisted (\($0.comment)\($0.sameHostBridgeOnly ? ", same host bridge only" : ""))" } ?? "not on the P2PDMA whitelist"
        } else {
            out += "  no identity device (nothing at 00.0, no root port first): cannot be whitelisted"
        }
        out += "\n"
        renderTree(roots: tree.roots[bridge] ?? [], children: tree.children, topology, into: &out)
    }
    if pairs {
        let endpoints = topology.functions.filter { !$0.isBridge }
        out += "\nP2P verdicts (rows: provider, columns: client): B = bus address, H = through the host bridge,\n"
        out += "- = not supported; the number is the kernel's distance; in brackets the nvidia-smi link class.\n\n"
        out += pad("", 10) + endpoints.map { pad($0.address.short, 12) }.joined() + "\n"
        for provider in endpoints {
            out += pad(provider.address.short, 10)
            for client in endpoints {
                if client.address == provider.address {
                    out += pad("X", 12)
                    continue
                }
                let verdict = try? topology.verdict(provider: provider.address, client: client.address)
                let code: String
                switch verdict?.mapType {
                case .busAddress?: code = "B\(verdict!.distance)"
                case .throughHostBridge?: code = "H\(verdict!.distance)"
                default: code = "-"
                }
                out += pad(code + (verdict?.acsUnknown == true ? "?" : "") + " [\(topology.link(provider, client).rawValue)]", 12)
            }
            out += "\n"
        }
        if topology.functions.contains(where: { $0.acs == .unknown }) {
            out += "? = ACS state unknown on the path, taken as redirecting (conservative)\n"
        }
    }
    if !topology.warnings.isEmpty {
        out += "\nWarnings:\n" + topology.warnings.map { "  - \(ErrorText.message($0))\n" }.joined()
    }
    return out
}

/// Each function's children and each host bridge's roots (functions with no parent), in the
/// topology's order, found in one pass instead of a scan of every function per function.
struct TreeIndex {
    var roots: [String: [Int]] = [:]
    var children: [[Int]]

    init(_ topology: PCITopology) {
        var index: [PCIAddress: Int] = [:]
        index.reserveCapacity(topology.functions.count)
        for (i, function) in topology.functions.enumerated() { index[function.address] = i }
        children = Array(repeating: [], count: topology.functions.count)
        for (i, function) in topology.functions.enumerated() {
            if let parent = function.parent {
                if let p = index[parent] { children[p].append(i) }
            } else {
                roots[function.hostBridge, default: []].append(i)
            }
        }
    }
}

/// Levels of the tree drawn with indentation; deeper ones are drawn at this depth with their
/// level written out, so that a 10,000-deep chain prints in linear size, not quadratic.
let maxDrawnDepth = 64

/// Draws the subtrees under `roots` like `lspci -t`, iteratively (a chain 10,000 deep needs no
/// stack), each function's children in the topology's order.
/// - Complexity: O(n) in the number of functions (plus their BARs).
func renderTree(roots: [Int], children: [[Int]], _ topology: PCITopology, into out: inout String) {
    let box = Terminal.boxDrawing
    // A stack of functions still to draw, with their depth and whether each is its parent's last child.
    var stack: [(index: Int, depth: Int, last: Bool)] = roots.indices.reversed().map { (roots[$0], 0, $0 == roots.count - 1) }
    // The drawn prefix of each open level: "   " below a last child, "│  " otherwise.
    var levels: [Bool] = []  // levels[d]: whether the ancestor at depth d was a last child
    while let (index, depth, last) = stack.popLast() {
        levels.removeSubrange(min(depth, levels.count)...)
        let function = topology.functions[index]
        var prefix = ""
        let drawn = min(depth, maxDrawnDepth)
        for d in (depth - drawn)..<depth { prefix += levels[d] ? "   " : (box ? "│  " : "|  ") }
        if depth > maxDrawnDepth { prefix = "[level \(depth)] " + prefix }
        let branch = last ? (box ? "└─" : "\\-") : (box ? "├─" : "+-")
        var line = prefix + branch + " " + function.address.short + "  " + function.className + " [" + function.ids + "]"
        if let port = function.portType, port != .endpoint { line += " (\(port.name))" }
        var facts: [String] = []
        if let driver = function.driver { facts.append(ErrorText.printable(driver)) }  // from a file: no raw control bytes
        if let bits = function.dmaMaskBits { facts.append("\(bits)-bit DMA") }
        if let node = function.numaNode, node >= 0 { facts.append("NUMA \(node)") }
        facts.append(function.acs.description)
        line += "  " + facts.joined(separator: ", ") + "\n"
        let childPrefix = prefix + (last ? "   " : (box ? "│  " : "|  "))
        for bar in function.bars {
            line += childPrefix + "   BAR\(bar.index) \(formatBytes(bar.size)) at \(bar.cpuStart)"
            if bar.busStart.rawValue != bar.cpuStart.rawValue { line += " (bus \(bar.busStart))" }
            line += bar.is64Bit ? ", 64-bit" : ", 32-bit"
            line += bar.prefetchable ? ", prefetchable\n" : "\n"
        }
        out += line
        levels.append(last)
        let kids = children[index]
        for (i, child) in kids.enumerated().reversed() { stack.append((child, depth + 1, i == kids.count - 1)) }
    }
}

/// `dmabuf topo explain` in words.
func renderExplanation(_ e: P2PExplanation, topology: PCITopology) -> String {
    func name(_ address: PCIAddress) -> String {
        guard let f = topology.function(address) else { return address.description }
        return "\(address) (\(f.className) [\(f.ids)])"
    }
    func hops(_ list: [P2PExplanation.Hop]) -> String {
        list.map { "  \($0.bdf)  \(pad($0.role, 22))\($0.acs)\n" }.joined()
    }
    var out = "P2P from provider \(name(e.provider))\n      to client   \(name(e.client))\n\n"
    out += "Provider's walk up (pci_upstream_bridge), ACS checked at every step:\n" + hops(e.providerPath)
    if let common = e.commonUpstream {
        let fromProvider = e.providerPath.count - 1
        out += "Client's devices below the common one, ACS checked:\n" + (e.clientPath.isEmpty ? "  (none: the client is the common device)\n" : hops(e.clientPath))
        out += "\nCommon upstream device: \(common), \(fromProvider) hop(s) up from the provider and \(e.clientPath.count) from the client.\n"
        out += "ACS redirect (RR|CR|EC) on the path: "
        out += e.acsRedirect.isEmpty ? "none, so the switch routes P2P by bus address.\n" : e.acsRedirect.map(\.description).joined(separator: ", ") + " — traffic is sent up to the host bridge.\n"
        if !e.acsUnknown.isEmpty {
            out += "ACS unknown (config space not readable; taken as redirecting): \(e.acsUnknown.map(\.description).joined(separator: ", "))\n"
        }
    } else {
        out += "Client's walk up:\n" + hops(e.clientPath)
        out += "\nCommon upstream device: none, so the route is through the host bridge.\n"
    }
    if e.commonUpstream == nil || !e.acsRedirect.isEmpty {
        func facts(_ h: P2PExplanation.HostBridgeFacts) -> String {
            guard let device = h.device, let ids = h.ids else { return "\(h.name): no identity device (nothing at 00.0, no root port first on the root bus)" }
            let standing = h.whitelisted ? "on the whitelist (\(h.whitelistEntry ?? "")\(h.sameHostBridgeOnly ? ", same host bridge only" : ""))" : "not on the whitelist"
            return "\(h.name): identity device \(device) [\(ids)], \(standing)"
        }
        out += "Host bridge of the provider: \(facts(e.providerHostBridge))\n"
        if !e.sameHostBridge { out += "Host bridge of the client:   \(facts(e.clientHostBridge))\n" }
        out += "CPU \(e.cpu): "
        out +=
            e.cpuSupportsP2P
            ? "AMD Zen or newer, P2P through the host bridge allowed.\n"
            : topology.cpuRuleMissing
                ? "an AMD Zen, but Linux \(topology.kernel) has no cpu_supports_p2pdma (5.9).\n"
                : "not an AMD Zen or newer (cpu_supports_p2pdma is false).\n"
    }
    out += "\nVerdict: \(e.verdict.mapType.rawValue), distance \(e.verdict.distance)"
    out += " (nvidia-smi link class: \(e.link.rawValue))\n"
    if let remedy = e.remedy { out += "Remedy: \(remedy)\n" }
    return out
}

/// `dmabuf probe`'s PCI topology summary ([B]): host bridges and their whitelist standing, the
/// devices with memory BARs (P2P providers), and how many pairs of endpoints can do P2P and how.
package struct TopologyProbeSection: ProbeSection {
    package var key: String { "pciTopology" }
    package var title: String { "PCI topology (drivers/pci/p2pdma.c rules)" }
    /// Creates the section.
    package init() {}

    struct Value: Encodable, Sendable {
        var cpu: String?
        var devices: Int
        var providers: Int
        var hostBridges: [TopologyReport.HostBridge]
        var pairs: [String: Int]
        var warnings: [String]
        var error: String?
    }

    package func gather(_ environment: ProbeEnvironment) -> ProbeSectionReport {
        let topology: PCITopology
        do {
            topology = try SysfsTopologyLoader.load(root: environment.sysRoot, cpu: TopologySource.hostCPU())
                .following(KernelConfig.runningVersion(procRoot: environment.procRoot))
        } catch {
            let message = "\(error)"
            return ProbeSectionReport(
                lines: ["unreadable: \(message)"],
                value: Value(cpu: nil, devices: 0, providers: 0, hostBridges: [], pairs: [:], warnings: [], error: message))
        }
        let report = TopologyReport(topology)
        var counts: [String: Int] = [:]
        for pair in report.pairs { counts[pair.mapType, default: 0] += 1 }
        var lines = ["\(topology.functions.count) PCI functions, \(topology.providers.count) memory BARs (P2P providers), CPU \(topology.cpu)"]
        for bridge in report.hostBridges {
            lines.append("\(bridge.name): " + (bridge.ids.map { "identity \($0), " } ?? "no identity device, ") + (bridge.whitelisted ? "whitelisted" : "not whitelisted"))
        }
        lines.append("endpoint pairs: " + ["bus-address", "through-host-bridge", "not-supported"].map { "\(counts[$0, default: 0]) \($0)" }.joined(separator: ", "))
        lines += topology.warnings.map { "warning: \(ErrorText.message($0))" }
        lines.append("details: dmabuf topo --pairs; dmabuf topo explain PROVIDER CLIENT")
        return ProbeSectionReport(
            lines: lines,
            value: Value(
                cpu: topology.cpu.description, devices: topology.functions.count, providers: topology.providers.count,
                hostBridges: report.hostBridges, pairs: counts, warnings: topology.warnings, error: nil))
    }
}

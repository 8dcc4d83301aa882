import DMACore
package import Yams

/// Topology files in YAML (`docs/topology.md` documents the format with an annotated example), and
/// the YAML of any loaded topology (`dmabuf topo --export-yaml`), which loads back to the same
/// topology.
public enum YAMLTopology {
    static let topKeys: Set<String> = ["cpu", "devices", "warnings"]
    static let deviceKeys: Set<String> = [
        "bdf", "vendor", "device", "class", "parent", "hostBridge", "port", "acs", "bars", "dmaMask", "numaNode", "driver",
    ]
    static let barKeys: Set<String> = ["index", "start", "size", "bus", "prefetchable", "bits"]
    static let acsKeys: Set<String> = ["offset", "capability", "control"]

    /// Parses a topology file.
    /// - Note: About the arguments:
    ///   - cpu: the CPU to use when the file has no `cpu:` key (or to override it when `override`).
    /// - Throws: ``InputFileError`` with file, line and column: unknown keys, bad values, a
    ///   duplicate BDF, an unknown parent, overlapping BARs.
    public static func load(_ text: String, file: String, cpu defaultCPU: CPUInfo, overrideCPU: Bool = false) throws(InputFileError) -> PCITopology {
        let reader = YAMLReader(file: file)
        return try load(node: try reader.root(text), file: file, cpu: defaultCPU, overrideCPU: overrideCPU)
    }

    /// Loads a topology from a node of a YAML document already read, such as the `inline:`
    /// topology of a scenario: errors name `file` and the node's own line and column in it.
    /// - Throws: as ``load(_:file:cpu:overrideCPU:)``.
    package static func load(node root: Node, file: String, cpu defaultCPU: CPUInfo, overrideCPU: Bool = false) throws(InputFileError) -> PCITopology {
        try InputFileError.loading(file, line: root.mark?.line, column: root.mark?.column) {
            try loadChecked(node: root, file: file, cpu: defaultCPU, overrideCPU: overrideCPU)
        }
    }

    private static func loadChecked(node root: Node, file: String, cpu defaultCPU: CPUInfo, overrideCPU: Bool) throws -> PCITopology {
        let reader = YAMLReader(file: file)
        let top = try reader.mapping(root, allowed: topKeys, what: "the topology")
        var cpu = defaultCPU
        if let node = top["cpu"], !overrideCPU {
            do { cpu = try CPUInfo(parsing: try reader.string(node, what: "cpu")) } catch let error as DMAError {
                throw reader.error(node, error)
            }
        }
        var warnings: [String] = []
        if let node = top["warnings"] {
            warnings = try reader.sequence(node, what: "warnings").map { try reader.string($0, what: "a warning") }
        }
        guard let devicesNode = top["devices"] else { throw reader.error(root, "a topology needs a 'devices:' list") }
        struct Pending {
            var function: PCIFunction
            var explicitHostBridge: Bool
            var node: Node
        }
        var pending: [PCIAddress: Pending] = [:]
        var order: [PCIAddress] = []
        for node in try reader.sequence(devicesNode, what: "devices") {
            let map = try reader.mapping(node, allowed: deviceKeys, what: "a device")
            func required(_ key: String) throws -> Node {
                guard let value = map[key] else { throw reader.error(node, "a device needs '\(key):'") }
                return value
            }
            let bdfNode = try required("bdf")
            let address: PCIAddress
            do { address = try PCIAddress(parsing: try reader.string(bdfNode, what: "bdf")) } catch let error as DMAError {
                throw reader.error(bdfNode, error)
            }
            if pending[address] != nil { throw reader.error(bdfNode, "duplicate device \(address)") }
            let vendor = UInt16(try reader.number(try required("vendor"), what: "vendor", max: 0xffff))
            let device = UInt16(try reader.number(try required("device"), what: "device", max: 0xffff))
            let classCode = UInt32(try reader.number(try required("class"), what: "class", max: 0xff_ffff))
            var parent: PCIAddress?
            if let parentNode = map["parent"], !reader.isNull(parentNode) {
                do { parent = try PCIAddress(parsing: try reader.string(parentNode, what: "parent")) } catch let error as DMAError {
                    throw reader.error(parentNode, error)
                }
            }
            var hostBridge = "pci" + hex4(address.domain) + ":" + hex2(address.bus)
            if let node = map["hostBridge"] {
                hostBridge = try reader.string(node, what: "hostBridge")
                guard SysfsTopologyLoader.isHostBridgeName(hostBridge) else {
                    throw reader.error(node, "hostBridge '\(ErrorText.printable(hostBridge))' is not of the form pciDDDD:BB")
                }
            }
            var portType: PCIePortType?
            if let node = map["port"] {
                let name = try reader.string(node, what: "port")
                guard let type = PCIePortType(name: name) else {
                    throw reader.error(node, "unknown port '\(ErrorText.printable(name))'; one of \(PCIePortType.allCases.map(\.name).joined(separator: ", "))")
                }
                portType = type
            }
            var acs = ACSState.absent
            if let node = map["acs"] {
                if node.scalar != nil {
                    if try reader.string(node, what: "acs") == "unknown" {
                        acs = .unknown
                    } else {
                        acs = .present(offset: 0, capability: 0, control: UInt16(try reader.number(node, what: "acs control", max: 0xffff)))
                    }
                } else {
                    let m = try reader.mapping(node, allowed: acsKeys, what: "acs")
                    guard let control = m["control"] else { throw reader.error(node, "acs needs 'control:'") }
                    acs = .present(
                        offset: Int(try m["offset"].map { try reader.number($0, what: "acs offset", max: 0xfff) } ?? 0),
                        capability: UInt16(try m["capability"].map { try reader.number($0, what: "acs capability", max: 0xffff) } ?? 0),
                        control: UInt16(try reader.number(control, what: "acs control", max: 0xffff)))
                }
            }
            var bars: [PCIBAR] = []
            if let node = map["bars"] {
                for barNode in try reader.sequence(node, what: "bars") {
                    let b = try reader.mapping(barNode, allowed: barKeys, what: "a BAR")
                    guard let indexNode = b["index"], let startNode = b["start"], let sizeNode = b["size"] else {
                        throw reader.error(barNode, "a BAR needs index, start and size")
                    }
                    let index = Int(try reader.number(indexNode, what: "BAR index", max: 5))
                    if bars.contains(where: { $0.index == index }) { throw reader.error(indexNode, "BAR \(index) appears twice") }
                    let bits = try b["bits"].map { try reader.number($0, what: "BAR bits") } ?? 64
                    guard bits == 32 || bits == 64 else { throw reader.error(b["bits"], "BAR bits must be 32 or 64") }
                    do {
                        bars.append(
                            try PCIBAR(
                                index: index, cpuStart: PhysicalAddress(try reader.number(startNode, what: "BAR start")),
                                size: try reader.number(sizeNode, what: "BAR size"),
                                busStart: try b["bus"].map { DMAAddress(try reader.number($0, what: "BAR bus address")) },
                                is64Bit: bits == 64,
                                prefetchable: try b["prefetchable"].map { try reader.bool($0, what: "prefetchable") } ?? true))
                    } catch let error as DMAError {
                        throw reader.error(barNode, error)
                    }
                }
            }
            let dmaMask = try map["dmaMask"].map { Int(try reader.number($0, what: "dmaMask", max: 64)) }
            let numaNode = try map["numaNode"].map { try reader.integer($0, what: "numaNode") }
            let driver = try map["driver"].map { try reader.string($0, what: "driver") }
            let function = PCIFunction(
                address: address, vendor: vendor, device: device, classCode: classCode, parent: parent, hostBridge: hostBridge,
                portType: portType, acs: acs, bars: bars, dmaMaskBits: dmaMask, numaNode: numaNode, driver: driver)
            pending[address] = Pending(function: function, explicitHostBridge: map["hostBridge"] != nil, node: node)
            order.append(address)
        }
        // A device below a bridge inherits the bridge's host bridge unless it names one. Iterative,
        // each chain walked once (answers are kept), and a loop is named where it is found.
        var resolved: [PCIAddress: String] = [:]
        func resolvedHostBridge(_ address: PCIAddress) throws -> String {
            var chain: [PCIAddress] = []
            var onChain: Set<PCIAddress> = []
            var current = address
            var answer: String
            while true {
                if let known = resolved[current] {
                    answer = known
                    break
                }
                let entry = pending[current]!
                guard let parent = entry.function.parent, !entry.explicitHostBridge else {
                    answer = entry.function.hostBridge
                    chain.append(current)
                    break
                }
                guard onChain.insert(current).inserted else {
                    throw reader.error(entry.node, "the parents of \(address) form a loop through \(current)")
                }
                guard pending[parent] != nil else {
                    throw reader.error(entry.node, "parent \(parent) of \(current) is not in the file")
                }
                chain.append(current)
                current = parent
            }
            for walked in chain { resolved[walked] = answer }
            return answer
        }
        var functions: [PCIFunction] = []
        for address in order {
            let f = pending[address]!.function
            functions.append(
                PCIFunction(
                    address: f.address, vendor: f.vendor, device: f.device, classCode: f.classCode, parent: f.parent,
                    hostBridge: try resolvedHostBridge(address), portType: f.portType, acs: f.acs, bars: f.bars,
                    dmaMaskBits: f.dmaMaskBits, numaNode: f.numaNode, driver: f.driver))
        }
        do {
            return try PCITopology(checking: cpu, functions: functions, warnings: warnings)
        } catch {
            // Named at the device the check is about (its bars: key for a BAR problem).
            let node = pending[error.address].map { entry in
                error.inBARs ? (entry.node.mapping?["bars"] ?? entry.node) : entry.node
            }
            throw reader.error(node, error.error)
        }
    }

    /// Writes a topology as YAML that ``load(_:file:cpu:overrideCPU:)`` reads back to the same topology.
    public static func export(_ topology: PCITopology) -> String {
        var out = "# PCI topology written by dmabuf topo --export-yaml (format: docs/topology.md)\n"
        out += "cpu: \(topology.cpu)\n"
        if !topology.warnings.isEmpty {
            out += "warnings:\n"
            for warning in topology.warnings { out += "  - \(quote(warning))\n" }
        }
        out += "devices:\n"
        for f in topology.functions {
            out += "  - bdf: \"\(f.address)\"\n"
            out += "    vendor: \(hexID(f.vendor))\n"
            out += "    device: \(hexID(f.device))\n"
            out += "    class: 0x\(String(format6: f.classCode))   # \(f.className)\n"
            out += "    parent: " + (f.parent.map { "\"\($0)\"" } ?? "null") + "\n"
            out += "    hostBridge: \(f.hostBridge)\n"
            if let port = f.portType { out += "    port: \(port.name)\n" }
            switch f.acs {
            case .absent: break
            case .unknown: out += "    acs: unknown\n"
            case .present(let offset, let capability, let control):
                out += "    acs: {offset: \(hex(UInt64(offset))), capability: \(hexID(capability)), control: \(hexID(control))}\n"
            }
            if let mask = f.dmaMaskBits { out += "    dmaMask: \(mask)\n" }
            if let node = f.numaNode { out += "    numaNode: \(node)\n" }
            if let driver = f.driver { out += "    driver: \(quote(driver))\n" }
            if !f.bars.isEmpty {
                out += "    bars:\n"
                for bar in f.bars {
                    out += "      - {index: \(bar.index), start: \(hex(bar.cpuStart.rawValue)), size: \(hex(bar.size)), bus: \(hex(bar.busStart.rawValue)), prefetchable: \(bar.prefetchable), bits: \(bar.is64Bit ? 64 : 32)}\n"
                }
            }
        }
        return out
    }

    /// `text` as a YAML double-quoted scalar that loads back to the same text: `\` and `"`
    /// escaped, and every character YAML does not allow raw (control characters, a byte-order mark,
    /// C1 controls) written as a `\u`/`\U` escape (a driver name or a warning may hold any).
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x5c: out += "\\\\"
            case 0x22: out += "\\\""
            case 0x20...0x7e, 0xa0...0xd7ff, 0xe000...0xfefe, 0xff00...0xfffd, 0x10000...:
                out.unicodeScalars.append(scalar)
            default:
                let digits = String(scalar.value, radix: 16)
                out += scalar.value > 0xffff
                    ? "\\U" + String(repeating: "0", count: 8 - digits.count) + digits
                    : "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
            }
        }
        return out + "\""
    }
}

extension String {
    init(format6 value: UInt32) {
        let digits = String(value, radix: 16)
        self = String(repeating: "0", count: Swift.max(0, 6 - digits.count)) + digits
    }

    func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let range = rest.range(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}

import DMACore
import DMADevices
import PCI
internal import Yams

/// A scenario file (`dmabuf simulate FILE`, format in `docs/scenarios.md`): a topology, buffers
/// with their exporters, importers with their device, ops and flags, and steps.
public struct Scenario: Sendable {
    /// Where the topology comes from.
    public enum TopologySource: Sendable, Equatable {
        /// The built-in machine of the stories.
        case builtIn
        /// A YAML topology file (relative paths are taken from the scenario's folder).
        case file(String)
        /// A sysfs tree or a copy of one.
        case sysfs(String)
        /// A topology written inside the scenario.
        case inline(String)
    }

    /// An exporter kind.
    public enum ExporterKind: String, Sendable, CaseIterable {
        case gpuVRAM = "gpu-vram"
        case vfioBAR = "vfio-bar"
        case systemHeap = "system-heap"
    }

    /// A buffer to create.
    public struct Buffer: Sendable {
        public var name: String
        public var exporter: ExporterKind
        public var device: String?
        public var bar: Int?
        public var size: UInt64?
        public var ranges: [VFIOBARExporter.Range]
        public var fill: Fill?
        public var line: Int?
    }

    /// What bytes to write or expect.
    public enum Fill: Sendable, Equatable {
        /// Every byte the same.
        case byte(UInt8)
        /// A deterministic pattern from a seed.
        case pattern(UInt8)

        /// The bytes, as the memory generates them (never stored whole).
        public var pattern: BytePattern {
            switch self {
            case .byte(let b): .byte(b)
            case .pattern(let seed): .pattern(seed)
            }
        }

        /// The bytes for `count` bytes at `offset` of a buffer.
        public func bytes(offset: UInt64, count: Int) -> [UInt8] { pattern.bytes(offset: offset, count: count) }
    }

    /// An importer kind.
    public enum ImporterKind: String, Sendable, CaseIterable {
        /// A device that attaches, maps and moves bytes (GPU, HFI-style NIC, capture card…).
        case device
        /// RDMA dynamic MRs (`ib_umem_dmabuf_get`): map on access, invalidated on moves.
        case rdmaDynamic = "rdma-dynamic"
        /// RDMA pinned MRs (`ib_umem_dmabuf_get_pinned`).
        case rdmaPinned = "rdma-pinned"
    }

    /// An importer to create.
    public struct Importer: Sendable {
        public var name: String
        public var device: String
        public var kind: ImporterKind
        public var ops: String
        public var dynamic: Bool
        public var allowPeerToPeer: Bool
        public var dmaMask: Int?
        public var swiotlbSlots: Int?
        public var line: Int?
    }

    /// What a step must give.
    public struct Expectation: Sendable, Equatable {
        public var ok: Bool?
        public var errno: String?
        public var placement: String?
        public var mapType: String?
        public var peerToPeer: Bool?
        public var notified: [String]?
        public var bouncedBytes: UInt64?
        public var migratedBytes: UInt64?
        public var segments: Int?
    }

    /// One step.
    public struct Step: Sendable {
        /// The operation.
        public enum Op: String, Sendable, CaseIterable {
            case attach, map, unmap, detach, sync, evict, revoke, restore
            case deviceWrite = "device-write"
            case deviceRead = "device-read"
            case cpuWrite = "cpu-write"
            case cpuRead = "cpu-read"
            case rawMap = "raw-map"
        }

        public var op: Op
        public var importer: String?
        public var buffer: String?
        public var direction: DMADirection
        public var offset: UInt64
        public var length: UInt64?
        public var fill: Fill?
        public var expectBytes: Fill?
        public var forCPU: Bool
        public var reason: VFIOBARExporter.RevokeReason
        public var expect: Expectation?
        public var line: Int?
    }

    public var title: String?
    public var topology: TopologySource
    public var cpu: String?
    public var buffers: [Buffer]
    public var importers: [Importer]
    public var steps: [Step]
    /// Stop at the first step that fails unexpectedly (default: go on).
    public var stopOnError: Bool
    /// The kernel whose rules the scenario runs under (`kernel: 6.12`); `nil`: the newest
    /// (`KernelRules.newest`) unless the runner is given one.
    public var kernel: KernelRules? = nil
}

extension Scenario {
    static let topKeys: Set<String> = ["title", "topology", "cpu", "buffers", "importers", "steps", "onError", "kernel"]
    static let bufferKeys: Set<String> = ["name", "exporter", "device", "bar", "size", "ranges", "fill", "pattern"]
    static let importerKeys: Set<String> = ["name", "device", "kind", "ops", "dynamic", "allowPeerToPeer", "dmaMask", "swiotlbSlots"]
    static let stepKeys: Set<String> = [
        "importer", "buffer", "direction", "offset", "length", "byte", "pattern", "expectByte", "expectPattern", "for", "reason", "expect",
    ]
    static let expectKeys: Set<String> = [
        "ok", "errno", "placement", "mapType", "peerToPeer", "notified", "bouncedBytes", "migratedBytes", "segments",
    ]

    /// Parses a scenario.
    /// - Throws: `InputFileError` (the PCI module's one load error, as a topology file's) naming the
    ///   file, line and column of anything malformed, with its errno (`EINVAL`; `E2BIG` past the
    ///   YAML limits).
    public static func parse(_ text: String, file: String) throws(InputFileError) -> Scenario {
        try InputFileError.loading(file) { try parseChecked(text, file: file) }
    }

    private static func parseChecked(_ text: String, file: String) throws -> Scenario {
        let r = YAMLReader(file: file)
        let root = try r.root(text)
        let top = try r.mapping(root, allowed: topKeys, what: "a scenario")
        var scenario = Scenario(title: nil, topology: .builtIn, cpu: nil, buffers: [], importers: [], steps: [], stopOnError: false)
        if let node = top["title"] { scenario.title = try r.string(node, what: "title") }
        if let node = top["cpu"] { scenario.cpu = try r.string(node, what: "cpu") }
        if let node = top["kernel"] {
            let text = try r.string(node, what: "kernel")
            do { scenario.kernel = try KernelRules(parsing: text) } catch { throw r.error(node, error) }
        }
        if let node = top["onError"] {
            switch try r.string(node, what: "onError") {
            case "stop": scenario.stopOnError = true
            case "continue": scenario.stopOnError = false
            default: throw r.error(node, "onError must be 'continue' or 'stop'")
            }
        }
        if let node = top["topology"] {
            if node.scalar != nil {
                guard try r.string(node, what: "topology") == "builtin" else {
                    throw r.error(node, "topology must be 'builtin', {file: F}, {sysfs: DIR} or {inline: {...}}")
                }
            } else {
                let m = try r.mapping(node, allowed: ["file", "sysfs", "inline"], what: "topology")
                guard m.count == 1 else { throw r.error(node, "topology takes exactly one of file, sysfs, inline") }
                if let f = m["file"] { scenario.topology = .file(try r.string(f, what: "topology file")) }
                if let s = m["sysfs"] { scenario.topology = .sysfs(try r.string(s, what: "topology sysfs")) }
                if let i = m["inline"] {
                    // Checked here, so that its errors name this file and the line in it; the
                    // runner loads the same text again.
                    let cpu = scenario.cpu.flatMap { try? CPUInfo(parsing: $0) }
                    _ = try YAMLTopology.load(
                        node: i, file: file, cpu: cpu ?? CPUInfo(vendor: .intel, family: 6), overrideCPU: cpu != nil)
                    scenario.topology = .inline(try Yams.serialize(node: i))
                }
            }
        }
        var names: Set<String> = []
        func uniqueName(_ node: Node) throws -> String {
            let name = try r.string(node, what: "name")
            guard !name.isEmpty, names.insert(name).inserted else { throw r.error(node, "the name '\(ErrorText.printable(name))' is empty or used twice") }
            return name
        }
        func fill(_ m: YAMLMapping, byteKey: String, patternKey: String) throws -> Fill? {
            if m[byteKey] != nil, let p = m[patternKey] {
                throw r.error(p, "'\(byteKey)' and '\(patternKey)' are both given; give one (a byte fills every byte, a pattern varies them)")
            }
            if let b = m[byteKey] { return .byte(UInt8(try r.number(b, what: byteKey, max: 0xff))) }
            if let p = m[patternKey] { return .pattern(UInt8(try r.number(p, what: patternKey, max: 0xff))) }
            return nil
        }
        for node in try top["buffers"].map({ try r.sequence($0, what: "buffers") }) ?? [] {
            let m = try r.mapping(node, allowed: bufferKeys, what: "a buffer")
            guard let nameNode = m["name"], let exporterNode = m["exporter"] else { throw r.error(node, "a buffer needs name and exporter") }
            let kindText = try r.string(exporterNode, what: "exporter")
            guard let kind = ExporterKind(rawValue: kindText) else {
                throw r.error(exporterNode, "unknown exporter '\(ErrorText.printable(kindText))'; one of \(ExporterKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var ranges: [VFIOBARExporter.Range] = []
            for rangeNode in try m["ranges"].map({ try r.sequence($0, what: "ranges") }) ?? [] {
                let rm = try r.mapping(rangeNode, allowed: ["offset", "length"], what: "a range")
                guard let o = rm["offset"], let l = rm["length"] else { throw r.error(rangeNode, "a range needs offset and length") }
                ranges.append(.init(offset: try r.number(o, what: "offset"), length: try r.number(l, what: "length")))
            }
            scenario.buffers.append(
                Buffer(
                    name: try uniqueName(nameNode), exporter: kind, device: try m["device"].map { try r.string($0, what: "device") },
                    bar: try m["bar"].map { Int(try r.number($0, what: "bar", max: 5)) }, size: try m["size"].map { try r.number($0, what: "size") },
                    ranges: ranges, fill: try fill(m, byteKey: "fill", patternKey: "pattern"), line: node.mark?.line))
        }
        for node in try top["importers"].map({ try r.sequence($0, what: "importers") }) ?? [] {
            let m = try r.mapping(node, allowed: importerKeys, what: "an importer")
            guard let nameNode = m["name"], let deviceNode = m["device"] else { throw r.error(node, "an importer needs name and device") }
            var kind = ImporterKind.device
            if let k = m["kind"] {
                let text = try r.string(k, what: "kind")
                guard let parsed = ImporterKind(rawValue: text) else {
                    throw r.error(k, "unknown importer kind '\(ErrorText.printable(text))'; one of \(ImporterKind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                kind = parsed
            }
            scenario.importers.append(
                Importer(
                    name: try uniqueName(nameNode), device: try r.string(deviceNode, what: "device"), kind: kind,
                    ops: try m["ops"].map { try r.string($0, what: "ops") } ?? "direct",
                    dynamic: try m["dynamic"].map { try r.bool($0, what: "dynamic") } ?? (kind != .device),
                    allowPeerToPeer: try m["allowPeerToPeer"].map { try r.bool($0, what: "allowPeerToPeer") } ?? (kind != .device),
                    dmaMask: try m["dmaMask"].map { Int(try r.number($0, what: "dmaMask", max: 64)) },
                    swiotlbSlots: try m["swiotlbSlots"].map { Int(try r.number($0, what: "swiotlbSlots", max: 1 << 24)) },
                    line: node.mark?.line))
        }
        for node in try top["steps"].map({ try r.sequence($0, what: "steps") }) ?? [] {
            guard let pair = node.mapping, pair.count == 1, let (opNode, argsNode) = pair.first.map({ ($0.key, $0.value) }) else {
                throw r.error(node, "a step is one operation: {OP: {arguments}}, e.g. - map: {importer: nic, buffer: vram}")
            }
            let opText = try r.string(opNode, what: "step")
            guard let op = Step.Op(rawValue: opText) else {
                throw r.error(opNode, "unknown step '\(ErrorText.printable(opText))'; one of \(Step.Op.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let args = r.isNull(argsNode) ? YAMLMapping.empty : try r.mapping(argsNode, allowed: stepKeys, what: "the arguments of \(opText)")
            var step = Step(
                op: op, importer: try args["importer"].map { try r.string($0, what: "importer") },
                buffer: try args["buffer"].map { try r.string($0, what: "buffer") }, direction: .bidirectional,
                offset: try args["offset"].map { try r.number($0, what: "offset") } ?? 0,
                length: try args["length"].map { try r.number($0, what: "length") },
                fill: try fill(args, byteKey: "byte", patternKey: "pattern"),
                expectBytes: try fill(args, byteKey: "expectByte", patternKey: "expectPattern"), forCPU: true, reason: .reset,
                expect: nil, line: opNode.mark?.line)
            if let d = args["direction"] {
                let text = try r.string(d, what: "direction")
                guard let direction = DMADirection(name: text) else {
                    throw r.error(d, "unknown direction '\(ErrorText.printable(text))'; one of bidirectional, to-device, from-device, none")
                }
                step.direction = direction
            }
            if let f = args["for"] {
                switch try r.string(f, what: "for") {
                case "cpu": step.forCPU = true
                case "device": step.forCPU = false
                default: throw r.error(f, "sync is 'for: cpu' or 'for: device'")
                }
            }
            if let reasonNode = args["reason"] {
                let text = try r.string(reasonNode, what: "reason")
                guard let reason = VFIOBARExporter.RevokeReason(rawValue: text) else {
                    throw r.error(reasonNode, "unknown reason '\(ErrorText.printable(text))'; one of \(VFIOBARExporter.RevokeReason.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                step.reason = reason
            }
            if let e = args["expect"] {
                let em = try r.mapping(e, allowed: expectKeys, what: "expect")
                step.expect = Expectation(
                    ok: try em["ok"].map { try r.bool($0, what: "ok") }, errno: try em["errno"].map { try r.string($0, what: "errno") },
                    placement: try em["placement"].map { try r.string($0, what: "placement") },
                    mapType: try em["mapType"].map { try r.string($0, what: "mapType") },
                    peerToPeer: try em["peerToPeer"].map { try r.bool($0, what: "peerToPeer") },
                    notified: try em["notified"].map { try r.sequence($0, what: "notified").map { try r.string($0, what: "a name") } },
                    bouncedBytes: try em["bouncedBytes"].map { try r.number($0, what: "bouncedBytes") },
                    migratedBytes: try em["migratedBytes"].map { try r.number($0, what: "migratedBytes") },
                    segments: try em["segments"].map { Int(try r.number($0, what: "segments", max: 1 << 30)) })
                if let errno = step.expect?.errno, Errno(name: errno) == nil {
                    throw r.error(em["errno"], "unknown errno name '\(ErrorText.printable(errno))'")
                }
            }
            scenario.steps.append(step)
        }
        return scenario
    }
}

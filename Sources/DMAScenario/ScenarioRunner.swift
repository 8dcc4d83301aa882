import DMABuf
import DMACore
import DMADevices
import DMAMapping
import Foundation
import PCITopology

/// The outcome of one step, as `dmabuf simulate --json` prints it.
public struct StepResult: Sendable, Encodable {
    public var index: Int
    public var op: String
    public var ok: Bool
    /// The errno's name, `null` on success.
    public var errno: String?
    public var message: String
    public var line: Int?
    // For a map (and for attach/access that maps): what the importer got.
    public var peerToPeer: Bool?
    public var placement: String?
    public var mapType: String?
    public var segments: Int?
    public var bouncedBytes: UInt64?
    public var migratedBytes: UInt64?
    /// For evict and revoke: the importers told.
    public var notified: [String]?
    /// `met`, or what was expected and not met; `null` when the step has no expectation.
    public var expectation: String?

    enum CodingKeys: String, CodingKey {
        case index, op, ok, errno, message, line, peerToPeer, placement, mapType, segments, bouncedBytes, migratedBytes, notified,
            expectation
    }

    /// Encodes `errno` always (null on success) and the rest when present.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(op, forKey: .op)
        try c.encode(ok, forKey: .ok)
        try c.encode(errno, forKey: .errno)
        try c.encode(message, forKey: .message)
        try c.encodeIfPresent(line, forKey: .line)
        try c.encodeIfPresent(peerToPeer, forKey: .peerToPeer)
        try c.encodeIfPresent(placement, forKey: .placement)
        try c.encodeIfPresent(mapType, forKey: .mapType)
        try c.encodeIfPresent(segments, forKey: .segments)
        try c.encodeIfPresent(bouncedBytes, forKey: .bouncedBytes)
        try c.encodeIfPresent(migratedBytes, forKey: .migratedBytes)
        try c.encodeIfPresent(notified, forKey: .notified)
        try c.encodeIfPresent(expectation, forKey: .expectation)
    }

    /// Whether the step went as the scenario says: its expectation met, or (without one) it succeeded.
    public var asExpected: Bool { expectation.map { $0 == "met" } ?? ok }
}

/// A whole run.
public struct ScenarioResult: Sendable {
    /// The scenario's title.
    public var title: String?
    /// One result per step (setup failures come first, with op `create-buffer`/`create-importer`).
    public var steps: [StepResult]
    /// DMA-API debug reports at the end (leaks, mismatches): none in a correct scenario.
    public var debugReports: [String]
    /// The kernel rules the run used when a kernel was named (by the runner's caller or the
    /// scenario's `kernel:`); `nil` when it ran under the default, the newest.
    public var kernel: KernelRules? = nil
    /// Whether every step went as expected and the debug layer reported nothing.
    public var ok: Bool { steps.allSatisfy(\.asExpected) && debugReports.isEmpty }
}

/// Runs scenarios on a ``SimulatedMachine``.
public enum ScenarioRunner {
    /// Loads the scenario's topology (relative paths from `baseDirectory`) and runs it.
    /// - Throws: `InputFileError` when the topology cannot be loaded.
    /// - Note: `progress` is called after each step with (steps done, steps in all). `kernel`,
    ///   when given, overrides the scenario's `kernel:`; with neither, the newest rules.
    public static func run(
        _ scenario: Scenario, baseDirectory: String = ".", kernel: KernelRules? = nil, progress: ((Int, Int) -> Void)? = nil
    ) throws -> ScenarioResult {
        let cpu = try scenario.cpu.map { try CPUInfo(parsing: $0) }
        let topology: PCITopology
        func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : baseDirectory + "/" + path }
        switch scenario.topology {
        case .builtIn:
            topology = try cpu.map { try YAMLTopology.load(BuiltInTopology.yaml, file: "built-in topology", cpu: $0, overrideCPU: true) }
                ?? BuiltInTopology.load()
        case .file(let path):
            topology = try YAMLTopology.load(
                try InputFile.read(resolve(path), what: "the topology file"), file: resolve(path), cpu: cpu ?? CPUInfo(vendor: .intel, family: 6),
                overrideCPU: cpu != nil)
        case .sysfs(let path):
            topology = try SysfsTopologyLoader.load(root: resolve(path), cpu: cpu ?? CPUInfo(vendor: .intel, family: 6))
        case .inline(let yaml):
            topology = try YAMLTopology.load(yaml, file: "inline topology", cpu: cpu ?? CPUInfo(vendor: .intel, family: 6), overrideCPU: cpu != nil)
        }
        let named = kernel ?? scenario.kernel
        var result = Execution(machine: try SimulatedMachine(topology: topology, rules: named ?? .newest), scenario: scenario).run(progress: progress)
        result.kernel = named
        return result
    }
}

/// The state of one run.
final class Execution {
    enum Exported {
        case gpu(GPUVRAMExporter)
        case vfio(VFIOBARExporter)
        case heap(SystemHeapExporter)

        var buffer: DMABuffer {
            switch self {
            case .gpu(let e): e.buffer
            case .vfio(let e): e.buffer
            case .heap(let e): e.buffer
            }
        }
    }

    enum Importing {
        case device(DeviceImporter)
        case rdma(RDMANIC, pinned: Bool)

        var device: DMADevice {
            switch self {
            case .device(let d): d.device
            case .rdma(let nic, _): nic.device
            }
        }
    }

    let machine: SimulatedMachine
    let scenario: Scenario
    var buffers: [String: Exported] = [:]
    var importers: [String: Importing] = [:]
    var memoryRegions: [String: RDMAMemoryRegion] = [:]  // "importer/buffer"
    var results: [StepResult] = []

    init(machine: SimulatedMachine, scenario: Scenario) {
        self.machine = machine
        self.scenario = scenario
    }

    func run(progress: ((Int, Int) -> Void)?) -> ScenarioResult {
        for spec in scenario.buffers { setUp(spec) }
        for spec in scenario.importers { setUp(spec) }
        for (done, step) in scenario.steps.enumerated() {
            progress?(done, scenario.steps.count)
            var result = StepResult(index: results.count, op: step.op.rawValue, ok: true, errno: nil, message: "", line: step.line)
            do {
                try perform(step, &result)
            } catch {
                result.ok = false
                result.errno = error.errno.name
                result.message = error.message
            }
            if let expect = step.expect { result.expectation = check(expect, result) }
            results.append(result)
            if scenario.stopOnError && !result.asExpected { break }
        }
        cleanUp()
        return ScenarioResult(title: scenario.title, steps: results, debugReports: machine.finish().map(\.description))
    }

    // MARK: Setup

    private func setUp(_ spec: Scenario.Buffer) {
        var result = StepResult(index: results.count, op: "create-buffer", ok: true, errno: nil, message: "", line: spec.line)
        do throws(DMAError) {
            func device() throws(DMAError) -> String {
                guard let d = spec.device else { throw DMAError(.invalidArgument, .EINVAL, "buffer \(spec.name): a \(spec.exporter.rawValue) buffer needs 'device:'") }
                return d
            }
            func size() throws(DMAError) -> UInt64 {
                guard let s = spec.size else { throw DMAError(.invalidArgument, .EINVAL, "buffer \(spec.name): a \(spec.exporter.rawValue) buffer needs 'size:'") }
                return s
            }
            let exported: Exported
            switch spec.exporter {
            case .gpuVRAM:
                exported = .gpu(try machine.gpuBuffer(name: spec.name, gpu: try device(), size: try size(), bar: spec.bar))
            case .systemHeap:
                exported = .heap(try machine.heapBuffer(name: spec.name, size: try size()))
            case .vfioBAR:
                let provider = try machine.provider(try device(), bar: spec.bar)
                exported = .vfio(try machine.vfioBuffer(name: spec.name, device: try device(), bar: spec.bar ?? provider.barIndex, ranges: spec.ranges))
            }
            if let fill = spec.fill {
                try cpuFill(exported, offset: 0, count: Int(exported.buffer.size), fill.pattern)
            }
            buffers[spec.name] = exported
            result.message = "\(exported.buffer)"
            result.placement = exported.buffer.exporter.placement.rawValue
        } catch {
            result.ok = false
            result.errno = error.errno.name
            result.message = error.message
        }
        results.append(result)
    }

    private func setUp(_ spec: Scenario.Importer) {
        var result = StepResult(index: results.count, op: "create-importer", ok: true, errno: nil, message: "", line: spec.line)
        do throws(DMAError) {
            let device = try machine.dmaDevice(spec.device, ops: spec.ops, maskBits: spec.dmaMask, swiotlbSlots: spec.swiotlbSlots)
            switch spec.kind {
            case .device:
                importers[spec.name] = .device(
                    DeviceImporter(name: spec.name, device: device, dynamic: spec.dynamic, allowPeerToPeer: spec.allowPeerToPeer))
            case .rdmaDynamic, .rdmaPinned:
                importers[spec.name] = .rdma(RDMANIC(name: spec.name, device: device), pinned: spec.kind == .rdmaPinned)
            }
            result.message =
                "\(spec.name): \(device.name) with \(spec.ops) ops, \(device.mask.bits)-bit mask, \(spec.kind == .device ? (spec.dynamic ? "dynamic" : "static") : spec.kind.rawValue)"
                + (spec.allowPeerToPeer || spec.kind != .device ? ", allows P2P" : "")
        } catch {
            result.ok = false
            result.errno = error.errno.name
            result.message = error.message
        }
        results.append(result)
    }

    private func cleanUp() {
        // Release RDMA registrations left behind (what process exit does); device mappings that
        // were left mapped stay, so the debug layer reports them as leaks.
        for mr in memoryRegions.values { try? mr.deregister() }
    }

    // MARK: Steps

    private func buffer(_ step: Scenario.Step) throws(DMAError) -> Exported {
        guard let name = step.buffer else { throw DMAError(.invalidArgument, .EINVAL, "\(step.op.rawValue) needs 'buffer:'") }
        guard let found = buffers[name] else {
            throw DMAError(.notFound, .ENOENT, "no buffer named '\(name)'; buffers: \(buffers.keys.sorted().joined(separator: ", "))")
        }
        return found
    }

    private func importer(_ step: Scenario.Step) throws(DMAError) -> (String, Importing) {
        guard let name = step.importer else { throw DMAError(.invalidArgument, .EINVAL, "\(step.op.rawValue) needs 'importer:'") }
        guard let found = importers[name] else {
            throw DMAError(.notFound, .ENOENT, "no importer named '\(name)'; importers: \(importers.keys.sorted().joined(separator: ", "))")
        }
        return (name, found)
    }

    private func names(_ attachments: [DMABufAttachment]) -> [String] {
        attachments.compactMap { attachment in
            importers.first { $0.value.device === attachment.device }?.key
        }.sorted()
    }

    private func describe(_ mapping: DMABufMapping, _ result: inout StepResult) {
        result.peerToPeer = mapping.peerToPeer
        result.placement = mapping.placement.rawValue
        result.mapType = mapping.mapTypeName
        result.segments = mapping.table.segments.count
        result.bouncedBytes = mapping.bouncedBytes
        result.migratedBytes = mapping.migratedBytes
    }

    private func length(_ step: Scenario.Step, _ buffer: DMABuffer) throws(DMAError) -> Int {
        let length = step.length ?? (buffer.size > step.offset ? buffer.size - step.offset : 0)
        guard length > 0, step.offset < buffer.size, length <= buffer.size - step.offset else {
            throw DMAError(.invalidArgument, .EINVAL, "\(length) bytes at offset \(step.offset) do not fit \(buffer.name) (\(buffer.size) bytes)")
        }
        return Int(length)
    }

    private func perform(_ step: Scenario.Step, _ result: inout StepResult) throws(DMAError) {
        switch step.op {
        case .attach:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            switch importing {
            case .device(let importer):
                let attachment = try importer.attach(exported.buffer)
                result.peerToPeer = attachment.peerToPeer
                result.message = "\(name) attached to \(exported.buffer.name) (\(attachment.isDynamic ? "dynamic" : "static")), peer2peer \(attachment.peerToPeer)"
            case .rdma(let nic, let pinned):
                let key = "\(name)/\(exported.buffer.name)"
                guard memoryRegions[key] == nil else { throw DMAError(.busy, .EBUSY, "\(name) already registered \(exported.buffer.name)") }
                let mr = try nic.registerMR(exported.buffer, pinned: pinned)
                memoryRegions[key] = mr
                if let mapping = mr.mapping { describe(mapping, &result) }
                result.message = "\(name) registered \(exported.buffer.name) as a \(pinned ? "pinned MR (pinned and mapped now)" : "dynamic MR (mapped now, as mlx5 does; mapped again on access after an invalidation)")"
            }
        case .map:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            guard case .device(let importer) = importing else {
                throw DMAError(.invalidArgument, .EINVAL, "\(name) is an RDMA NIC: its MRs map at registration (pinned) or on access (dynamic), not with map")
            }
            let mapping = try importer.map(exported.buffer, direction: step.direction)
            describe(mapping, &result)
            result.message = "\(name) mapped \(exported.buffer.name): \(mapping.table.segments.count) segment(s), \(mapping.mapTypeName), \(mapping.placement)"
        case .unmap:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            guard case .device(let importer) = importing else {
                throw DMAError(.invalidArgument, .EINVAL, "\(name) is an RDMA NIC: detach deregisters its MR")
            }
            try importer.unmap(exported.buffer, direction: step.direction)
            result.message = "\(name) unmapped \(exported.buffer.name)"
        case .detach:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            switch importing {
            case .device(let importer): try importer.detach(exported.buffer)
            case .rdma:
                guard let mr = memoryRegions.removeValue(forKey: "\(name)/\(exported.buffer.name)") else {
                    throw DMAError(.noDevice, .ENODEV, "\(name) has no MR of \(exported.buffer.name)")
                }
                try mr.deregister()
            }
            result.message = "\(name) detached from \(exported.buffer.name)"
        case .deviceWrite, .deviceRead:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            let count = try length(step, exported.buffer)
            let write = step.op == .deviceWrite
            // Written as a pattern and read as a comparison, piece by piece: a 32 GiB transfer
            // holds at most a page of host memory.
            let pattern = (step.fill ?? .pattern(1)).pattern
            let expected = step.expectBytes?.pattern
            var mismatch: (index: Int, found: UInt8)?
            switch importing {
            case .device(let importer):
                if write {
                    try importer.deviceFill(pattern, to: exported.buffer, offset: step.offset, count: count)
                } else {
                    mismatch = try importer.deviceCompare(exported.buffer, offset: step.offset, count: count, with: expected)
                }
            case .rdma:
                guard let mr = memoryRegions["\(name)/\(exported.buffer.name)"] else {
                    throw DMAError(.noDevice, .ENODEV, "\(name) has not registered \(exported.buffer.name); attach first")
                }
                let faultsBefore = mr.faultIns
                if write {
                    try mr.fill(pattern, offset: step.offset, count: count)
                } else {
                    mismatch = try mr.compare(offset: step.offset, count: count, with: expected)
                }
                // A dynamic MR maps on its first access after registration or an invalidation.
                if mr.faultIns > faultsBefore, let mapping = mr.mapping {
                    describe(mapping, &result)
                    result.message += " (faulted the MR in: mapped now)"
                }
            }
            result.message = "\(name) \(write ? "wrote" : "read") \(count) bytes at offset \(step.offset) of \(exported.buffer.name)" + result.message
            if !write, let expected {
                try verify(mismatch, expected, step.offset, &result)
            }
        case .cpuWrite:
            let exported = try buffer(step)
            let count = try length(step, exported.buffer)
            try cpuFill(exported, offset: step.offset, count: count, (step.fill ?? .pattern(1)).pattern)
            result.placement = exported.buffer.exporter.placement.rawValue
            result.message = "the CPU wrote \(count) bytes at offset \(step.offset) of \(exported.buffer.name) (\(exported.buffer.exporter.placement))"
        case .cpuRead:
            let exported = try buffer(step)
            let count = try length(step, exported.buffer)
            let expected = step.expectBytes?.pattern
            let mismatch = try cpuCompare(exported, offset: step.offset, count: count, with: expected)
            result.placement = exported.buffer.exporter.placement.rawValue
            result.message = "the CPU read \(count) bytes at offset \(step.offset) of \(exported.buffer.name) (\(exported.buffer.exporter.placement))"
            if let expected {
                try verify(mismatch, expected, step.offset, &result)
            }
        case .sync:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            guard case .device(let importer) = importing else {
                throw DMAError(.invalidArgument, .EINVAL, "\(name) is an RDMA NIC: its MRs are coherent, there is nothing to sync")
            }
            try importer.sync(exported.buffer, forCPU: step.forCPU, direction: step.direction)
            result.message = "\(name) synced \(exported.buffer.name) for the \(step.forCPU ? "CPU" : "device") (\(step.direction))"
        case .evict:
            let exported = try buffer(step)
            guard case .gpu(let gpu) = exported else {
                throw DMAError(.invalidArgument, .EINVAL, "only GPU VRAM buffers are evicted; \(exported.buffer.name) is \(exported.buffer.exporter.exporterName)")
            }
            let before = gpu.migratedBytes
            let told = try exported.buffer.resv.withLock { (context) throws(DMAError) in try gpu.evict(in: context) }
            result.notified = names(told)
            result.placement = gpu.placement.rawValue
            result.migratedBytes = gpu.migratedBytes - before
            result.message = "\(exported.buffer.name) evicted to system memory; told: \(result.notified!.joined(separator: ", "))"
        case .revoke:
            let exported = try buffer(step)
            guard case .vfio(let vfio) = exported else {
                throw DMAError(.invalidArgument, .EINVAL, "only VFIO BAR buffers are revoked; \(exported.buffer.name) is \(exported.buffer.exporter.exporterName)")
            }
            let told = try exported.buffer.resv.withLock { (context) throws(DMAError) in try vfio.revoke(step.reason, in: context) }
            result.notified = names(told)
            result.message = "\(exported.buffer.name) revoked (\(step.reason.rawValue)); told: \(result.notified!.joined(separator: ", "))"
        case .restore:
            let exported = try buffer(step)
            guard case .vfio(let vfio) = exported else {
                throw DMAError(.invalidArgument, .EINVAL, "only VFIO BAR buffers are restored; \(exported.buffer.name) is \(exported.buffer.exporter.exporterName)")
            }
            try vfio.restore()
            result.message = "\(exported.buffer.name): memory enabled again, maps work again"
        case .rawMap:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            let ranges = try exported.buffer.exporter.cpuRanges()
            let list: ScatterList
            switch exported {
            case .gpu(let gpu) where gpu.placement == .vram: list = try ScatterList.peerToPeer(ranges, provider: gpu.heap.provider)
            case .vfio(let vfio): list = try ScatterList.peerToPeer(ranges, provider: vfio.provider)
            default: list = try ScatterList.host(ranges)
            }
            let device = importing.device
            let table = try device.mapScatterList(list, direction: step.direction)
            result.segments = table.segments.count
            result.mapType = table.p2pMapType?.rawValue ?? "host"
            result.peerToPeer = list.isPeerToPeer
            try device.unmapScatterList(table, direction: step.direction)
            result.message = "\(name)'s \(device.ops.name) ops mapped the raw \(list.isPeerToPeer ? "P2P" : "host") list: \(table.segments.count) segment(s)"
        }
    }

    private func verify(_ mismatch: (index: Int, found: UInt8)?, _ expected: BytePattern, _ offset: UInt64, _ result: inout StepResult)
        throws(DMAError)
    {
        if let mismatch {
            let at = UInt64(mismatch.index) + offset
            throw DMAError(
                .ioError, .EIO,
                "byte \(at) is \(hex(UInt64(mismatch.found))), expected \(hex(UInt64(expected.byte(at: at)))): the data did not arrive")
        }
        result.message += "; the bytes are as expected"
    }

    /// The CPU writes `count` bytes of `pattern` at `offset` (inside begin/end CPU access): kept
    /// as the pattern by the memory, so a 6 GiB buffer with a pattern costs no 6 GiB of host memory.
    private func cpuFill(_ exported: Exported, offset: UInt64, count: Int, _ pattern: BytePattern) throws(DMAError) {
        let buffer = exported.buffer
        try buffer.beginCPUAccess(direction: .toDevice)
        try forEachCPUChunk(exported, offset: offset, count: count) { (address, start, length) throws(DMAError) in
            try machine.memory.fill(address, count: length, with: pattern, patternOffset: offset + UInt64(start))
        }
        try buffer.endCPUAccess(direction: .toDevice)
    }

    /// The CPU reads `count` bytes at `offset` and compares them with `pattern` piece by piece
    /// (no pattern: the read is only checked): the first byte that differs, or nil.
    private func cpuCompare(_ exported: Exported, offset: UInt64, count: Int, with pattern: BytePattern?) throws(DMAError)
        -> (index: Int, found: UInt8)?
    {
        let buffer = exported.buffer
        try buffer.beginCPUAccess(direction: .fromDevice)
        var mismatch: (index: Int, found: UInt8)?
        try forEachCPUChunk(exported, offset: offset, count: count) { (address, start, length) throws(DMAError) in
            if let pattern, mismatch == nil {
                if let found = try machine.memory.firstMismatch(address, count: length, with: pattern, patternOffset: offset + UInt64(start)) {
                    mismatch = (start + found.index, found.found)
                }
            } else {
                try machine.memory.checkReadable(address, count: length)
            }
        }
        try buffer.endCPUAccess(direction: .fromDevice)
        return mismatch
    }

    private func forEachCPUChunk(
        _ exported: Exported, offset: UInt64, count: Int, _ body: (PhysicalAddress, Int, Int) throws(DMAError) -> Void
    ) throws(DMAError) {
        var skip = offset
        var done = 0
        for range in try exported.buffer.exporter.cpuRanges() where done < count {
            if skip >= range.length {
                skip -= range.length
                continue
            }
            let chunk = min(Int(range.length - skip), count - done)
            try body(PhysicalAddress(range.start.rawValue + skip), done, chunk)
            done += chunk
            skip = 0
        }
    }

    private func check(_ expect: Scenario.Expectation, _ r: StepResult) -> String {
        var misses: [String] = []
        if let ok = expect.ok, ok != r.ok { misses.append("ok \(ok), got \(r.ok)") }
        if let errno = expect.errno, errno != r.errno { misses.append("errno \(errno), got \(r.errno ?? "none")") }
        if let v = expect.placement, v != r.placement { misses.append("placement \(v), got \(r.placement ?? "none")") }
        if let v = expect.mapType, v != r.mapType { misses.append("mapType \(v), got \(r.mapType ?? "none")") }
        if let v = expect.peerToPeer, v != r.peerToPeer { misses.append("peerToPeer \(v), got \(r.peerToPeer.map(String.init) ?? "none")") }
        if let v = expect.notified, v.sorted() != r.notified { misses.append("notified \(v.sorted()), got \(r.notified ?? [])") }
        if let v = expect.bouncedBytes, v != r.bouncedBytes { misses.append("bouncedBytes \(v), got \(r.bouncedBytes.map(String.init) ?? "none")") }
        if let v = expect.segments, v != r.segments { misses.append("segments \(v), got \(r.segments.map(String.init) ?? "none")") }
        if let v = expect.migratedBytes, v != r.migratedBytes { misses.append("migratedBytes \(v), got \(r.migratedBytes.map(String.init) ?? "none")") }
        // Without an explicit ok/errno, an expectation of outcomes implies success.
        if expect.ok == nil, expect.errno == nil, !r.ok { misses.append("success, got \(r.errno ?? "an error")") }
        return misses.isEmpty ? "met" : "expected " + misses.joined(separator: "; ")
    }
}

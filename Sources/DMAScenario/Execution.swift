import DMABuf
import DMACore
import DMADevices
import DMAMapping

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
            var result = StepResult(index: results.count, op: .step(step.op), ok: true, errno: nil, message: "", line: step.line)
            do {
                try perform(step, &result)
            } catch {
                result.ok = false
                result.errno = error.errno
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
        var result = StepResult(index: results.count, op: .createBuffer, ok: true, errno: nil, message: "", line: spec.line)
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
            result.placement = exported.buffer.exporter.placement
        } catch {
            result.ok = false
            result.errno = error.errno
            result.message = error.message
        }
        results.append(result)
    }

    private func setUp(_ spec: Scenario.Importer) {
        var result = StepResult(index: results.count, op: .createImporter, ok: true, errno: nil, message: "", line: spec.line)
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
            result.errno = error.errno
            result.message = error.message
        }
        results.append(result)
    }

    private func cleanUp() {
        // Release RDMA registrations left behind (what process exit does); device mappings that
        // were left mapped stay, so the debug layer reports them as leaks.
        for mr in memoryRegions.values { try? mr.deregister() }
    }

    private func check(_ expect: Scenario.Expectation, _ r: StepResult) -> StepResult.Expectation {
        var misses: [String] = []
        if let ok = expect.ok, ok != r.ok { misses.append("ok \(ok), got \(r.ok)") }
        if let errno = expect.errno, errno != r.errno?.name { misses.append("errno \(errno), got \(r.errno?.name ?? "none")") }
        if let v = expect.placement, v != r.placement?.rawValue { misses.append("placement \(v), got \(r.placement?.rawValue ?? "none")") }
        if let v = expect.mapType, v != r.mapType?.rawValue { misses.append("mapType \(v), got \(r.mapType?.rawValue ?? "none")") }
        if let v = expect.peerToPeer, v != r.peerToPeer { misses.append("peerToPeer \(v), got \(r.peerToPeer.map(String.init) ?? "none")") }
        if let v = expect.notified, v.sorted() != r.notified { misses.append("notified \(v.sorted()), got \(r.notified ?? [])") }
        if let v = expect.bouncedBytes, v != r.bouncedBytes { misses.append("bouncedBytes \(v), got \(r.bouncedBytes.map(String.init) ?? "none")") }
        if let v = expect.segments, v != r.segments { misses.append("segments \(v), got \(r.segments.map(String.init) ?? "none")") }
        if let v = expect.migratedBytes, v != r.migratedBytes { misses.append("migratedBytes \(v), got \(r.migratedBytes.map(String.init) ?? "none")") }
        // Without an explicit ok/errno, an expectation of outcomes implies success.
        if expect.ok == nil, expect.errno == nil, !r.ok { misses.append("success, got \(r.errno?.name ?? "an error")") }
        return misses.isEmpty ? .met : .unmet("expected " + misses.joined(separator: "; "))
    }
}

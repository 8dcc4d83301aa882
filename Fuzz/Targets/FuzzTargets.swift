import DMACore
import DMAScenario
import Foundation
import LinuxDMABuf
import PCI

/// The fuzz targets of DMABufKit (RELIABILITY.md): one entry point per parser. libFuzzer drives
/// them from the `Fuzz/` package (`make fuzz`); the root package's `ReliabilityTests` replays
/// every committed corpus input and every regression input through the same entry points, so a
/// crash once found stays fixed without libFuzzer.
///
/// An entry point must not crash on any input: malformed input is a thrown error or a note, never
/// a trap. Each also checks the invariants its parser promises (an offset it reports lies inside
/// the bytes it was given), with `precondition`, so that a broken promise is a crash the fuzzer sees.
package enum FuzzTarget: String, CaseIterable, Sendable {
    case configSpace = "config-space"
    case sysfs = "sysfs"
    case topologyYAML = "topology-yaml"
    case scenarioYAML = "scenario-yaml"
    case fdinfo = "fdinfo"

    /// Feeds one input to the target.
    package func run(_ data: [UInt8]) {
        switch self {
        case .configSpace: FuzzTargets.configSpace(data)
        case .sysfs: FuzzTargets.sysfs(data)
        case .topologyYAML: FuzzTargets.topologyYAML(data)
        case .scenarioYAML: FuzzTargets.scenarioYAML(data)
        case .fdinfo: FuzzTargets.fdinfo(data)
        }
    }
}

/// The entry points.
public enum FuzzTargets {
    /// The config-space parser: the standard capability list, the extended capability chain, the
    /// PCIe port type, ACS and the BAR registers, over any bytes.
    public static func configSpace(_ data: [UInt8]) {
        let config = ConfigSpace(data)
        _ = config.headerType
        for id: UInt8 in [0x01, 0x05, 0x10, 0x11, data.first ?? 0] {
            let (offset, _) = config.capability(id)
            if let offset { precondition(offset >= 0x40 && offset + 1 < data.count, "capability offset \(offset) outside the bytes") }
        }
        for id: UInt16 in [0x0001, ConfigSpace.acsCapabilityID, 0x0010, UInt16(data.last ?? 0)] {
            let (offset, _) = config.extendedCapability(id)
            if let offset {
                precondition(offset >= ConfigSpace.standardSize && offset + 3 < data.count, "extended capability offset \(offset) outside the bytes")
            }
        }
        _ = config.portType
        if case .present(let offset, _, _) = config.acs.state {
            precondition(offset + 7 < data.count, "ACS at \(offset) outside the bytes")
        }
        for index in 0..<6 { _ = config.barBusAddress(index) }
    }

    /// The sysfs reader, on a tree made from the input (``SysfsManifest``): files with any bytes,
    /// folders, and symbolic links pointing anywhere, loops included.
    public static func sysfs(_ data: [UInt8]) {
        let manifest = SysfsManifest(decoding: data)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dmabufkit-fuzz-sysfs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        manifest.materialize(at: root)
        do {
            let topology = try SysfsTopologyLoader.load(root: root.path, cpu: CPUInfo(vendor: .intel, family: 6))
            _ = YAMLTopology.export(topology)
            for a in topology.functions.prefix(8) {
                for b in topology.functions.prefix(8) { _ = try? topology.explain(provider: a.address, client: b.address) }
            }
        } catch {
            _ = "\(error)"
        }
    }

    /// The topology YAML loader; a topology that loads is exported and loaded again.
    public static func topologyYAML(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        let cpu = CPUInfo(vendor: .intel, family: 6)
        guard let topology = try? YAMLTopology.load(text, file: "fuzz.yaml", cpu: cpu) else { return }
        let exported = YAMLTopology.export(topology)
        do {
            let again = try YAMLTopology.load(exported, file: "exported.yaml", cpu: cpu)
            precondition(again.functions.count == topology.functions.count, "the export of a loaded topology loses functions")
        } catch {
            preconditionFailure("the export of a loaded topology does not load: \(error)\n\(exported)")
        }
        for a in topology.functions.prefix(8) {
            for b in topology.functions.prefix(8) { _ = try? topology.explain(provider: a.address, client: b.address) }
        }
    }

    /// The scenario YAML parser; a scenario on the built-in or an inline topology is also run on
    /// the simulated machine (file and sysfs topologies are not read: the run has no folder).
    /// Buffers are cut to 256 KiB and steps to 100 for the run, as the simulator copies and
    /// compares every byte: a fuzzer needs many runs a second, not one.
    public static func scenarioYAML(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        guard var scenario = try? Scenario.parse(text, file: "fuzz.yaml") else { return }
        for index in scenario.buffers.indices {
            if let size = scenario.buffers[index].size { scenario.buffers[index].size = min(size, 256 * 1024) }
        }
        scenario.steps = Array(scenario.steps.prefix(100))
        switch scenario.topology {
        case .builtIn, .inline: break
        case .file, .sysfs: return
        }
        _ = try? ScenarioRunner.run(scenario, baseDirectory: "/nonexistent")
    }

    /// The procfs and debugfs text parsers of `dmabuf ls`: fdinfo, and debugfs `dma_buf/bufinfo`
    /// with its join into a kernel view (an empty census) and a diff of that view with itself.
    public static func fdinfo(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        let info = FDInfo(parsing: text)
        _ = info.isDMABuf
        _ = DMABufCensus.isDMABufPath(text)
        guard let bufinfo = try? DMABufBufInfo(parsing: text) else { return }
        for buffer in bufinfo.buffers { precondition(buffer.size >= 0, "a negative size \(buffer.size) was parsed") }
        let census = DMABufCensus.take(procRoot: "/nonexistent-proc-of-the-fuzzer")
        let view = DMABufKernelView(bufinfo: bufinfo, census: census, source: .init(bufinfo: "", readable: true, unavailable: nil, kernelRelease: nil))
        precondition(view.kernelOnlyBytes >= 0 && view.buffers.allSatisfy(\.heldByKernelOnly), "an empty census left a buffer held by a process")
        let change = DMABufKernelDiff(before: view, after: view)
        precondition(change.appeared.isEmpty && change.gone.isEmpty && change.attachments.isEmpty, "a view differs from itself")
    }
}

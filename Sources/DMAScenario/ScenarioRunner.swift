import DMABuf
import DMACore
import DMADevices
import DMAMapping
import Foundation
import PCI

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

import Benchmark
import DMACore
import DMAScenario
import Foundation
import PCI

/// Row 7 (issue [O], scale): every command near-linear in its input. Each large input is measured
/// next to one a tenth (or a quarter) of its size in the same run; report.py prints the cost per
/// item of the large one against the small one's (near-linear: about 1x). Inputs from run.sh:
/// `DMABUF_BENCH_TOPOLOGY_1K`/`_10K` (make-topology.py), `DMABUF_BENCH_SYSFS_5K` (make-sysfs.py
/// 7 16 8 5) next to `DMABUF_BENCH_SYSFS`, `DMABUF_BENCH_SCENARIO_100K` next to `DMABUF_BENCH_SCENARIO`.
func scaleBenchmarks() {
    let environment = ProcessInfo.processInfo.environment
    let cpu = CPUInfo(vendor: .intel, family: 6)
    let slow = configuration([.wallClock, .mallocCountTotal, .peakMemoryResident], maxDuration: .seconds(20), maxIterations: 5)

    // YAML topology load + export, 1,000 and 10,000 devices.
    for (key, count) in [("DMABUF_BENCH_TOPOLOGY_1K", 1_000), ("DMABUF_BENCH_TOPOLOGY_10K", 10_000)] {
        guard let file = environment[key] else {
            print("\(key) is not set: the topology scale rows are skipped (make bench sets it)")
            continue
        }
        Benchmark("scale topology load+export \(count) devices", configuration: slow) { benchmark in
            for _ in benchmark.scaledIterations {
                let text = try String(contentsOfFile: file, encoding: .utf8)
                let topology = try YAMLTopology.load(text, file: file, cpu: cpu)
                blackHole(YAMLTopology.export(topology))
            }
        }
    }

    // sysfs load + export, 1,169 and 5,115 functions.
    for (key, count) in [("DMABUF_BENCH_SYSFS", 1_169), ("DMABUF_BENCH_SYSFS_5K", 5_115)] {
        guard let root = environment[key] else {
            print("\(key) is not set: the sysfs scale rows are skipped (make bench sets it)")
            continue
        }
        Benchmark("scale sysfs load+export \(count) functions", configuration: slow) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(YAMLTopology.export(try SysfsTopologyLoader.load(root: root, cpu: cpu)))
            }
        }
    }

    // simulate, 10,000 and 100,000 steps: parse, and parse + run.
    for (key, count) in [("DMABUF_BENCH_SCENARIO", 10_000), ("DMABUF_BENCH_SCENARIO_100K", 100_000)] {
        guard let file = environment[key] else {
            print("\(key) is not set: the simulate scale rows are skipped (make bench sets it)")
            continue
        }
        Benchmark("scale simulate parse \(count) steps", configuration: slow) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try Scenario.parse(try String(contentsOfFile: file, encoding: .utf8), file: file))
            }
        }
        Benchmark("scale simulate \(count) steps", configuration: slow) { benchmark in
            for _ in benchmark.scaledIterations {
                let scenario = try Scenario.parse(try String(contentsOfFile: file, encoding: .utf8), file: file)
                let result = try ScenarioRunner.run(scenario, baseDirectory: ".")
                guard result.ok, result.steps.count >= count else {
                    throw CocoaError(.featureUnsupported, userInfo: ["steps": result.steps.count, "ok": result.ok])
                }
                blackHole(result)
            }
        }
    }

    // Sizes the model cannot hold as bytes: a 64 MiB heap with a pattern (the baseline) against a
    // 6 GiB one, each read back whole by the CPU; a 32 GiB VRAM buffer read whole by a device.
    for (name, size) in [("64 MiB", "64MiB"), ("6 GiB", "6GiB")] {
        let text = """
            buffers:
              - {name: big, exporter: system-heap, size: \(size), pattern: 7}
            steps:
              - cpu-read: {buffer: big, expectPattern: 7}
            """
        Benchmark("scale simulate heap \(name) with a pattern", configuration: slow) { benchmark in
            for _ in benchmark.scaledIterations {
                let result = try ScenarioRunner.run(try Scenario.parse(text, file: "heap.yaml"))
                guard result.ok else { throw CocoaError(.featureUnsupported) }
                blackHole(result)
            }
        }
    }
    let vram = """
        buffers:
          - {name: vram, exporter: gpu-vram, device: "0000:03:00.0", size: 32GiB, pattern: 9}
        importers:
          - {name: near, device: "0000:04:00.0", kind: device, dynamic: true, allowPeerToPeer: true}
        steps:
          - attach: {importer: near, buffer: vram}
          - map: {importer: near, buffer: vram}
          - device-read: {importer: near, buffer: vram, expectPattern: 9}
          - unmap: {importer: near, buffer: vram}
          - detach: {importer: near, buffer: vram}
        """
    Benchmark("scale simulate device read 32 GiB VRAM", configuration: slow) { benchmark in
        for _ in benchmark.scaledIterations {
            let result = try ScenarioRunner.run(try Scenario.parse(vram, file: "vram.yaml"))
            guard result.ok else { throw CocoaError(.featureUnsupported) }
            blackHole(result)
        }
    }
}

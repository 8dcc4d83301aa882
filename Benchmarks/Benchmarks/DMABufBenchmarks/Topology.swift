import Benchmark
import CBaselines
import DMACore
import DMAScenario
import Foundation
import PCI

/// A topology of `count` endpoints with one 2 MiB BAR each, on the root buses of one host bridge.
func flatTopology(endpoints count: Int) -> PCITopology {
    var functions: [PCIFunction] = []
    for i in 0..<count {
        let address = try! PCIAddress(
            domain: UInt32(i >> 13), bus: UInt8((i >> 5) & 0xff), device: UInt8(i & 31), function: 0)
        let bar = try! PCIBAR(index: 0, cpuStart: PhysicalAddress(0x4000_0000_0000 + UInt64(i) << 21), size: 2 << 20)
        functions.append(
            PCIFunction(
                address: address, vendor: 0x15b3, device: 0x101d, classCode: 0x020000, parent: nil,
                hostBridge: String(format: "pci%04x:00", i >> 13), portType: .endpoint, bars: [bar]))
    }
    return try! PCITopology(cpu: CPUInfo(vendor: .intel, family: 6), functions: functions)
}

/// The same 1,024 pseudo-random addresses inside the BARs, for every size.
func lookupAddresses(_ topology: PCITopology) -> [PhysicalAddress] {
    var state: UInt64 = 0x9e37_79b9_7f4a_7c15
    return (0..<1024).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let provider = topology.providers[Int((state >> 33) % UInt64(topology.providers.count))]
        return PhysicalAddress(provider.cpuRange.start.rawValue + (state >> 7) % provider.cpuRange.length)
    }
}

/// Row 4: 1,024 lookups by physical address among 1k, 10k and 100k BARs, binary search against a
/// linear scan in C.
func providerLookupBenchmarks() {
    for count in [1_000, 10_000, 100_000] {
        let topology = flatTopology(endpoints: count)
        let addresses = lookupAddresses(topology)
        Benchmark("provider lookup x1024 among \(count) BARs", configuration: configuration()) { benchmark in
            for _ in benchmark.scaledIterations {
                for address in addresses { blackHole(topology.provider(containing: address)) }
            }
        }
        let starts = topology.providers.map(\.cpuRange.start.rawValue)
        let lasts = topology.providers.map(\.cpuRange.last.rawValue)
        Benchmark("linear scan x1024 among \(count) BARs", configuration: configuration(maxIterations: 100)) { benchmark in
            for _ in benchmark.scaledIterations {
                for address in addresses { blackHole(cb_linear_find(starts, lasts, starts.count, address.rawValue)) }
            }
        }
    }
}

/// The sysfs copy `make bench` generated (scripts/make-sysfs.py), from `DMABUF_BENCH_SYSFS`.
func benchSysfs() -> String? { ProcessInfo.processInfo.environment["DMABUF_BENCH_SYSFS"] }

/// Row 5: load the 1,024-endpoint sysfs copy and compute every pair verdict, against `lspci -t`
/// reading the same copy; and the cached pair query on that topology and on a small one.
func sysfsBenchmarks() {
    guard let root = benchSysfs() else {
        print("DMABUF_BENCH_SYSFS is not set: the sysfs rows are skipped (make bench sets it)")
        return
    }
    let cpu = CPUInfo(vendor: .intel, family: 6)
    Benchmark("sysfs load 1024 endpoints", configuration: configuration(maxIterations: 50)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try SysfsTopologyLoader.load(root: root, cpu: cpu)) }
    }
    Benchmark(
        "sysfs load + every pair verdict 1024 endpoints", configuration: configuration(maxDuration: .seconds(10), maxIterations: 5)
    ) { benchmark in
        for _ in benchmark.scaledIterations {
            let topology = try SysfsTopologyLoader.load(root: root, cpu: cpu)
            let endpoints = topology.functions.filter { !$0.bars.isEmpty }.map(\.address)
            var bus = 0
            for provider in endpoints {
                for client in endpoints where try topology.verdict(provider: provider, client: client).mapType == .busAddress {
                    bus += 1
                }
            }
            blackHole(bus)
        }
    }
    Benchmark("lspci -t 1024 endpoints", configuration: configuration(maxIterations: 50)) { benchmark in
        for _ in benchmark.scaledIterations {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["lspci", "-t", "-A", "linux-sysfs", "-O", "sysfs.path=\(root)/bus/pci"]
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw CocoaError(.executableLoad) }
        }
    }

    // The cached query: 1,024 pairs asked again, on the 1,024-endpoint machine and on the 18
    // functions of the built-in one. O(1) means the two cost the same per query.
    let big = try! SysfsTopologyLoader.load(root: root, cpu: cpu)
    let small = try! BuiltInTopology.load()
    for (name, topology) in [("1024-endpoint", big), ("built-in", small)] {
        let addresses = topology.functions.map(\.address)
        var state: UInt64 = 1
        let pairs = (0..<1024).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (addresses[Int((state >> 33) % UInt64(addresses.count))], addresses[Int((state >> 13) % UInt64(addresses.count))])
        }
        for (p, c) in pairs { _ = try! topology.verdict(provider: p, client: c) }
        Benchmark("cached verdict x1024 \(name) topology", configuration: configuration()) { benchmark in
            for _ in benchmark.scaledIterations {
                for (p, c) in pairs { blackHole(try topology.verdict(provider: p, client: c)) }
            }
        }
    }
}

/// Row 6: `dmabuf simulate` of the generated 10,000-step scenario (parse and run, as the command
/// does, without printing the trace), from `DMABUF_BENCH_SCENARIO`.
func simulateBenchmarks() {
    guard let file = ProcessInfo.processInfo.environment["DMABUF_BENCH_SCENARIO"] else {
        print("DMABUF_BENCH_SCENARIO is not set: the simulate row is skipped (make bench sets it)")
        return
    }
    Benchmark(
        "simulate 10000 steps",
        configuration: configuration(
            [.wallClock, .mallocCountTotal, .peakMemoryResident], maxDuration: .seconds(10), maxIterations: 10)
    ) { benchmark in
        for _ in benchmark.scaledIterations {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            let scenario = try Scenario.parse(text, file: file)
            let result = try ScenarioRunner.run(scenario, baseDirectory: ".")
            guard result.ok, result.steps.count >= 10_000 else {
                throw CocoaError(.featureUnsupported, userInfo: ["steps": result.steps.count, "ok": result.ok])
            }
            blackHole(result)
        }
    }
}

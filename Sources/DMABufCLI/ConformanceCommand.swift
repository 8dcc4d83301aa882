import ArgumentParser
import DMABuf
import DMAConformance
import DMACore
import DMADevices
import DMAMapping
import DMAScenario
import Foundation

extension DMABufCommand {
    /// `dmabuf conformance`: the conformance suite on the built-in (and registered) ops.
    package struct Conformance: ParsableCommand {
        package static let configuration = CommandConfiguration(
            abstract: "Check DMA ops (and the built-in exporters) against the DMA-mapping contract, with real bytes.",
            discussion: """
                Exit code 1 when any check fails. Third-party ops: see README ("Checking your own
                DMA ops") for the SwiftPM plugin, `swift package dma-conformance`.

                Examples:
                  dmabuf conformance
                  dmabuf conformance --ops iommu --ops swiotlb
                  dmabuf conformance --exporters --json
                """
        )

        @Option(name: .customLong("ops"), help: "Check only these ops (repeat the option); default: every registered ops.")
        var ops: [String] = []
        @Flag(help: "Also check the built-in exporters (GPU VRAM, VFIO BAR, system heap).") var exporters = false
        @Flag(help: "Print a JSON array of reports: [{\"subject\", \"passed\", \"results\": [{\"check\", \"passed\", \"evidence\"}]}].")
        var json = false

        package init() {}

        package func run() throws {
            let registry = DMAOpsRegistry.builtIn()
            let names = ops.isEmpty ? registry.all.map(\.name) : ops
            var reports: [ConformanceReport] = []
            for name in names {
                let found: any DMAOps
                do { found = try registry.ops(named: name) } catch { throw CLIError(error) }
                reports.append(DMAOpsConformance(makeOps: { found }).run())
            }
            if exporters { reports += exporterReports() }
            if json {
                try printJSON(reports)
            } else {
                for report in reports { print(report.text) }
                let failed = reports.filter { !$0.passed }.count
                print(failed == 0 ? "\(reports.count) subject(s) conform." : "\(failed) of \(reports.count) subject(s) fail.")
            }
            if !reports.allSatisfy(\.passed) { throw ExitCode(1) }
        }
    }
}

/// The exporter suite on the three built-in exporters, on the built-in machine.
func exporterReports() -> [ConformanceReport] {
    func fixture(_ make: @escaping @Sendable (SimulatedMachine) throws -> DMABuffer, importers: [String]) -> @Sendable () throws -> ExporterFixture {
        {
            let machine = try SimulatedMachine.builtIn()
            let buffer = try make(machine)
            return ExporterFixture(
                buffer: buffer, memory: machine.memory, importers: try importers.map { try machine.dmaDevice($0, ops: "iommu") })
        }
    }
    return [
        DMABufExporterConformance(
            name: "gpu-vram (amdgpu)",
            make: fixture({ try $0.gpuBuffer(name: "vram", gpu: "0000:03:00.0", size: 64 << 10).buffer }, importers: ["0000:04:00.0", "0000:81:00.0"])
        ).run(),
        DMABufExporterConformance(
            name: "vfio-bar (vfio_pci_core)",
            make: fixture(
                { try $0.vfioBuffer(name: "bar", device: "0000:09:00.0", bar: 2, ranges: [.init(offset: 0, length: 8192)]).buffer },
                importers: ["0000:04:00.0"])
        ).run(),
        DMABufExporterConformance(
            name: "system-heap (system)",
            make: fixture({ try $0.heapBuffer(name: "heap", size: 16 << 10).buffer }, importers: ["0000:04:00.0", "0000:08:00.0"])
        ).run(),
    ]
}

import ArgumentParser
import CUDA
import DMADevices
import DMABuf
import DMACore
import DMAScenario
import Foundation
import LinuxDMABuf
import PCI

/// What `dmabuf cuda-export` found, for `--json` and for `docs/gpu.md`.
struct CUDAExportReport: Encodable {
    var gpu: String
    var pciBusID: String
    var dmaBufSupported: Bool
    var gpuDirectRDMASupported: Bool
    var requestedBytes: Int
    var fd: Int32
    var sizeFromLseek: Int?
    var exporter: String?
    var fdinfo: [String: String] = [:]
    var setName: String
    var sync: String
    var mmap: String
    var topology: [TopologyReport.Pair] = []
    var model: [ModelledImport] = []
    var warnings: [String] = []

    struct ModelledImport: Encodable {
        var client: String
        var kernelVerdict: String
        var distance: Int
        var placement: DMABufPlacement?
        var mapType: DMABufMapType?
        var migratedBytes: UInt64?
        var errno: String?
    }
}

extension DMABufCommand {
    /// `dmabuf cuda-export`: a CUDA VRAM dma-buf through the real layer, and the model fed with it.
    package struct CUDAExport: ParsableCommand {
        package static let configuration = CommandConfiguration(
            commandName: "cuda-export",
            abstract: "Export CUDA VRAM as a dma-buf, inspect the fd, and model what an RDMA NIC would get from it.",
            discussion: """
                Needs an NVIDIA GPU and its driver (libcuda.so.1 is loaded at run time; nothing of CUDA
                is needed to build). Without them it says so and exits 1. Then it reads /sys for the
                real topology and feeds the buffer's size and exporter to the simulator.

                Examples:
                  dmabuf cuda-export
                  dmabuf cuda-export --size 64MiB --client 0000:00:03.0 --json
                """
        )

        @Option(help: "Bytes of VRAM to allocate (decimal, 0x hex, or with KiB/MiB/GiB).") var size = "64MiB"
        @Option(help: "The CUDA device ordinal.") var device = 0
        @Option(help: "Model an RDMA NIC at this BDF (repeat; default: every other non-bridge device).") var client: [String] = []
        @Option(help: ArgumentHelp("The sysfs tree to read the topology from.", valueName: "DIR")) var sysfs = "/sys"
        @Option(help: "The CPU as VENDOR:FAMILY; default: /proc/cpuinfo.") var cpu: String?
        @Option(help: ArgumentHelp("Where the CUDA driver library is.", valueName: "PATH")) var library = "libcuda.so.1"
        @Flag(help: "Print the report as JSON.") var json = false

        package init() {}

        package func run() throws {
            guard let bytes = YAMLReader.parseNumber(size), bytes > 0, bytes % UInt64(SystemCalls.pageSize) == 0 else {
                throw CLIError("--size \(size) is not a positive multiple of the page size")
            }
            let cuda: CUDADriver
            do { cuda = try CUDADriver(path: library) } catch {
                FileHandle.standardError.write(Data("cuda-export: \(error.description)\n".utf8))
                throw ExitCode(1)
            }
            do {
                let report = try exportAndInspect(cuda, bytes: Int(bytes))
                if json { try printJSON(report) } else { print(render(report), terminator: "") }
            } catch let failure as CUDADriver.Failure {
                FileHandle.standardError.write(Data("cuda-export: \(failure.description)\n".utf8))
                throw ExitCode(1)
            }
        }

        private func exportAndInspect(_ cuda: CUDADriver, bytes: Int) throws -> CUDAExportReport {
            try cuda.initialize()
            guard try cuda.deviceCount() > device else {
                throw CUDADriver.Failure(call: "cuDeviceGetCount", result: -1, message: "there is no CUDA device \(device)")
            }
            let gpu = try cuda.device(device)
            try cuda.useDevice(gpu)
            defer { cuda.releaseDevice(gpu) }
            let pointer = try cuda.allocate(bytes)
            defer { cuda.free(pointer) }
            let fd = DMABufFD(adopting: try cuda.exportDMABuf(pointer, size: bytes))
            var report = CUDAExportReport(
                gpu: gpu.name, pciBusID: gpu.pciBusID, dmaBufSupported: gpu.dmaBufSupported, gpuDirectRDMASupported: gpu.gpuDirectRDMASupported,
                requestedBytes: bytes, fd: fd.rawValue, setName: "", sync: "", mmap: "")
            report.sizeFromLseek = try? fd.size()
            if let info = try? fd.fdinfo() {
                report.exporter = info.exporter
                report.fdinfo = ["size": info.size.map(String.init) ?? "?", "count": info.count.map(String.init) ?? "?", "exp_name": info.exporter ?? "?"]
            }
            report.setName = outcome { () throws(DMAError) in try fd.setName("dmabufkit-cuda") }
            if let info = try? fd.fdinfo(), let name = info.name { report.setName += " (fdinfo name: \(name))" }
            report.sync = outcome { () throws(DMAError) in try fd.withCPUAccess(.read) { () throws(DMAError) in () } }
            report.mmap = outcome { () throws(DMAError) in _ = try fd.map(length: SystemCalls.pageSize, writable: false) }
            modelTopology(gpu: gpu, bytes: UInt64(bytes), into: &report)
            return report
        }

        private func outcome(_ body: () throws(DMAError) -> Void) -> String {
            do {
                try body()
                return "ok"
            } catch {
                let why = explain(error.errno, call: error.message) ?? explain(error.errno, call: "mmap") ?? error.errno.summary
                return "\(error.errno.name) (\(error.errno.rawValue)): \(error.message) — \(why)"
            }
        }

        /// Reads the real topology and models an RDMA NIC importing a buffer of this size from this GPU.
        private func modelTopology(gpu: CUDADriver.Device, bytes: UInt64, into report: inout CUDAExportReport) {
            do {
                let cpuInfo = try cpu.map { try CPUInfo(parsing: $0) } ?? TopologySource.hostCPU()
                let topology = try SysfsTopologyLoader.load(root: sysfs, cpu: cpuInfo).following(KernelConfig.runningVersion())
                report.warnings = topology.warnings
                let gpuAddress = try PCIAddress(parsing: gpu.pciBusID)
                report.topology = TopologyReport(topology).pairs.filter { $0.provider == gpuAddress.description }
                let clients = client.isEmpty
                    ? topology.functions.filter { !$0.isBridge && $0.address != gpuAddress }.map(\.address.description) : client
                let machine = try SimulatedMachine(topology: topology)
                for bdf in clients {
                    var modelled = CUDAExportReport.ModelledImport(client: bdf, kernelVerdict: "?", distance: -1)
                    do {
                        let verdict = try topology.verdict(provider: gpuAddress, client: try PCIAddress(parsing: bdf))
                        modelled.kernelVerdict = verdict.mapType.rawValue
                        modelled.distance = verdict.distance
                        let vram = try machine.gpuBuffer(name: "cuda-vram", gpu: gpuAddress.description, size: bytes)
                        let nic = DeviceImporter(name: "nic", device: try machine.dmaDevice(bdf), dynamic: true, allowPeerToPeer: true)
                        try nic.attach(vram.buffer)
                        let mapping = try nic.map(vram.buffer, direction: .bidirectional)
                        modelled.placement = mapping.placement
                        modelled.mapType = mapping.mapType
                        modelled.migratedBytes = mapping.migratedBytes
                        try nic.unmap(vram.buffer, direction: .bidirectional)
                        try nic.detach(vram.buffer)
                    } catch {
                        modelled.errno = error.errno.name
                    }
                    report.model.append(modelled)
                }
            } catch {
                report.warnings.append("topology: \(error)")
            }
        }

        private func render(_ r: CUDAExportReport) -> String {
            var out = "GPU \(r.gpu) at \(r.pciBusID): dma-buf export \(r.dmaBufSupported ? "supported" : "NOT supported"), GPUDirect RDMA \(r.gpuDirectRDMASupported ? "supported" : "not supported")\n"
            out += "cuMemGetHandleForAddressRange(\(formatBytes(UInt64(r.requestedBytes)))) → fd \(r.fd)\n"
            out += "  size by lseek(SEEK_END): \(r.sizeFromLseek.map(String.init) ?? "?") bytes" + (r.sizeFromLseek == r.requestedBytes ? " (matches the allocation)\n" : " (DOES NOT match)\n")
            out += "  fdinfo: exp_name \(r.exporter ?? "?"), size \(r.fdinfo["size"] ?? "?"), count \(r.fdinfo["count"] ?? "?")\n"
            out += "  DMA_BUF_SET_NAME: \(r.setName)\n"
            out += "  DMA_BUF_IOCTL_SYNC read begin/end: \(r.sync)\n"
            out += "  mmap: \(r.mmap)\n\n"
            out += "The GPU against every other device (kernel rules of drivers/pci/p2pdma.c on this /sys):\n"
            for pair in r.topology { out += "  \(pair.client): \(pair.mapType), distance \(pair.distance), link \(pair.link)\n" }
            out += "\nWhat an RDMA NIC at each BDF would get from this buffer (the model, fed with its size and exporter):\n"
            for m in r.model {
                out += "  \(m.client): kernel verdict \(m.kernelVerdict); "
                out += m.errno.map { "map fails with \($0)\n" } ?? "\(m.mapType?.rawValue ?? "?") from \(m.placement?.rawValue ?? "?")" + ((m.migratedBytes ?? 0) > 0 ? ", \(formatBytes(m.migratedBytes!)) moved to system memory first\n" : "\n")
            }
            for warning in r.warnings { out += "warning: \(warning)\n" }
            return out
        }
    }
}

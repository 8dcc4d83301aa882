// `dmabuf-kernel-selftest --vfio BDF`: the model's VFIO exporter against the real kernel's
// (drivers/vfio/pci/vfio_pci_dmabuf.c, Linux 7.3 in the kernel tier's VFIO guest). The function is
// bound to vfio-pci and opened through its IOMMU group; for every row of a table of good and bad
// range sets the real VFIO_DEVICE_FEATURE_DMA_BUF is called, and the model's VFIOBARExporter is
// built for the same BAR (read from this guest's sysfs) and the same input; the errnos must be
// equal. Each row prints `VFIO-ROW name | input | kernel | model` for docs/kernel-tier.md and a
// KTEST line. Then a vgem import of a real export is compared with a static importer's attach in
// the model (story 6), and the exported fd's fdinfo with the model's buffer.

import DMABuf
import DMACore
import DMADevices
import DMAScenario
import Foundation
import Glibc
import LinuxDMABuf
import PCI

/// One row of the table: a VFIO region and its ranges as user space passes them.
struct VFIOCase {
    let name: String
    let region: UInt32
    let ranges: [(offset: UInt64, length: UInt64)]
    var flags: UInt32 = 0

    var input: String {
        let shown = ranges.prefix(4).map { "(\(hex($0.offset)), \(hex($0.length)))" }.joined(separator: " ")
        let more = ranges.count > 4 ? " … \(ranges.count) ranges" : ""
        return "region \(region), \(ranges.isEmpty ? "no ranges" : shown + more)\(flags != 0 ? ", flags \(flags)" : "")"
    }
}

/// The table, sized from the BAR the device really has.
func vfioCases(barSize size: UInt64, region: UInt32) -> [VFIOCase] {
    let page: UInt64 = 4096
    let mib: UInt64 = 1 << 20
    return [
        VFIOCase(name: "one-page", region: region, ranges: [(0, page)]),
        VFIOCase(name: "whole-bar", region: region, ranges: [(0, size)]),
        VFIOCase(name: "four-1mib-ranges", region: region, ranges: [(0, mib), (2 * mib, mib), (4 * mib, mib), (8 * mib, mib)]),
        VFIOCase(name: "last-page", region: region, ranges: [(size - page, page)]),
        VFIOCase(name: "no-ranges", region: region, ranges: []),
        VFIOCase(name: "zero-length", region: region, ranges: [(0, 0)]),
        VFIOCase(name: "unaligned-offset", region: region, ranges: [(100, page)]),
        VFIOCase(name: "unaligned-length", region: region, ranges: [(0, 100)]),
        VFIOCase(name: "past-the-bar", region: region, ranges: [(size - page, 2 * page)]),
        VFIOCase(name: "offset-at-the-end", region: region, ranges: [(size, page)]),
        VFIOCase(name: "second-range-past-the-bar", region: region, ranges: [(0, page), (size, page)]),
        VFIOCase(name: "offset-overflows", region: region, ranges: [(UInt64.max - page + 1, page)]),
        VFIOCase(name: "length-overflows", region: region, ranges: [(page, UInt64.max - page + 1)]),
        VFIOCase(name: "total-bit-63", region: region, ranges: [(0, 1 << 63)]),
        VFIOCase(name: "total-wraps", region: region, ranges: [(0, 1 << 63), (0, 1 << 63)]),
        VFIOCase(name: "flags-set", region: region, ranges: [(0, page)], flags: 1),
        VFIOCase(name: "non-memory-bar", region: region == 1 ? 3 : 1, ranges: [(0, page)]),
        VFIOCase(name: "rom-region", region: 6, ranges: [(0, page)]),
        VFIOCase(name: "config-region", region: 7, ranges: [(0, page)]),
        VFIOCase(name: "zero-length-on-non-memory-bar", region: region == 1 ? 3 : 1, ranges: [(0, 0)]),
        VFIOCase(name: "overlapping-ranges", region: region, ranges: [(0, 2 * page), (page, 2 * page)]),
        VFIOCase(name: "262144-ranges", region: region, ranges: (0..<262_144).map { (UInt64($0) % (size / page) * page, page) }),
        VFIOCase(name: "262145-ranges", region: region, ranges: (0..<262_145).map { (UInt64($0) % (size / page) * page, page) }),
    ]
}

@MainActor
func vfioMain(_ arguments: [String]) -> Int32 {
    guard let device = arguments.first else {
        print("usage: dmabuf-kernel-selftest --vfio BDF [REGION]")
        return 2
    }
    let region = arguments.count > 1 ? UInt32(arguments[1]) ?? 2 : 2
    let runner = Runner()
    do {
        try VFIODevice.bindToVFIOPCI(device: device)
        runner.check("vfio.bind", true, "\(device) bound to vfio-pci")
    } catch {
        runner.check("vfio.bind", false, error.description)
        print("KTEST-SUMMARY: \(runner.passed) passed, \(runner.failed) failed")
        return 1
    }
    let machine: SimulatedMachine
    let topology: PCITopology
    do {
        let cpuinfo = String(decoding: (try? SystemCalls.readFile("/proc/cpuinfo").get()) ?? [], as: UTF8.self)
        topology = try SysfsTopologyLoader.load(root: "/sys", cpu: CPUInfo.parse(procCPUInfo: cpuinfo) ?? CPUInfo(vendor: .other, family: 0))
            .following(KernelConfig.runningVersion())
        machine = try SimulatedMachine(topology: topology)
    } catch {
        runner.check("vfio.model", false, "the model of this guest: \(error)")
        print("KTEST-SUMMARY: \(runner.passed) passed, \(runner.failed) failed")
        return 1
    }
    let address = try! PCIAddress(parsing: device)
    guard let bar = topology.function(address)?.bars.first(where: { $0.index == Int(region) }) else {
        runner.check("vfio.bar", false, "\(device) has no memory BAR \(region)")
        print("KTEST-SUMMARY: \(runner.passed) passed, \(runner.failed) failed")
        return 1
    }
    runner.check("vfio.bar", true, "BAR \(region) of \(device): \(formatBytes(bar.size)) at \(hex(bar.cpuStart.rawValue))")
    let vfio: VFIODevice
    do { vfio = try VFIODevice(device: device) } catch {
        runner.check("vfio.open", false, error.description)
        print("KTEST-SUMMARY: \(runner.passed) passed, \(runner.failed) failed")
        return 1
    }
    runner.check("vfio.open", true, "group, container (type-1 v2) and device fd")

    var exported: DMABufFD? = nil
    var exportedSize: UInt64 = 0
    for (index, row) in vfioCases(barSize: bar.size, region: region).enumerated() {
        let kernel: String
        switch vfio.exportDMABuf(region: row.region, ranges: row.ranges, flags: row.flags) {
        case .success(let buffer):
            kernel = "ok"
            if exported == nil {
                exportedSize = row.ranges.reduce(0) { $0 + $1.length }
                exported = consume buffer
            }
        case .failure(let errno): kernel = errno.name
        }
        let model: String
        if row.flags != 0 {
            model = modelOutcome { () throws(DMAError) in
                _ = try VFIOBARExporter(
                    name: "row\(index)", regionIndex: Int(row.region), bars: [:], ranges: row.ranges.map { .init(offset: $0.offset, length: $0.length) },
                    memory: machine.memory, flags: row.flags)
            }
        } else {
            model = modelOutcome { () throws(DMAError) in
                _ = try machine.vfioBuffer(name: "row\(index)", device: device, bar: Int(row.region), ranges: row.ranges.map { .init(offset: $0.offset, length: $0.length) })
            }
        }
        print("VFIO-ROW \(row.name) | \(row.input) | \(kernel) | \(model)")
        runner.check("vfio.export.\(row.name)", kernel == model, "kernel \(kernel), model \(model) (\(row.input))")
    }

    // What user space sees of an export, and a static importer (vgem) refused as story 6 says.
    if let buffer = exported {
        do {
            let info = try buffer.fdinfo()
            runner.check("vfio.fdinfo", info.exporter == "vfio_pci_core" && info.size.map(UInt64.init) == exportedSize,
                "exp_name \(info.exporter ?? "?"), size \(info.size.map(String.init) ?? "?") (model: vfio_pci_core, \(exportedSize))")
        } catch {
            runner.check("vfio.fdinfo", false, error.description)
        }
        let model = modelOutcome { () throws(DMAError) in
            let exporter = try machine.vfioBuffer(name: "static", device: device, bar: Int(region), ranges: [.init(offset: 0, length: 4096)])
            _ = try exporter.buffer.attach(try machine.dmaDevice(device))
        }
        var kernel = "no vgem"
        if let vgem = try? DRM.open(driver: "vgem") {
            do {
                _ = try vgem.importDMABuf(buffer)
                kernel = "ok"
            } catch {
                kernel = error.errno.name
            }
        }
        print("VFIO-ROW vgem-import | a static importer (vgem, PRIME FD_TO_HANDLE) | \(kernel) | \(model)")
        runner.check("vfio.vgem-import-refused", kernel == model && kernel == "EOPNOTSUPP", "kernel \(kernel), model \(model)")
        revokeRows(vfio: vfio, device: device, region: region, machine: machine, runner: runner)
    } else {
        runner.check("vfio.fdinfo", false, "no row exported a buffer")
    }
    if arguments.count > 3, let ioRegion = Int(arguments[3]) {
        ioBARRows(device: arguments[2], region: ioRegion, topology: topology, machine: machine, runner: runner)
    }
    print("KTEST-SUMMARY: \(runner.passed) passed, \(runner.failed) failed")
    return runner.failed == 0 ? 0 : 1
}

/// The I/O-port BARs of a function, from its sysfs `resource` lines (`IORESOURCE_IO`, 0x100, in
/// the flags column; `include/linux/ioport.h`), which the topology leaves out.
func ioBARIndices(_ device: String) -> Set<Int> {
    let text = String(decoding: (try? SystemCalls.readFile("/sys/bus/pci/devices/\(device)/resource").get()) ?? [], as: UTF8.self)
    var indices: Set<Int> = []
    for (index, line) in text.split(separator: "\n").prefix(6).enumerated() {
        let fields = line.split(separator: " ").compactMap { UInt64($0.dropFirst(2), radix: 16) }
        if fields.count == 3, fields[2] & 0x100 != 0, fields[1] > fields[0] { indices.insert(index) }
    }
    return indices
}

/// Rows for a BAR that exists but is not memory (an e1000e's I/O ports): VFIO claims it, then
/// finds no P2P provider for it, so the kernel answers EINVAL where an empty BAR is ENODEV.
@MainActor
func ioBARRows(device: String, region: Int, topology: PCITopology, machine: SimulatedMachine, runner: Runner) {
    let ioBARs = ioBARIndices(device)
    runner.check("vfio.io.bar", ioBARs.contains(region), "I/O BARs of \(device): \(ioBARs.sorted())")
    do { try VFIODevice.bindToVFIOPCI(device: device) } catch {
        runner.check("vfio.io.bind", false, error.description)
        return
    }
    let vfio: VFIODevice
    do { vfio = try VFIODevice(device: device) } catch {
        runner.check("vfio.io.open", false, error.description)
        return
    }
    var bars: [Int: P2PProvider] = [:]
    if let address = try? PCIAddress(parsing: device) {
        for provider in topology.providers(of: address) { bars[provider.barIndex] = provider }
    }
    for (name, ranges) in [("io-bar", [(offset: UInt64(0), length: UInt64(4096))]), ("zero-length-on-io-bar", [(offset: UInt64(0), length: UInt64(0))])] {
        let kernel: String
        switch vfio.exportDMABuf(region: UInt32(region), ranges: ranges) {
        case .success: kernel = "ok"
        case .failure(let errno): kernel = errno.name
        }
        let model = modelOutcome { () throws(DMAError) in
            _ = try VFIOBARExporter(
                name: name, regionIndex: region, bars: bars, ioBARs: ioBARs, ranges: ranges.map { .init(offset: $0.offset, length: $0.length) },
                memory: machine.memory)
        }
        let input = "\(device) region \(region) (I/O ports), (\(hex(ranges[0].offset)), \(hex(ranges[0].length)))"
        print("VFIO-ROW \(name) | \(input) | \(kernel) | \(model)")
        runner.check("vfio.export.\(name)", kernel == model, "kernel \(kernel), model \(model) (\(input))")
    }
}

/// What user space can observe of revoke (`vfio_pci_dma_buf_move`): with memory decoding off a
/// new export still succeeds (and starts revoked in the model, as `priv->revoked` in the kernel);
/// a reset with exports alive succeeds; memory back on, exports work again.
@MainActor
func revokeRows(vfio: borrowing VFIODevice, device: String, region: UInt32, machine: SimulatedMachine, runner: Runner) {
    let off = vfio.setMemoryEnabled(false)
    runner.check("vfio.revoke.memory-off", failureName(off) == "ok", "PCI_COMMAND_MEMORY cleared through the config region: \(failureName(off))")
    let read = vfio.readRegion(Int(region), offset: 0, count: 4)
    runner.check("vfio.revoke.bar-read-eio", failureName(read) == "EIO", "a read of BAR \(region) while memory is off: \(failureName(read)) (EIO expected)")
    var kernel = "ok"
    var heldWhileOff: DMABufFD? = nil
    switch vfio.exportDMABuf(region: region, ranges: [(0, 4096)]) {
    case .success(let buffer): heldWhileOff = consume buffer
    case .failure(let errno): kernel = errno.name
    }
    var modelRevoked = false
    let model = modelOutcome { () throws(DMAError) in
        guard let provider = machine.topology.providers(of: try PCIAddress(parsing: device)).first(where: { $0.barIndex == Int(region) }) else {
            throw DMAError(.notFound, .ENODEV, "\(device) has no memory BAR \(region) in the model")
        }
        try machine.memory.setDecoding(provider, enabled: false)
        defer { try? machine.memory.setDecoding(provider, enabled: true) }
        let exporter = try machine.vfioBuffer(name: "while-off", device: device, bar: Int(region), ranges: [.init(offset: 0, length: 4096)])
        modelRevoked = exporter.isRevoked
    }
    print("VFIO-ROW export-while-memory-off | region \(region), (0x0, 0x1000), PCI_COMMAND_MEMORY clear | \(kernel) | \(model)\(modelRevoked ? " (revoked)" : "")")
    runner.check("vfio.revoke.export-while-memory-off", kernel == model && modelRevoked, "kernel \(kernel), model \(model), model revoked \(modelRevoked)")
    let on = vfio.setMemoryEnabled(true)
    let reset = vfio.reset()
    runner.check("vfio.revoke.reset-with-live-export", failureName(on) == "ok" && failureName(reset) == "ok" && heldWhileOff != nil,
        "memory back on: \(failureName(on)); VFIO_DEVICE_RESET with an export alive: \(failureName(reset))")
    _ = consume heldWhileOff
}

func failureName<T>(_ result: Result<T, Errno>) -> String {
    switch result {
    case .success: "ok"
    case .failure(let errno): errno.name
    }
}

/// `ok`, or the errno name of the model's error.
func modelOutcome(_ body: () throws(DMAError) -> Void) -> String {
    do {
        try body()
        return "ok"
    } catch {
        return error.errno.name
    }
}

import DMACore
import Foundation
import PCI

/// Builds a sysfs copy in a temporary folder, the way `drivers/pci/pci-sysfs.c` lays it out, so
/// tests can make any topology, including broken ones.
struct SysfsBuilder {
    struct Device {
        var bdf: String
        var vendor: UInt16 = 0x1234
        var device: UInt16 = 0x0001
        var classCode: UInt32 = 0x020000
        var parent: String? = nil
        var port: PCIePortType? = .endpoint
        var acsControl: UInt16? = nil
        var bars: [(index: Int, start: UInt64, size: UInt64)] = []
        var configSize = 4096
        var loopingChain = false
        var dmaMask = 64
    }

    let root: URL
    var devices: [Device] = []
    var hostBridge = "pci0000:00"

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("sysfs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(at: root) }

    static func config(_ d: Device) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 4096)
        func put16(_ at: Int, _ v: UInt16) { b[at] = UInt8(v & 0xff); b[at + 1] = UInt8(v >> 8) }
        func put32(_ at: Int, _ v: UInt32) { put16(at, UInt16(v & 0xffff)); put16(at + 2, UInt16(v >> 16)) }
        put16(0, d.vendor)
        put16(2, d.device)
        b[0x09] = UInt8(d.classCode & 0xff)
        b[0x0a] = UInt8((d.classCode >> 8) & 0xff)
        b[0x0b] = UInt8(d.classCode >> 16)
        let bridge = d.classCode >> 8 == 0x0604
        b[0x0e] = bridge ? 1 : 0
        if let port = d.port {
            put16(0x06, 0x10)
            b[0x34] = 0x40
            b[0x40] = 0x10
            b[0x41] = 0
            put16(0x42, UInt16(port.rawValue) << 4 | 2)
        }
        for bar in d.bars {
            put32(0x10 + 4 * bar.index, UInt32(truncatingIfNeeded: bar.start) | 0xc)  // 64-bit prefetchable
            put32(0x10 + 4 * (bar.index + 1), UInt32(truncatingIfNeeded: bar.start >> 32))
        }
        // Extended chain: an ID-0 entry first (as NVIDIA GPUs have), then ACS if any.
        if d.loopingChain {
            put32(0x100, 0x0001_0000 | UInt32(0x110) << 20)
            put32(0x110, 0x0001_0000 | UInt32(0x100) << 20)
        } else if let control = d.acsControl {
            put32(0x100, 0x0001_0000 | UInt32(0x140) << 20)
            put32(0x140, 0x0001_000d)
            put16(0x144, 0x005f)
            put16(0x146, control)
        }
        return Array(b.prefix(d.configSize))
    }

    /// The folder path of a device below `devices/`.
    func path(_ bdf: String) -> String {
        var chain = [bdf]
        var current = devices.first { $0.bdf == bdf }
        while let parent = current?.parent {
            chain.insert(parent, at: 0)
            current = devices.first { $0.bdf == parent }
        }
        return ([hostBridge] + chain).joined(separator: "/")
    }

    func write() throws {
        let fm = FileManager.default
        let links = root.appendingPathComponent("bus/pci/devices")
        try fm.createDirectory(at: links, withIntermediateDirectories: true)
        for d in devices {
            let dir = root.appendingPathComponent("devices/" + path(d.bdf))
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
            func file(_ name: String, _ text: String) throws {
                try Data(text.utf8).write(to: dir.appendingPathComponent(name))
            }
            try file("vendor", String(format: "0x%04x\n", d.vendor))
            try file("device", String(format: "0x%04x\n", d.device))
            try file("class", String(format: "0x%06x\n", d.classCode))
            try file("dma_mask_bits", "\(d.dmaMask)\n")
            try file("numa_node", "-1\n")
            try Data(Self.config(d)).write(to: dir.appendingPathComponent("config"))
            var lines: [String] = []
            for i in 0..<13 {
                if let bar = d.bars.first(where: { $0.index == i }) {
                    lines.append(String(format: "0x%016llx 0x%016llx 0x%016llx", bar.start, bar.start + bar.size - 1, 0x14220c))
                } else {
                    lines.append(String(format: "0x%016llx 0x%016llx 0x%016llx", 0, 0, 0))
                }
            }
            try file("resource", lines.joined(separator: "\n") + "\n")
            try fm.createSymbolicLink(
                atPath: links.appendingPathComponent(d.bdf).path, withDestinationPath: "../../../devices/" + path(d.bdf))
        }
    }

    func load(cpu: String = "intel:0x6") throws -> PCITopology {
        try SysfsTopologyLoader.load(root: root.path, cpu: try CPUInfo(parsing: cpu))
    }

    func devicePath(_ bdf: String) -> URL { root.appendingPathComponent("devices/" + path(bdf)) }
}

/// The classic topology of the kernel's comment: a root port, a switch, two endpoints under it,
/// and one endpoint on another root port.
func switchTopology(hostBridgeIDs: (UInt16, UInt16) = (0x8086, 0x1234)) -> [SysfsBuilder.Device] {
    [
        .init(bdf: "0000:00:00.0", vendor: hostBridgeIDs.0, device: hostBridgeIDs.1, classCode: 0x060000, port: nil),
        .init(bdf: "0000:00:01.0", classCode: 0x060400, port: .rootPort, acsControl: 0),
        .init(bdf: "0000:01:00.0", classCode: 0x060400, parent: "0000:00:01.0", port: .upstreamPort),
        .init(bdf: "0000:02:00.0", classCode: 0x060400, parent: "0000:01:00.0", port: .downstreamPort, acsControl: 0),
        .init(bdf: "0000:02:01.0", classCode: 0x060400, parent: "0000:01:00.0", port: .downstreamPort, acsControl: 0),
        .init(bdf: "0000:03:00.0", vendor: 0x10de, device: 0x2335, classCode: 0x030200, parent: "0000:02:00.0",
              bars: [(0, 0x4000_0000_0000, 1 << 30)]),
        .init(bdf: "0000:04:00.0", vendor: 0x15b3, device: 0x1021, classCode: 0x020700, parent: "0000:02:01.0",
              bars: [(0, 0x4100_0000_0000, 1 << 25)]),
        .init(bdf: "0000:00:02.0", classCode: 0x060400, port: .rootPort, acsControl: 0),
        .init(bdf: "0000:05:00.0", vendor: 0x15b3, device: 0x1021, classCode: 0x020700, parent: "0000:00:02.0",
              bars: [(0, 0x4200_0000_0000, 1 << 25)]),
    ]
}

func bdf(_ text: String) -> PCIAddress { try! PCIAddress(parsing: text) }

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

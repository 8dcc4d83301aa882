import DMACore
import Foundation
import PCI
import Testing

/// Issue [O] class 7: Intel VMD domains got the wrong parent and host bridge, and an exported YAML
/// did not load back (a VMD host bridge name, control characters in a driver name or a warning).
@Suite("VMD domains and exports that load back")
struct VMDAndRoundTripTests {
    /// The switch topology plus a VMD endpoint at 0000:00:05.0 with its own domain 10000: a root
    /// port 10000:e0:00.0 and an NVMe drive 10000:e1:00.0 below it.
    static func vmdTree() throws -> SysfsBuilder {
        var b = try SysfsBuilder()
        b.devices = switchTopology()
        b.devices.append(.init(bdf: "0000:00:05.0", vendor: 0x8086, device: 0x28c0, classCode: 0x010400))
        try b.write()
        let fm = FileManager.default
        let vmd = b.devicePath("0000:00:05.0").appendingPathComponent("pci10000:e0")
        let port = vmd.appendingPathComponent("10000:e0:00.0")
        let nvme = port.appendingPathComponent("10000:e1:00.0")
        let zeros = Array(repeating: "0x0000000000000000 0x0000000000000000 0x0000000000000000", count: 13).joined(separator: "\n") + "\n"
        for (folder, model, bdf) in [(port, "0000:00:01.0", "10000:e0:00.0"), (nvme, "0000:05:00.0", "10000:e1:00.0")] {
            try fm.createDirectory(at: folder, withIntermediateDirectories: true)
            for name in ["vendor", "device", "class", "config", "dma_mask_bits", "numa_node"] {
                try fm.copyItem(at: b.devicePath(model).appendingPathComponent(name), to: folder.appendingPathComponent(name))
            }
            try Data(zeros.utf8).write(to: folder.appendingPathComponent("resource"))
            let relative = "../../../devices/" + b.path("0000:00:05.0") + "/pci10000:e0/10000:e0:00.0" + (bdf == "10000:e1:00.0" ? "/10000:e1:00.0" : "")
            try fm.createSymbolicLink(atPath: b.root.appendingPathComponent("bus/pci/devices/" + bdf).path, withDestinationPath: relative)
        }
        return b
    }

    @Test("a VMD root port has no upstream bridge and host bridge pci10000:e0; the export loads back")
    func vmd() throws {
        let b = try Self.vmdTree()
        defer { b.remove() }
        let t = try b.load()
        let port = try #require(t.function(bdf("10000:e0:00.0")))
        let nvme = try #require(t.function(bdf("10000:e1:00.0")))
        #expect(port.parent == nil && port.hostBridge == "pci10000:e0")
        #expect(nvme.parent == bdf("10000:e0:00.0") && nvme.hostBridge == "pci10000:e0")
        #expect(t.function(bdf("0000:00:05.0"))?.hostBridge == "pci0000:00")
        let again = try YAMLTopology.load(YAMLTopology.export(t), file: "export.yaml", cpu: t.cpu)
        #expect(again.functions == t.functions)
        #expect(YAMLTopology.export(again) == YAMLTopology.export(t))
    }

    @Test("driver names and warnings with control characters, quotes, backslashes and a BOM export and load back unchanged")
    func controlCharacters() throws {
        let odd = "nv\u{1B}[31midia\u{7}\t\"q\"\\ \u{0}\u{85}\u{FEFF}\u{2028}é😀"
        let t = try PCITopology(
            cpu: CPUInfo(vendor: .intel, family: 6),
            functions: [
                PCIFunction(
                    address: bdf("0000:01:00.0"), vendor: 1, device: 1, classCode: 0x020000, parent: nil, hostBridge: "pci0000:01",
                    driver: odd)
            ], warnings: [odd, "line one\nline two\r\n"])
        let again = try YAMLTopology.load(YAMLTopology.export(t), file: "export.yaml", cpu: t.cpu)
        #expect(again.function(bdf("0000:01:00.0"))?.driver == odd)
        #expect(again.warnings == t.warnings)
    }
}

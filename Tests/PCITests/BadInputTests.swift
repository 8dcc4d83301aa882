import DMACore
import Foundation
import PCI
import Testing

@Suite("Bad topology input: a clear error naming the file or line, never a crash or a hang")
struct BadInputTests {
    static func written(_ edit: (inout SysfsBuilder) throws -> Void = { _ in }, after: (SysfsBuilder) throws -> Void = { _ in })
        throws -> SysfsBuilder
    {
        var builder = try SysfsBuilder()
        builder.devices = switchTopology()
        try edit(&builder)
        try builder.write()
        try after(builder)
        return builder
    }

    @Test("A missing config file")
    func missingConfig() throws {
        let b = try Self.written(after: { try FileManager.default.removeItem(at: $0.devicePath("0000:02:00.0").appendingPathComponent("config")) })
        defer { b.remove() }
        let error = #expect(throws: InputFileError.self) { try b.load() }
        #expect(error?.file.hasSuffix("0000:02:00.0/config") == true)
    }

    @Test("A truncated resource file")
    func truncatedResource() throws {
        let b = try Self.written(after: {
            try Data("0x0000400000000000 0x000040003fffffff 0x14220c\n0x0 0x0\n".utf8)
                .write(to: $0.devicePath("0000:03:00.0").appendingPathComponent("resource"))
        })
        defer { b.remove() }
        let error = #expect(throws: InputFileError.self) { try b.load() }
        #expect(error?.file.hasSuffix("0000:03:00.0/resource") == true)
        #expect(error?.line == 3)
        let garbled = try Self.written(after: {
            let lines = Array(repeating: "0x0 zz 0x0", count: 13).joined(separator: "\n")
            try Data(lines.utf8).write(to: $0.devicePath("0000:04:00.0").appendingPathComponent("resource"))
        })
        defer { garbled.remove() }
        let error2 = #expect(throws: InputFileError.self) { try garbled.load() }
        #expect(error2?.line == 1)
    }

    @Test("An extended capability chain that loops: the walk ends, with a warning")
    func loopingChain() throws {
        let b = try Self.written({ $0.devices[5].loopingChain = true })
        defer { b.remove() }
        let t = try b.load()
        #expect(t.function(bdf("0000:03:00.0"))?.acs == .absent)
        #expect(t.warnings.contains { $0.contains("loops") })
    }

    @Test("A link pointing outside the tree")
    func linkOutside() throws {
        let b = try Self.written(after: {
            let link = $0.root.appendingPathComponent("bus/pci/devices/0000:04:00.0").path
            try FileManager.default.removeItem(atPath: link)
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "../../../../../etc")
        })
        defer { b.remove() }
        let error = #expect(throws: InputFileError.self) { try b.load() }
        #expect(error?.message.contains("outside the tree") == true)
    }

    @Test("A link that loops back on itself or leads nowhere")
    func linkNowhere() throws {
        let b = try Self.written(after: {
            let link = $0.root.appendingPathComponent("bus/pci/devices/0000:04:00.0").path
            try FileManager.default.removeItem(atPath: link)
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "../../../devices/pci0000:00/0000:04:00.0")
        })
        defer { b.remove() }
        #expect(throws: InputFileError.self) { try b.load() }
    }

    @Test("A config file shorter than the standard header")
    func tinyConfig() throws {
        let b = try Self.written(after: { try Data([1, 2, 3]).write(to: $0.devicePath("0000:03:00.0").appendingPathComponent("config")) })
        defer { b.remove() }
        let error = #expect(throws: InputFileError.self) { try b.load() }
        #expect(error?.message.contains("only 3 bytes") == true)
    }

    @Test("Garbage in an ID file")
    func garbageVendor() throws {
        let b = try Self.written(after: { try Data("hello".utf8).write(to: $0.devicePath("0000:03:00.0").appendingPathComponent("vendor")) })
        defer { b.remove() }
        let error = #expect(throws: InputFileError.self) { try b.load() }
        #expect(error?.file.hasSuffix("vendor") == true)
    }

    @Test("Overlapping BARs are refused when the topology is loaded")
    func overlappingBARs() throws {
        let b = try Self.written({ $0.devices[6].bars = [(0, 0x4000_0000_1000, 4096)] })
        defer { b.remove() }
        let error = #expect(throws: InputFileError.self) { try b.load() }
        #expect(error?.message.contains("BARs overlap") == true)
    }

    @Test("A folder that is not a sysfs tree")
    func notSysfs() throws {
        let error = #expect(throws: InputFileError.self) {
            try SysfsTopologyLoader.load(root: "/nonexistent-\(UUID().uuidString)", cpu: CPUInfo(vendor: .intel, family: 6))
        }
        #expect(error?.message.contains("is this a sysfs tree") == true)
    }

    static let good = """
        cpu: intel:0x6
        devices:
          - bdf: "0000:00:00.0"
            vendor: 0x8086
            device: 0x2020
            class: 0x060000
          - bdf: "0000:00:01.0"
            vendor: 0x8086
            device: 0x1234
            class: 0x060400
            port: root-port
            acs: 0x0
          - bdf: "0000:01:00.0"
            vendor: 0x10de
            device: 0x2335
            class: 0x030200
            parent: "0000:00:01.0"
            bars:
              - {index: 0, start: 0x100000000000, size: 16MiB}
        """

    @Test(
        "YAML errors name the line",
        arguments: [
            ("    colour: red\n", 20, "unknown key 'colour'"),
            ("  - {bdf: \"0000:00:01.0\", vendor: 1, device: 1, class: 0x020000}\n", 20, "duplicate device"),
            ("  - {bdf: \"0000:02:00.0\", vendor: 1, device: 1, class: 0x020000, bars: [{index: 0, start: 0x100000001000, size: 4096}]}\n", 20, "BARs overlap"),
            ("  - {bdf: \"0000:02:00.0\", vendor: 1, device: 1, class: 0x020000, parent: \"0000:07:00.0\"}\n", 20, "not in the file"),
            ("  - {bdf: \"0000:02:00.0\", vendor: 0x1ffff, device: 1, class: 0x020000}\n", 20, "vendor"),
            ("  - {bdf: \"0000:02:00.0\", vendor: 1, device: 1, class: 0x020000, port: sideways}\n", 20, "unknown port"),
            ("  - {bdf: \"0000:02:00.0\", vendor: 1, device: 1}\n", 20, "needs 'class:'"),
            ("  - [unbalanced\n", 21, "YAML syntax error"),
        ] as [(String, Int?, String)])
    func yamlErrors(addition: String, line: Int?, message: String) throws {
        let error = #expect(throws: InputFileError.self) {
            try YAMLTopology.load(Self.good + "\n" + addition, file: "bad.yaml", cpu: CPUInfo(vendor: .intel, family: 6))
        }
        #expect(error?.file == "bad.yaml")
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
        if let line { #expect(error?.line == line, "\(String(describing: error))") }
    }

    @Test("A good YAML file loads, with sizes in KiB/MiB/GiB and hex IDs")
    func goodYAML() throws {
        let t = try YAMLTopology.load(Self.good, file: "good.yaml", cpu: CPUInfo(vendor: .amd, family: 0x19))
        #expect(t.cpu.description == "intel:0x6")
        #expect(t.function(bdf("0000:01:00.0"))?.bars.first?.size == 16 << 20)
        #expect(t.function(bdf("0000:01:00.0"))?.hostBridge == "pci0000:00")
        #expect(t.function(bdf("0000:00:01.0"))?.acs.redirects == false)
        #expect(throws: DMAError.self) { try CPUInfo(parsing: "intel") }
        #expect(throws: DMAError.self) { try PCIAddress(parsing: "00:1g.0") }
        #expect(throws: DMAError.self) { try PCIAddress(parsing: "0000:00:20.0") }
    }

    @Test("PCI addresses parse in the long and short forms, in either case", arguments: [
        ("0000:03:00.0", 0, 3, 0, 0), ("03:1f.7", 0, 3, 31, 7), ("10000:ff:01.2", 0x10000, 0xff, 1, 2), ("ABCD:0A:1F.3", 0xabcd, 0x0a, 31, 3),
        ("ffffffff:00:00.0", 0xffff_ffff, 0, 0, 0),
    ] as [(String, UInt32, UInt8, UInt8, UInt8)])
    func goodAddresses(_ text: String, _ domain: UInt32, _ bus: UInt8, _ device: UInt8, _ function: UInt8) throws {
        let address = try PCIAddress(parsing: text)
        #expect(address == (try PCIAddress(domain: domain, bus: bus, device: device, function: function)))
    }

    @Test("Malformed PCI addresses are refused with EINVAL naming the text", arguments: [
        "", ":", "0000:03:00", "0000:03:00.", "0000:03:0.0", "0000:3:00.0", "000000000:03:00.0", ":03:00.0", "0000:03:00.00",
        "0000:03:00.8", "0000:03:20.0", "0000:+3:00.0", "0000:03:00:0", "a:b:c:d", "0000:03:00,0", "pci0000:00", "0000:03:00.0\n",
    ])
    func badAddresses(_ text: String) {
        let error = #expect(throws: DMAError.self) { try PCIAddress(parsing: text) }
        #expect(error?.errno == .EINVAL)
    }
}

import DMACore
import Foundation
import PCI
import Testing

@Suite("Real sysfs trees: the cloud H200 VM and QEMU q35")
struct FixtureTests {
    static func h200(_ cpu: String) throws -> PCITopology {
        try SysfsTopologyLoader.load(root: fixtures.appendingPathComponent("h200-vm").path, cpu: try CPUInfo(parsing: cpu))
    }

    @Test("H200 VM: seven devices on one root bus below host bridge 8086:0d57, which is not whitelisted")
    func h200Shape() throws {
        let topology = try Self.h200("intel:0x6")
        #expect(topology.functions.count == 7)
        #expect(topology.functions.allSatisfy { $0.parent == nil && $0.hostBridge == "pci0000:00" })
        let identity = try #require(topology.hostBridgeDevice("pci0000:00"))
        #expect(identity.ids == "8086:0d57")
        #expect(P2PHostBridgeWhitelist.entry(vendor: identity.vendor, device: identity.device) == nil)
        #expect(topology.warnings.isEmpty)
    }

    @Test("H200 VM: the GPU's three BARs, with the 256 GiB VRAM aperture found by address")
    func h200GPU() throws {
        let topology = try Self.h200("intel:0x6")
        let gpu = try #require(topology.function(bdf("0000:00:06.0")))
        #expect(gpu.ids == "10de:2335" && gpu.classCode == 0x030200 && gpu.dmaMaskBits == 52 && gpu.driver == "nvidia")
        #expect(gpu.bars.map(\.index) == [0, 2, 4])
        #expect(gpu.bars.map(\.size) == [16 << 20, 256 << 30, 32 << 20])
        #expect(gpu.bars[1].cpuStart == 0x1000_0000_0000)
        #expect(gpu.bars.allSatisfy { $0.is64Bit && $0.prefetchable })
        let provider = try #require(topology.provider(containing: PhysicalAddress(0x1000_0000_0000 + (100 << 30))))
        #expect(provider.owner == bdf("0000:00:06.0") && provider.barIndex == 2)
        #expect(topology.provider(containing: 0x1040_0400_0000) == nil)
    }

    @Test("H200 VM: the extended capability chain is walked past ID-0 entries to its end (pci_find_next_ext_capability)")
    func h200Chain() throws {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("h200-vm/devices/pci0000:00/0000:00:06.0/config"))
        let config = ConfigSpace([UInt8](data))
        #expect(config.extendedCapability(0x18).offset == 0x12c)  // LTR, after the first ID-0 entry
        #expect(config.extendedCapability(0x0b).offset == 0x2a4)  // after two more ID-0 entries
        #expect(config.extendedCapability(0x03).offset == 0x2f0)  // the last one
        #expect(config.extendedCapability(0x0d).offset == nil)  // no ACS
        #expect(config.extendedCapability(0x03).note == nil)
        #expect(config.portType == .endpoint)
        #expect(config.capability(0x10).offset == 0x60)
    }

    @Test(
        "H200 VM: every pair is not-supported on Intel, through the host bridge on AMD Zen (cpu_supports_p2pdma)",
        arguments: [("intel:0x6", P2PMapType.notSupported), ("amd:0x19", .throughHostBridge), ("amd:0x16", .notSupported)])
    func h200Pairs(cpu: String, expected: P2PMapType) throws {
        let report = TopologyReport(try Self.h200(cpu))
        #expect(report.pairs.count == 6 * 5)  // the host bridge is class 0x06 and is left out
        #expect(report.pairs.allSatisfy { $0.mapType == expected.rawValue })
        #expect(report.pairs.allSatisfy { $0.distance == (expected == .notSupported ? -1 : 2) })
        #expect(report.pairs.allSatisfy { $0.link == "PHB" })
    }

    @Test("QEMU q35: switch, two host bridges, ACS on root ports, 256-byte configs")
    func q35() throws {
        let topology = try SysfsTopologyLoader.load(root: fixtures.appendingPathComponent("qemu-q35").path, cpu: try CPUInfo(parsing: "intel:0x6"))
        #expect(topology.functions.count == 21)
        #expect(topology.hostBridges == ["pci0000:00", "pci0000:20"])
        #expect(topology.function(bdf("0000:04:00.0"))?.parent == bdf("0000:03:00.0"))
        #expect(topology.function(bdf("0000:03:00.0"))?.portType == .downstreamPort)
        #expect(topology.function(bdf("0000:02:00.0"))?.portType == .upstreamPort)
        #expect(topology.function(bdf("0000:00:10.0"))?.acs == .present(offset: 0x148, capability: 0x5f, control: 0))
        #expect(topology.function(bdf("0000:02:00.0"))?.acs == .absent)  // QEMU's switch ports have none
        #expect(topology.function(bdf("0000:01:01.0"))?.acs == .absent)  // 256-byte config: no extended space
        #expect(topology.function(bdf("0000:21:00.0"))?.hostBridge == "pci0000:20")
        // NVMe and e1000e below one switch: bus address, distance 4 (the kernel's own example).
        let nvmeToNIC = try topology.verdict(provider: bdf("0000:04:00.0"), client: bdf("0000:05:00.0"))
        #expect(nvmeToNIC.mapType == .busAddress && nvmeToNIC.distance == 4)
        // Two functions of one device below a root port: distance 2.
        #expect(try topology.verdict(provider: bdf("0000:06:00.0"), client: bdf("0000:06:00.1")).distance == 2)
        // Across host bridges, neither whitelisted: not supported.
        #expect(try topology.verdict(provider: bdf("0000:04:00.0"), client: bdf("0000:21:00.0")).mapType == .notSupported)
        // The CMB of the NVMe is a provider.
        #expect(topology.provider(containing: 0xfa00_1000)?.owner == bdf("0000:04:00.0"))
    }

    @Test("Export to YAML and load back gives the identical report", arguments: ["h200-vm", "qemu-q35"])
    func roundTrip(name: String) throws {
        let cpu = try CPUInfo(parsing: "amd:0x19")
        let loaded = try SysfsTopologyLoader.load(root: fixtures.appendingPathComponent(name).path, cpu: cpu)
        let yaml = YAMLTopology.export(loaded)
        let reloaded = try YAMLTopology.load(yaml, file: "\(name).yaml", cpu: try CPUInfo(parsing: "intel:0x6"))
        #expect(TopologyReport(reloaded) == TopologyReport(loaded))
        #expect(YAMLTopology.export(reloaded) == yaml)
    }

    @Test("A copy whose links were flattened into files holding the link text loads the same")
    func flattenedLinks() throws {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("flat-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: copy) }
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("qemu-q35"), to: copy)
        let links = copy.appendingPathComponent("bus/pci/devices")
        for entry in try FileManager.default.contentsOfDirectory(atPath: links.path) {
            let path = links.appendingPathComponent(entry).path
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
            try FileManager.default.removeItem(atPath: path)
            try Data(target.utf8).write(to: URL(fileURLWithPath: path))
        }
        let cpu = try CPUInfo(parsing: "intel:0x6")
        let flat = try SysfsTopologyLoader.load(root: copy.path, cpu: cpu)
        let real = try SysfsTopologyLoader.load(root: fixtures.appendingPathComponent("qemu-q35").path, cpu: cpu)
        #expect(TopologyReport(flat) == TopologyReport(real))
    }
}

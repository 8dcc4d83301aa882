import DMACore
import DMAMapping
import Foundation
import PCI
import Testing

/// Each test names the rule of drivers/pci/p2pdma.c it checks.
@Suite("P2P distance and map type (calc_map_type_and_dist)")
struct RuleTests {
    static func build(_ devices: [SysfsBuilder.Device], cpu: String = "intel:0x6") throws -> PCITopology {
        var builder = try SysfsBuilder()
        defer { builder.remove() }
        builder.devices = devices
        try builder.write()
        return try builder.load(cpu: cpu)
    }

    static func verdict(_ t: PCITopology, _ a: String, _ b: String) throws -> P2PVerdict {
        try t.verdict(provider: bdf(a), client: bdf(b))
    }

    @Test("Same function: bus address, distance 0")
    func sameFunction() throws {
        let t = try Self.build(switchTopology())
        #expect(try Self.verdict(t, "0000:03:00.0", "0000:03:00.0") == P2PVerdict(mapType: .busAddress, distance: 0, acsUnknown: false))
    }

    @Test("Two ports of one switch: bus address, distance 4; link PIX")
    func sameSwitch() throws {
        let t = try Self.build(switchTopology())
        #expect(try Self.verdict(t, "0000:03:00.0", "0000:04:00.0") == P2PVerdict(mapType: .busAddress, distance: 4, acsUnknown: false))
        #expect(t.link(t.function(bdf("0000:03:00.0"))!, t.function(bdf("0000:04:00.0"))!) == .pix)
    }

    @Test("Different root ports: no common upstream device, so the host-bridge rule decides")
    func differentRootPorts() throws {
        let intel = try Self.build(switchTopology())
        #expect(try Self.verdict(intel, "0000:03:00.0", "0000:05:00.0") == P2PVerdict(mapType: .notSupported, distance: -1, acsUnknown: false))
        let zen = try Self.build(switchTopology(), cpu: "amd:0x17")
        // dist_a = 4 (endpoint, DSP, USP, root port), dist_b = 2 (endpoint, root port)
        #expect(try Self.verdict(zen, "0000:03:00.0", "0000:05:00.0") == P2PVerdict(mapType: .throughHostBridge, distance: 6, acsUnknown: false))
        #expect(zen.link(zen.function(bdf("0000:03:00.0"))!, zen.function(bdf("0000:05:00.0"))!) == .phb)
    }

    @Test(
        "ACS redirect anywhere on the path sends traffic to the host bridge (pci_bridge_has_acs_redir)",
        arguments: [
            ("0000:03:00.0", "on the provider's own function"),
            ("0000:02:00.0", "on the provider's downstream port"),
            ("0000:02:01.0", "on the client's downstream port"),
            ("0000:04:00.0", "on the client itself"),
        ])
    func acsOnPath(device: String, where: String) throws {
        var devices = switchTopology(hostBridgeIDs: (0x8086, 0x2030))  // a whitelisted host bridge
        let index = devices.firstIndex { $0.bdf == device }!
        devices[index].acsControl = 0x0004  // RR
        let t = try Self.build(devices)
        let v = try Self.verdict(t, "0000:03:00.0", "0000:04:00.0")
        #expect(v.mapType == .throughHostBridge, "ACS \(`where`)")
        #expect(v.distance == 4)
        let e = try t.explain(provider: bdf("0000:03:00.0"), client: bdf("0000:04:00.0"))
        #expect(e.acsRedirect == [bdf(device)])
        #expect(e.remedy == "ACS redirect is set between the client and provider; to disable it for this path, add the kernel parameter: pci=disable_acs_redir=\(device)")
    }

    @Test("ACS on the common upstream port counts too (the kernel checks it before finding it is common)")
    func acsOnCommonPort() throws {
        var devices = switchTopology()
        devices[2].acsControl = 0x0008  // CR on the switch's upstream port 01:00.0
        let t = try Self.build(devices)
        #expect(try Self.verdict(t, "0000:03:00.0", "0000:04:00.0").mapType == .notSupported)  // Intel, not whitelisted
        let zen = try Self.build(devices, cpu: "amd:0x19")
        #expect(try Self.verdict(zen, "0000:03:00.0", "0000:04:00.0") == P2PVerdict(mapType: .throughHostBridge, distance: 4, acsUnknown: false))
    }

    @Test("ACS bits other than RR, CR and EC do not redirect", arguments: [UInt16(0x01), 0x02, 0x10, 0x40, 0x53])
    func harmlessACS(control: UInt16) throws {
        var devices = switchTopology()
        devices[3].acsControl = control
        #expect(try Self.verdict(try Self.build(devices), "0000:03:00.0", "0000:04:00.0").mapType == .busAddress)
        devices[3].acsControl = control | 0x20  // EC does
        #expect(try Self.verdict(try Self.build(devices), "0000:03:00.0", "0000:04:00.0").mapType == .notSupported)
    }

    @Test("Every whitelist entry, with its same-host-bridge flag (pci_p2pdma_whitelist)", arguments: P2PHostBridgeWhitelist.entries())
    func whitelist(entry: P2PHostBridgeWhitelist.Entry) throws {
        let device = entry.device ?? 0x4242
        // One host bridge: every entry allows the host-bridge route.
        let single = try Self.build(switchTopology(hostBridgeIDs: (entry.vendor, device)))
        #expect(try Self.verdict(single, "0000:03:00.0", "0000:05:00.0").mapType == .throughHostBridge)
        // Two host bridges, both this entry: only entries without REQ_SAME_HOST_BRIDGE allow it.
        let two = try TopologyBuilderYAML.twoHostBridges(vendor: entry.vendor, device: device)
        let expected: P2PMapType = entry.sameHostBridgeOnly ? .notSupported : .throughHostBridge
        #expect(try Self.verdict(two, "0000:00:03.0", "0000:40:03.0").mapType == expected)
    }

    @Test("Across two host bridges both must be whitelisted")
    func twoHostBridgesMixed() throws {
        let t = try TopologyBuilderYAML.twoHostBridges(vendor: 0x8086, device: 0x2030, secondDevice: 0x9999)
        #expect(try Self.verdict(t, "0000:00:03.0", "0000:40:03.0").mapType == .notSupported)
        #expect(t.link(t.function(bdf("0000:00:03.0"))!, t.function(bdf("0000:40:03.0"))!) == .node)
    }

    @Test("Endpoints on the root bus: no upstream bridge, host-bridge route at distance 2")
    func rootBusEndpoints() throws {
        let devices: [SysfsBuilder.Device] = [
            .init(bdf: "0000:00:00.0", vendor: 0x8086, device: 0x2020, classCode: 0x060000, port: nil),
            .init(bdf: "0000:00:03.0", classCode: 0x010802, port: .rootComplexEndpoint),
            .init(bdf: "0000:00:04.0", classCode: 0x020000, port: .rootComplexEndpoint),
        ]
        let t = try Self.build(devices)
        #expect(try Self.verdict(t, "0000:00:03.0", "0000:00:04.0") == P2PVerdict(mapType: .throughHostBridge, distance: 2, acsUnknown: false))
    }

    @Test("AMD family 0x16 is not Zen; 0x17 is (cpu_supports_p2pdma)")
    func amdFamilies() throws {
        #expect(try Self.verdict(try Self.build(switchTopology(), cpu: "amd:0x16"), "0000:03:00.0", "0000:05:00.0").mapType == .notSupported)
        #expect(try Self.verdict(try Self.build(switchTopology(), cpu: "amd:0x17"), "0000:03:00.0", "0000:05:00.0").mapType == .throughHostBridge)
        #expect(try Self.verdict(try Self.build(switchTopology(), cpu: "other:0x17"), "0000:03:00.0", "0000:05:00.0").mapType == .notSupported)
    }

    @Test("No device at 00.0: the first root-bus device stands for the host bridge only if it is a root port (pci_host_bridge_dev)")
    func noDeviceAtZero() throws {
        // First device 00:01.0 is a root port with a whitelisted ID: it stands for the host bridge.
        var devices = Array(switchTopology().dropFirst())
        devices[0].vendor = 0x8086
        devices[0].device = 0x2030
        let t = try Self.build(devices)
        #expect(t.hostBridgeDevice("pci0000:00")?.address == bdf("0000:00:01.0"))
        #expect(try Self.verdict(t, "0000:03:00.0", "0000:05:00.0").mapType == .throughHostBridge)
        // First device is an endpoint that is not at 00.0: no identity device, nothing is whitelisted.
        let other: [SysfsBuilder.Device] = [
            .init(bdf: "0000:00:02.0", vendor: 0x8086, device: 0x2030, classCode: 0x020000),
            .init(bdf: "0000:00:03.0", classCode: 0x020000),
        ]
        let t2 = try Self.build(other)
        #expect(t2.hostBridgeDevice("pci0000:00") == nil)
        #expect(try Self.verdict(t2, "0000:00:02.0", "0000:00:03.0").mapType == .notSupported)
        #expect(try t2.explain(provider: bdf("0000:00:02.0"), client: bdf("0000:00:03.0")).remedy?.contains("no identity device") == true)
    }

    @Test("Verdicts are cached per (provider, client), as the kernel's map_types xarray")
    func cache() throws {
        let t = try Self.build(switchTopology())
        #expect(t.cachedVerdicts == 0)
        _ = try Self.verdict(t, "0000:03:00.0", "0000:04:00.0")
        _ = try Self.verdict(t, "0000:03:00.0", "0000:04:00.0")
        #expect(t.cachedVerdicts == 1)
        _ = try Self.verdict(t, "0000:04:00.0", "0000:03:00.0")
        #expect(t.cachedVerdicts == 2)
        #expect(throws: DMAError.self) { try Self.verdict(t, "0000:03:00.0", "0000:09:00.0") }
    }

    @Test("The mapping layer asks the topology: a GPU BAR mapped for a NIC under the same switch gets bus addresses")
    func mappingThroughTopology() throws {
        let t = try Self.build(switchTopology())
        let vram = try #require(t.providers(of: bdf("0000:03:00.0")).first)
        let memory = SimulatedMemory()
        try memory.addBAR(name: "vram", provider: vram)
        let near = try DMADevice(name: "0000:04:00.0", memory: memory, ops: DirectDMAOps(), topology: t)
        let list = try ScatterList.peerToPeer([try vram.cpuRange.subrange(offset: 0, length: 4096)], provider: vram)
        let table = try near.mapScatterList(list, direction: .fromDevice)
        #expect(table.p2pMapType == .busAddress && table.segments[0].isBusAddress)
        let far = try DMADevice(name: "0000:05:00.0", memory: memory, ops: DirectDMAOps(), topology: t)
        #expect(throws: DMAError.self) { try far.mapScatterList(list, direction: .fromDevice) }
    }

    /// drivers/pci/p2pdma.c: `pci_p2pdma_map_type` reads the provider and the client's place in
    /// the tree, never the client's DMA ops; ops without P2P support refuse at map time.
    @Test("The map type is the topology's alone: a device whose ops cannot carry P2P gets the same verdict", arguments: ["0000:04:00.0", "0000:05:00.0"])
    func mapTypeIgnoresOps(client: String) throws {
        let t = try Self.build(switchTopology())
        let vram = try #require(t.providers(of: bdf("0000:03:00.0")).first)
        let memory = SimulatedMemory()
        try memory.addBAR(name: "vram", provider: vram)
        let virt = try DMADevice(name: client, memory: memory, ops: VirtDMAOps(), topology: t)
        let verdict = try Self.verdict(t, "0000:03:00.0", client).mapType
        #expect(virt.p2pMapType(to: vram) == verdict)
        #expect(t.mapType(provider: vram, client: bdf(client)) == verdict)
        let list = try ScatterList.peerToPeer([try vram.cpuRange.subrange(offset: 0, length: 4096)], provider: vram)
        let error = #expect(throws: DMAError.self) { try virt.mapScatterList(list, direction: .fromDevice) }
        #expect(error?.errno == .EREMOTEIO)
    }

    @Test("Unknown ACS (64-byte config, a non-root read) is taken as redirecting, with a warning")
    func unknownACS() throws {
        var devices = switchTopology(hostBridgeIDs: (0x8086, 0x2030))
        devices[3].configSize = 64
        let t = try Self.build(devices)
        #expect(t.warnings.contains { $0.contains("0000:02:00.0") && $0.contains("run as root") })
        let v = try Self.verdict(t, "0000:03:00.0", "0000:04:00.0")
        #expect(v.mapType == .throughHostBridge && v.acsUnknown)
    }
}

/// Topologies written as YAML by the tests.
enum TopologyBuilderYAML {
    static func twoHostBridges(vendor: UInt16, device: UInt16, secondDevice: UInt16? = nil) throws -> PCITopology {
        let yaml = """
            cpu: intel:0x6
            devices:
              - {bdf: "0000:00:00.0", vendor: \(vendor), device: \(device), class: 0x060000}
              - {bdf: "0000:00:03.0", vendor: 0x15b3, device: 0x1021, class: 0x020700, numaNode: 0}
              - {bdf: "0000:40:00.0", vendor: \(vendor), device: \(secondDevice ?? device), class: 0x060000}
              - {bdf: "0000:40:03.0", vendor: 0x10de, device: 0x2335, class: 0x030200, numaNode: 0,
                 bars: [{index: 0, start: 0x100000000000, size: 1GiB}]}
            """
        return try YAMLTopology.load(yaml, file: "two.yaml", cpu: try CPUInfo(parsing: "intel:0x6"))
    }
}

@Suite("The verdict fast path and the explanation agree")
struct VerdictExplainAgreement {
    @Test("For every ordered pair of the fixtures and of built topologies", arguments: ["qemu-q35", "h200-vm"], ["intel:0x6", "amd:0x19"])
    func agree(fixture: String, cpu: String) throws {
        let t = try SysfsTopologyLoader.load(root: fixtures.appendingPathComponent(fixture).path, cpu: try CPUInfo(parsing: cpu))
        for a in t.functions {
            for b in t.functions {
                let explained = try t.explain(provider: a.address, client: b.address).verdict
                #expect(try t.verdict(provider: a.address, client: b.address) == explained, "\(a.address) → \(b.address)")
            }
        }
    }

    @Test("With ACS, unknown ACS and a missing identity device")
    func agreeOnBuilt() throws {
        var devices = switchTopology(hostBridgeIDs: (0x8086, 0x2030))
        devices[3].acsControl = 0x4
        devices[4].configSize = 64
        for topology in [try RuleTests.build(devices), try RuleTests.build(Array(switchTopology().dropFirst()))] {
            for a in topology.functions {
                for b in topology.functions {
                    #expect(try topology.verdict(provider: a.address, client: b.address) == topology.explain(provider: a.address, client: b.address).verdict)
                }
            }
        }
    }
}

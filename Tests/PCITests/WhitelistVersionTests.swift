import DMACore
import Foundation
import PCI
import Testing

/// The P2PDMA host-bridge rules as they changed per release (`drivers/pci/p2pdma.c`): the
/// whitelist's entries, `cpu_supports_p2pdma`, the identity device of a host bridge, and the
/// rules before the whitelist (4.20–5.3). Each case names the release it follows.
@Suite("The P2PDMA host-bridge rules per kernel release (drivers/pci/p2pdma.c)")
struct WhitelistVersionTests {
    static func k(_ text: String) -> KernelVersion { KernelVersion(parsing: text)! }

    /// Devices below two root ports of one host bridge whose identity device (00.0) is
    /// `vendor:device`: the host-bridge rule alone decides the pair 03:00.0 → 05:00.0.
    static func crossRootPorts(_ vendor: UInt16, _ device: UInt16, cpu: String = "intel:0x6", kernel: String) throws -> P2PVerdict {
        try RuleTests.build(switchTopology(hostBridgeIDs: (vendor, device)), cpu: cpu).following(k(kernel))
            .verdict(provider: bdf("0000:03:00.0"), client: bdf("0000:05:00.0"))
    }

    @Test(
        "Each whitelist entry routes from the release that added it, not the one before",
        arguments: [
            (UInt16(0x8086), UInt16(0x3c00), "5.4"), (0x8086, 0x2f01, "5.4"), (0x8086, 0x2030, "5.6"), (0x8086, 0x2020, "5.6"),
            (0x8086, 0x2031, "5.7"), (0x8086, 0x2033, "5.7"), (0x8086, 0x09a2, "5.18"), (0x1ae0, 0x0042, "7.1"),
            (0x8086, 0x0b25, "7.2"), (0x8086, 0x4948, "7.2"), (0x10de, 0x2f95, "7.3"), (0x1022, 0x15d0, "5.8"),
        ])
    func entryRelease(vendor: UInt16, device: UInt16, release: String) throws {
        let added = Self.k(release)
        let before = KernelVersion(added.major, added.minor - 1)
        #expect(try Self.crossRootPorts(vendor, device, kernel: release).mapType == .throughHostBridge, "\(release)")
        #expect(try Self.crossRootPorts(vendor, device, kernel: before.description).mapType == .notSupported, "\(before)")
        #expect(P2PHostBridgeWhitelist.entry(vendor: vendor, device: device, kernel: added)?.introduced == added)
    }

    @Test("The AMD entries (1022:1450, 15d0, 1630) left the table in 5.9, when cpu_supports_p2pdma replaced them")
    func amdEntriesRemoved() throws {
        // An Intel CPU below an AMD root complex (a made-up machine) isolates the table from the CPU rule.
        #expect(try Self.crossRootPorts(0x1022, 0x1450, kernel: "5.8").mapType == .throughHostBridge)
        #expect(try Self.crossRootPorts(0x1022, 0x1450, kernel: "5.9").mapType == .notSupported)
        #expect(P2PHostBridgeWhitelist.entries(in: Self.k("5.9")).allSatisfy { $0.vendor != 0x1022 })
        #expect(P2PHostBridgeWhitelist.entries(in: Self.k("5.8")).filter { $0.vendor == 0x1022 }.count == 3)
    }

    @Test("cpu_supports_p2pdma came in 5.9: an AMD Zen CPU routes through any host bridge from then, not before")
    func zenCPURule() throws {
        #expect(try Self.crossRootPorts(0x8086, 0x1234, cpu: "amd:0x19", kernel: "5.8").mapType == .notSupported)
        #expect(try Self.crossRootPorts(0x8086, 0x1234, cpu: "amd:0x19", kernel: "5.9") == P2PVerdict(mapType: .throughHostBridge, distance: 6, acsUnknown: false))
        let explained = try RuleTests.build(switchTopology(), cpu: "amd:0x19").following(Self.k("5.8"))
            .explain(provider: bdf("0000:03:00.0"), client: bdf("0000:05:00.0"))
        #expect(!explained.cpuSupportsP2P)
        #expect(explained.remedy?.contains("cpu_supports_p2pdma came in 5.9") == true)
    }

    @Test("A root port first on the root bus stands for its host bridge from 5.19; before, only a device at 00.0 (pci_host_bridge_dev)")
    func rootPortIdentity() throws {
        var devices = Array(switchTopology().dropFirst())  // nothing at 00.0: the root port 00:01.0 is first
        devices[0].vendor = 0x8086
        devices[0].device = 0x2030
        let t = try RuleTests.build(devices)
        #expect(t.following(Self.k("5.19")).hostBridgeDevice("pci0000:00")?.address == bdf("0000:00:01.0"))
        #expect(try t.following(Self.k("5.19")).verdict(provider: bdf("0000:03:00.0"), client: bdf("0000:05:00.0")).mapType == .throughHostBridge)
        #expect(t.following(Self.k("5.18")).hostBridgeDevice("pci0000:00") == nil)
        #expect(try t.following(Self.k("5.18")).verdict(provider: bdf("0000:03:00.0"), client: bdf("0000:05:00.0")).mapType == .notSupported)
    }

    @Test("Before 5.4 ACS redirect on the path refuses the pair; from 5.4 a whitelisted host bridge routes it (THRU_HOST_BRIDGE)")
    func acsBeforeTheWhitelist() throws {
        var devices = switchTopology(hostBridgeIDs: (0x8086, 0x2030))
        devices[3].acsControl = 0x4  // the downstream port above 03:00.0 redirects requests
        let t = try RuleTests.build(devices)
        #expect(try t.following(Self.k("5.3")).verdict(provider: bdf("0000:03:00.0"), client: bdf("0000:04:00.0")).mapType == .notSupported)
        #expect(try t.following(Self.k("5.6")).verdict(provider: bdf("0000:03:00.0"), client: bdf("0000:04:00.0")).mapType == .throughHostBridge)
        // 0x2030 came in 5.6: on 5.4 the table has no entry for it yet.
        #expect(try t.following(Self.k("5.4")).verdict(provider: bdf("0000:03:00.0"), client: bdf("0000:04:00.0")).mapType == .notSupported)
    }

    @Test("4.20–5.1 never route between root ports; 5.2 and 5.3 do between AMD Zen root complexes, by bus address at 0x1000 + hops")
    func beforeTheWhitelist() throws {
        #expect(try Self.crossRootPorts(0x1022, 0x1450, kernel: "5.1").mapType == .notSupported)
        #expect(try Self.crossRootPorts(0x1022, 0x1450, kernel: "5.2") == P2PVerdict(mapType: .busAddress, distance: 0x1000 + 6, acsUnknown: false))
        #expect(try Self.crossRootPorts(0x1022, 0x1450, kernel: "5.4") == P2PVerdict(mapType: .throughHostBridge, distance: 6, acsUnknown: false))
        #expect(try Self.crossRootPorts(0x8086, 0x2030, kernel: "5.3").mapType == .notSupported)
        let remedy = try RuleTests.build(switchTopology()).following(Self.k("5.1"))
            .explain(provider: bdf("0000:03:00.0"), client: bdf("0000:05:00.0")).remedy
        #expect(remedy?.contains("the host-bridge whitelist came in 5.4") == true)
    }

    @Test("A host bridge a later release lists: the remedy names that release")
    func laterReleaseRemedy() throws {
        let explained = try RuleTests.build(switchTopology(hostBridgeIDs: (0x8086, 0x09a2))).following(Self.k("5.15"))
            .explain(provider: bdf("0000:03:00.0"), client: bdf("0000:05:00.0"))
        #expect(explained.verdict.mapType == .notSupported)
        #expect(explained.remedy?.contains("from Linux 5.18: this kernel is 5.15") == true)
        #expect(!explained.providerHostBridge.whitelisted && explained.providerHostBridge.listedFrom == nil)
        let newer = try RuleTests.build(switchTopology(hostBridgeIDs: (0x8086, 0x09a2)))
            .explain(provider: bdf("0000:03:00.0"), client: bdf("0000:05:00.0"))
        #expect(newer.providerHostBridge.listedFrom == "5.18" && newer.verdict.mapType == .throughHostBridge)
    }

    @Test("The newest table is the default, and following a release keeps the machine and renews the verdict cache")
    func following() throws {
        let t = try RuleTests.build(switchTopology(hostBridgeIDs: (0x10de, 0x2f96)))
        #expect(t.kernel == .newest && KernelVersion.newest == Self.k("7.3"))
        #expect(try t.verdict(provider: bdf("0000:03:00.0"), client: bdf("0000:05:00.0")).mapType == .throughHostBridge)
        let old = t.following(Self.k("7.1"))
        #expect(old.kernel == Self.k("7.1") && old.functions == t.functions && old.cachedVerdicts == 0)
        #expect(try old.verdict(provider: bdf("0000:03:00.0"), client: bdf("0000:05:00.0")).mapType == .notSupported)
        #expect(t.following(.newest) === t)
    }
}

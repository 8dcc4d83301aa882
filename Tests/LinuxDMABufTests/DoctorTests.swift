import DMACore
import Foundation
@testable import LinuxDMABuf
import PCI
import Testing

/// `dmabuf doctor`'s facts and verdicts on captured roots (Fixtures/doctor, README.md there says
/// where each file came from).
@Suite struct DoctorTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/doctor").path
    static let oracle = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../PCITests/Fixtures/kernel-73").standardizedFileURL.path

    static func facts(_ name: String) throws -> DoctorFacts {
        try DoctorFacts.gather(root: DoctorRoot("\(fixtures)/\(name)"))
    }

    static func codes(_ pair: DoctorPairReport, _ effect: DoctorReason.Effect) -> [String] {
        pair.reasons.filter { $0.effect == effect }.map(\.code)
    }

    @Test func h200VirtualMachine() throws {
        let facts = try Self.facts("h200-vm")
        #expect(facts.kernel.release == DoctorFact("6.18", source: "/proc/sys/kernel/osrelease"))
        #expect(facts.kernel.pciP2PDMA == DoctorFact("not set", source: "/boot/config-6.18"))
        #expect(facts.devices.map(\.device) == ["0000:00:03.0", "0000:00:06.0"])
        #expect(facts.device("0000:00:06.0")?.kind == .gpu)
        #expect(facts.device("0000:00:06.0")?.driver == "nvidia")
        #expect(facts.device("0000:00:06.0")?.domainType.value == "none")
        #expect(facts.stack.nvidiaOpenKernelModules == true)
        let report = Doctor.report(facts)
        #expect(report.pairs.map { "\($0.provider)>\($0.client)" } == ["0000:00:06.0>0000:00:03.0"])
        let pair = try #require(report.pairs.first)
        #expect(pair.verdict == .no)
        #expect(pair.route == "not-supported")
        #expect(Self.codes(pair, .no) == ["kernel-no-p2pdma", "host-bridge"])
        #expect(pair.reasons[0].source == "/boot/config-6.18")
        #expect(pair.reasons[0].remedy?.action.contains("CONFIG_PCI_P2PDMA=y") == true)
        #expect(pair.reasons[1].text.contains("8086:0d57"))
        #expect(pair.reasons[1].remedy?.action.contains("one PCIe switch") == true)
        #expect(Self.codes(pair, .info).contains("nvidia-open"))
        #expect(Self.codes(pair, .info).contains("peer-memory"))
    }

    /// Debian's 6.12 on the q35 tree, and the capture of a real 6.12 guest with eleven NVMe
    /// controllers (every pair `no`, first because of the configuration).
    @Test(arguments: [("linux-6.12-q35", 1), ("guest-6.12-epyc", 11)])
    func linux612HasNoP2PDMA(root: String, controllers: Int) throws {
        let facts = try Self.facts(root)
        #expect(facts.kernel.pciP2PDMA == DoctorFact("not set", source: "/boot/config-6.12.95+deb12-amd64"))
        #expect(facts.kernel.moveNotify?.value == MoveNotifyConfig.off.rawValue)
        let nvme = facts.devices.filter { $0.kind == .nvme }.map(\.device)
        #expect(nvme.count == controllers)
        #expect(facts.devices.allSatisfy { $0.p2pmem == nil })
        let report = Doctor.report(facts)
        let fromNVMe = report.pairs.filter { nvme.contains($0.provider) }
        #expect(!fromNVMe.isEmpty)
        for pair in fromNVMe {
            #expect(pair.verdict == .no)
            #expect(pair.reasons.first?.code == "kernel-no-p2pdma")
            // Without P2PDMA no p2pmem can exist: the missing p2pmem is not a second reason.
            #expect(!Self.codes(pair, .no).contains("no-p2pmem"))
        }
        #expect(report.counts["zero-copy"] == nil)
    }

    /// Every pair the real 7.3 kernel judged in the oracle guests: zero-copy exactly where the
    /// kernel gave a P2P map type.
    @Test(arguments: [
        ("linux-7.3-skylake-iommu", "oracle-skylake-iommu"), ("linux-7.3-skylake-noiommu", "oracle-skylake-noiommu"),
        ("linux-7.3-epyc-iommu-pt", "oracle-epyc-iommu-pt"), ("guest-7.3-skylake-iommu", "oracle-skylake-iommu"),
    ])
    func agreesWithTheKernel73(root: String, run: String) throws {
        let facts = try Self.facts(root)
        #expect(facts.kernel.pciP2PDMA == DoctorFact("y", source: "/boot/config-7.3.4+deb13-amd64"))
        #expect(facts.kernel.moveNotify?.value == MoveNotifyConfig.alwaysOn.rawValue)
        let rows = try String(contentsOfFile: "\(Self.oracle)/\(run)/verdicts.tsv", encoding: .utf8).split(separator: "\n").dropFirst()
        var compared = 0
        for row in rows {
            let columns = row.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard columns[0] != columns[1] else { continue }
            let pair = Doctor.judge(provider: columns[0], client: columns[1], facts)
            let kernelP2P = columns[2] == "bus_addr" || columns[2] == "thru_host_bridge"
            #expect((pair.verdict == .zeroCopy) == kernelP2P, "\(columns[0]) <- \(columns[1]): kernel \(columns[2]), doctor \(pair.verdict)")
            compared += 1
        }
        #expect(compared == 110)
    }

    @Test func acsRedirectOnAndOff() throws {
        let on = Doctor.judge(provider: "0000:0b:00.0", client: "0000:0b:00.1", try Self.facts("linux-7.3-skylake-iommu"))
        #expect(on.verdict == .no)
        let acs = try #require(on.reasons.first)
        #expect(acs.code == "acs-redirect")
        #expect(acs.text.contains("0000:00:12.0"))
        #expect(acs.text.contains("intel_iommu=on iommu=nopt"))
        #expect(acs.remedy?.action == "add the kernel parameter pci=disable_acs_redir=0000:00:12.0")
        #expect(acs.remedy?.cost.contains("weakens IOMMU isolation") == true)
        let off = Doctor.judge(provider: "0000:0b:00.0", client: "0000:0b:00.1", try Self.facts("linux-7.3-skylake-noiommu"))
        #expect(off.verdict == .zeroCopy)
        #expect(off.route == "bus-address")
        #expect(off.reasons.allSatisfy { $0.effect == .info })
    }

    /// rxe0 on dummy0: as the notes describe it, and as a real 7.3 guest made it (`rdma link add`).
    @Test(arguments: ["linux-7.3-rxe", "guest-7.3-skylake-iommu"])
    func softwareRDMA(root: String) throws {
        let facts = try Self.facts(root)
        #expect(facts.rdma == [DoctorRDMAFacts(name: "rxe0", pciParent: nil, netdev: "dummy0", source: "/sys/class/infiniband/rxe0 (no device link)")])
        let report = Doctor.report(facts)
        let toRXE = report.pairs.filter { $0.client == "rxe0" }
        // Every provider: the eleven NVMe controllers and QEMU's VGA (a GPU with no driver).
        #expect(toRXE.count == 12)
        #expect(facts.devices.filter { $0.kind == .gpu }.map(\.device) == ["0000:00:01.0"])
        for pair in toRXE {
            #expect(pair.verdict == .no)
            #expect(pair.route == nil)
            #expect(pair.reasons.first?.code == "software-rdma")
            #expect(pair.reasons.first?.text.contains("dummy0") == true)
        }
        #expect(try Doctor.resolve("rxe0", in: facts) == "rxe0")
        #expect(throws: DMAError.self) { try Doctor.resolve("mlx5_0", in: facts) }
    }

    /// A copy of the H200 VM root on an AMD Zen CPU with P2PDMA (so the GPU reaches the NIC
    /// through the host bridge) and the NIC's mask narrowed: the GPU's BARs lie above 2^44.
    static func maskRoot(bits: Int, domain: String?, driver: String = "nvidia", config: String = "CONFIG_PCI_P2PDMA=y\n", release: String = "7.3.4")
        throws -> String
    {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("doctor-\(UUID().uuidString)").path
        try fm.createDirectory(atPath: "\(root)/proc/sys/kernel", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(root)/boot", withIntermediateDirectories: true)
        try fm.copyItem(atPath: URL(fileURLWithPath: "\(fixtures)/h200-vm/sys").resolvingSymlinksInPath().path, toPath: "\(root)/sys")
        try release.write(toFile: "\(root)/proc/sys/kernel/osrelease", atomically: true, encoding: .utf8)
        try "vendor_id\t: AuthenticAMD\ncpu family\t: 25\n".write(toFile: "\(root)/proc/cpuinfo", atomically: true, encoding: .utf8)
        try config.write(toFile: "\(root)/boot/config-\(release)", atomically: true, encoding: .utf8)
        let nic = "\(root)/sys/devices/pci0000:00/0000:00:03.0"
        try "\(bits)\n".write(toFile: "\(nic)/dma_mask_bits", atomically: true, encoding: .utf8)
        try "\(driver)\n".write(toFile: "\(root)/sys/devices/pci0000:00/0000:00:06.0/driver_name", atomically: true, encoding: .utf8)
        if let domain {
            try fm.createDirectory(atPath: "\(root)/sys/kernel/iommu_groups/7", withIntermediateDirectories: true)
            try "\(domain)\n".write(toFile: "\(root)/sys/kernel/iommu_groups/7/type", atomically: true, encoding: .utf8)
            try fm.createSymbolicLink(atPath: "\(nic)/iommu_group", withDestinationPath: "../../../kernel/iommu_groups/7")
        }
        return root
    }

    /// The real guest's IOMMU groups: intel-iommu with iommu=nopt gives each group a DMA-FQ domain
    /// (Debian's CONFIG_IOMMU_DEFAULT_DMA_LAZY), and the two functions of 0b:00 share a group.
    @Test func realIOMMUGroups() throws {
        let facts = try Self.facts("guest-7.3-skylake-iommu")
        #expect(facts.kernel.configIOMMUDefault?.value == "DMA-FQ")
        let a = try #require(facts.device("0000:0b:00.0")), b = try #require(facts.device("0000:0b:00.1"))
        #expect(a.iommuGroup == 14 && b.iommuGroup == 14)
        #expect(a.domainType == DoctorFact("DMA-FQ", source: "/sys/kernel/iommu_groups/14/type"))
        #expect(facts.devices.allSatisfy { $0.domainType.value == "DMA-FQ" })
    }

    @Test func thirtyTwoBitMaskAgainstABARAbove4GiB() throws {
        func judge(bits: Int, domain: String?) throws -> DoctorPairReport {
            let root = try Self.maskRoot(bits: bits, domain: domain)
            defer { try? FileManager.default.removeItem(atPath: root) }
            return Doctor.judge(provider: "0000:00:06.0", client: "0000:00:03.0", try DoctorFacts.gather(root: DoctorRoot(root)))
        }
        let wide = try judge(bits: 64, domain: nil)
        #expect(wide.verdict == .zeroCopy)
        #expect(wide.route == "through-host-bridge")

        let noIOMMU = try judge(bits: 32, domain: nil)
        #expect(noIOMMU.verdict == .no)
        #expect(Self.codes(noIOMMU, .no) == ["dma-mask"])
        #expect(noIOMMU.reasons[0].text.contains("32-bit DMA mask"))
        #expect(noIOMMU.reasons[0].remedy?.action.contains("intel_iommu=on or amd_iommu=on") == true)

        let identity = try judge(bits: 32, domain: "identity")
        #expect(identity.verdict == .no)
        #expect(identity.reasons[0].code == "dma-mask")
        #expect(identity.reasons[0].remedy?.action.contains("echo DMA > /sys/kernel/iommu_groups/7/type") == true)
        #expect(identity.reasons[0].remedy?.cost.contains("translated by the IOMMU") == true)

        let translated = try judge(bits: 32, domain: "DMA-FQ")
        #expect(translated.verdict == .zeroCopy)
        #expect(translated.reasons.contains { $0.code == "dma-mask" && $0.effect == .info && $0.text.contains("DMA-FQ") })
        #expect(translated.reasons.contains { $0.code == "iommu-domain" && $0.text.contains("group 7, domain DMA-FQ") && $0.source == "/sys/kernel/iommu_groups/7/type" })
    }

    /// The host-bridge rules of the machine's own release (drivers/pci/p2pdma.c): the AMD Zen CPU
    /// of the root routes through the host bridge from 5.9 (cpu_supports_p2pdma), not on 5.8, and
    /// the doctor then names the release that would.
    @Test func hostBridgeRulesOfTheRunningRelease() throws {
        func judge(_ release: String) throws -> DoctorPairReport {
            let root = try Self.maskRoot(bits: 64, domain: nil, release: release)
            defer { try? FileManager.default.removeItem(atPath: root) }
            return Doctor.judge(provider: "0000:00:06.0", client: "0000:00:03.0", try DoctorFacts.gather(root: DoctorRoot(root)))
        }
        let old = try judge("5.8.18")
        #expect(old.verdict == .no && old.route == "not-supported")
        let reason = try #require(old.reasons.first { $0.code == "host-bridge" })
        #expect(reason.text.contains("is an AMD Zen, but Linux 5.8 has no cpu_supports_p2pdma (it came in 5.9)"))
        #expect(reason.remedy?.action.hasPrefix("boot Linux 5.9 or newer") == true)
        let new = try judge("5.9.16")
        #expect(new.verdict == .zeroCopy && new.route == "through-host-bridge")
    }

    /// amdgpu migrates what it cannot share: degraded, with the copy named.
    @Test func migratingExporter() throws {
        func judge(config: String, release: String, swiotlb: Bool = false) throws -> DoctorPairReport {
            let root = try Self.maskRoot(bits: 64, domain: nil, driver: "amdgpu", config: config, release: release)
            defer { try? FileManager.default.removeItem(atPath: root) }
            if swiotlb { try "swiotlb=force\n".write(toFile: "\(root)/proc/cmdline", atomically: true, encoding: .utf8) }
            return Doctor.judge(provider: "0000:00:06.0", client: "0000:00:03.0", try DoctorFacts.gather(root: DoctorRoot(root)))
        }
        let pins = try judge(config: "CONFIG_PCI_P2PDMA=y\n# CONFIG_DMABUF_MOVE_NOTIFY is not set\n", release: "6.12.95")
        #expect(pins.verdict == .degraded)
        #expect(Self.codes(pins, .degraded) == ["move-notify-off"])
        #expect(pins.copies?.kind == "migrate")
        #expect(pins.reasons[0].remedy?.action.contains("7.1") == true)

        let notified = try judge(config: "CONFIG_PCI_P2PDMA=y\n", release: "7.3.4")
        #expect(notified.verdict == .zeroCopy)

        let noP2P = try judge(config: "# CONFIG_PCI_P2PDMA is not set\n", release: "7.3.4", swiotlb: true)
        #expect(noP2P.verdict == .degraded)
        #expect(Self.codes(noP2P, .degraded) == ["kernel-no-p2pdma", "migrates", "swiotlb-force"])
        #expect(noP2P.copies?.kind == "bounce")
    }

    /// What --capture writes is enough: the same report from the copy as from the original.
    @Test(arguments: ["h200-vm", "linux-7.3-skylake-iommu", "linux-6.12-q35", "linux-7.3-rxe", "guest-7.3-skylake-iommu", "guest-6.12-epyc"])
    func captureGivesTheSameReport(root: String) throws {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("doctor-capture-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let written = try DoctorCapture.capture(from: DoctorRoot("\(Self.fixtures)/\(root)"), to: copy)
        #expect(written > 10)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let original = try encoder.encode(Doctor.report(try Self.facts(root)))
        let captured = try encoder.encode(Doctor.report(try DoctorFacts.gather(root: DoctorRoot(copy))))
        #expect(String(decoding: captured, as: UTF8.self) == String(decoding: original, as: UTF8.self))
    }

    /// No configuration file: the doctor looks for pci_p2pdma_add_resource in /proc/kallsyms.
    @Test(arguments: [(true, "y"), (false, "not set")])
    func kallsymsWhenNoConfig(present: Bool, expected: String) throws {
        let root = try Self.maskRoot(bits: 64, domain: nil)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.removeItem(atPath: "\(root)/boot/config-7.3.4")
        let symbols = "ffffffff81000000 T _stext\n" + (present ? "ffffffff81234560 T pci_p2pdma_add_resource\n" : "")
        try symbols.write(toFile: "\(root)/proc/kallsyms", atomically: true, encoding: .utf8)
        let facts = try DoctorFacts.gather(root: DoctorRoot(root))
        #expect(facts.kernel.configSource == "/proc/kallsyms")
        #expect(facts.kernel.pciP2PDMA.value == expected)
    }
}

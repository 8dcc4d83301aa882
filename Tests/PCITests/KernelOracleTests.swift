import DMACore
import Foundation
import PCI
import Testing

/// The real Linux kernel as the judge of the model's P2P rules, without booting it: each folder
/// under `Fixtures/kernel-73/` is one guest run of the P2P oracle tier (scripts/kernel-tier,
/// docs/kernel-tier.md): the `sys/` tree the guest's kernel built, its `proc/cpuinfo`, and
/// `verdicts.tsv`, the kernel's own `pci_p2pdma_map_type` result for every ordered pair of NVMe
/// controllers (read with a kprobe while an `O_DIRECT` read moved bytes between them). A change
/// to the rules of `drivers/pci/p2pdma.c` as the model holds them that the kernel would not make
/// fails here.
@Suite("The kernel's own P2P verdicts (Linux 7.3 under QEMU) against the model")
struct KernelOracleTests {
    /// One run folder and its kernel verdicts.
    struct Run: CustomTestStringConvertible, Sendable {
        let name: String
        let folder: URL
        var testDescription: String { name }

        /// The kernel's verdict per ordered pair: `bus_addr`, `thru_host_bridge` or `not_supported`.
        func kernelVerdicts() throws -> [(provider: String, client: String, mapType: P2PMapType, outcome: String)] {
            let text = try String(contentsOf: folder.appendingPathComponent("verdicts.tsv"), encoding: .utf8)
            var lines = text.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
            let header = lines.removeFirst()
            let column = { (name: String) throws -> Int in try #require(header.firstIndex(of: name), "no column \(name)") }
            let (p, c, m, o) = (try column("provider"), try column("client"), try column("kernel_map_type"), try column("outcome"))
            return try lines.map { fields in
                let mapType: P2PMapType
                switch fields[m] {
                case "bus_addr": mapType = .busAddress
                case "thru_host_bridge": mapType = .throughHostBridge
                case "not_supported": mapType = .notSupported
                default: throw KernelOracleError("\(name): unknown kernel map type \(fields[m])")
                }
                return (fields[p], fields[c], mapType, fields[o])
            }
        }

        func topology() throws -> PCITopology {
            let cpuinfo = try String(contentsOf: folder.appendingPathComponent("proc/cpuinfo"), encoding: .utf8)
            let cpu = try #require(CPUInfo.parse(procCPUInfo: cpuinfo))
            return try SysfsTopologyLoader.load(root: folder.appendingPathComponent("sys").path, cpu: cpu)
        }
    }

    struct KernelOracleError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Every run folder committed under `Fixtures/kernel-73`, so a new run is tested by being added.
    static let runs: [Run] = {
        let base = fixtures.appendingPathComponent("kernel-73")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? []
        return names.sorted().map { Run(name: $0, folder: base.appendingPathComponent($0)) }
            .filter { FileManager.default.fileExists(atPath: $0.folder.appendingPathComponent("verdicts.tsv").path) }
    }()

    static let tierRuns = ["epyc-noiommu", "epyc-iommu", "epyc-iommu-pt", "skylake-noiommu", "skylake-iommu", "skylake-iommu-pt"]

    @Test("The oracle runs are there: both runs of the notes and the tier's six (two CPUs, three IOMMU modes)")
    func runsPresent() {
        let names = Set(Self.runs.map(\.name))
        #expect(names.isSuperset(of: ["switch-epyc-noiommu", "switch-skylake-iommu"] + Self.tierRuns.map { "oracle-" + $0 }))
    }

    @Test("The tier's topology: 11 controllers, so 121 ordered pairs in every run, each one judged")
    func tierRunsAskEveryPair() throws {
        for name in Self.tierRuns {
            let run = try #require(Self.runs.first { $0.name == "oracle-" + name })
            let verdicts = try run.kernelVerdicts()
            #expect(verdicts.count == 121, "\(name)")
            #expect(Set(verdicts.map(\.provider)).count == 11 && Set(verdicts.map(\.client)).count == 11, "\(name)")
        }
    }

    /// The kernel's verdict for one pair of one run.
    func kernelMapType(_ run: String, _ provider: String, _ client: String) throws -> P2PMapType? {
        let found = try #require(Self.runs.first { $0.name == run })
        return try found.kernelVerdicts().first { $0.provider == provider && $0.client == client }?.mapType
    }

    @Test("What the kernel changes with the IOMMU and the CPU, pair by pair, as the model must")
    func kernelDifferences() throws {
        // Two functions of one device below root port 00:12.0: the root port routes them to each
        // other until the kernel enables ACS redirect there, which it does when an IOMMU is on
        // (pci_enable_acs), iommu=pt included; then only the host bridge can route them, and only
        // an AMD Zen CPU lets it (cpu_supports_p2pdma).
        let (f0, f1) = ("0000:0b:00.0", "0000:0b:00.1")
        #expect(try kernelMapType("oracle-epyc-noiommu", f0, f1) == .busAddress)
        #expect(try kernelMapType("oracle-epyc-iommu", f0, f1) == .throughHostBridge)
        #expect(try kernelMapType("oracle-epyc-iommu-pt", f0, f1) == .throughHostBridge)
        #expect(try kernelMapType("oracle-skylake-noiommu", f0, f1) == .busAddress)
        #expect(try kernelMapType("oracle-skylake-iommu", f0, f1) == .notSupported)
        // Two ports of a switch, one nested in the other: the switch routes them whatever the
        // IOMMU does (its ports have no ACS capability in QEMU).
        for run in Self.tierRuns {
            #expect(try kernelMapType("oracle-" + run, "0000:04:00.0", "0000:09:00.0") == .busAddress, "\(run)")
        }
        // The second host bridge (pxb-pcie) and a device behind a conventional PCI bridge.
        #expect(try kernelMapType("oracle-epyc-noiommu", "0000:41:00.0", "0000:01:01.0") == .throughHostBridge)
        #expect(try kernelMapType("oracle-skylake-noiommu", "0000:41:00.0", "0000:01:01.0") == .notSupported)
    }

    @Test("Every ordered pair: the model's map type is the kernel's", arguments: runs)
    func everyPairAgrees(run: Run) throws {
        let topology = try run.topology()
        let verdicts = try run.kernelVerdicts()
        #expect(verdicts.count >= 16, "too few pairs in \(run.name)")
        var disagreements: [String] = []
        for pair in verdicts {
            let model = try topology.verdict(provider: try PCIAddress(parsing: pair.provider), client: try PCIAddress(parsing: pair.client))
            if model.mapType != pair.mapType {
                disagreements.append("\(pair.provider) -> \(pair.client): kernel \(pair.mapType), model \(model.mapType)")
            }
        }
        #expect(disagreements.isEmpty, "\(run.name): \(disagreements.joined(separator: "; "))")
    }

    @Test("The kernel's outcome follows its map type: refused pairs fail with EINVAL, the others transfer", arguments: runs)
    func outcomeFollowsMapType(run: Run) throws {
        for pair in try run.kernelVerdicts() {
            switch pair.mapType {
            case .notSupported: #expect(pair.outcome == "refused_EINVAL", "\(pair.provider) -> \(pair.client)")
            case .busAddress, .throughHostBridge: #expect(pair.outcome == "ok" || pair.outcome == "dma_lost", "\(pair.provider) -> \(pair.client)")
            }
        }
    }

    @Test("A rule broken on purpose is caught: the notes' runs tell a whitelisted host bridge from one that is not")
    func brokenRuleIsCaught() throws {
        // The Skylake run refuses pairs the EPYC run allows through the host bridge; had the model
        // ignored the CPU (cpu_supports_p2pdma), one of the two runs would disagree.
        let epyc = try #require(Self.runs.first { $0.name == "switch-epyc-noiommu" })
        let verdicts = try epyc.kernelVerdicts()
        let throughHostBridge = verdicts.filter { $0.mapType == .throughHostBridge }
        #expect(!throughHostBridge.isEmpty)
        let folder = epyc.folder.appendingPathComponent("sys").path
        let asIntel = try SysfsTopologyLoader.load(root: folder, cpu: CPUInfo(vendor: .intel, family: 6))
        for pair in throughHostBridge {
            let model = try asIntel.verdict(provider: try PCIAddress(parsing: pair.provider), client: try PCIAddress(parsing: pair.client))
            #expect(model.mapType != pair.mapType)
        }
    }
}

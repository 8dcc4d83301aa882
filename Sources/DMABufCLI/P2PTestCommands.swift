import ArgumentParser
import DMACore
import Foundation
import Glibc
import LinuxDMABuf
import PCI

/// One pair judged twice: by the running kernel (a real transfer) and by the model (the rules of
/// `drivers/pci/p2pdma.c` on the same sysfs tree).
struct P2PJudgement: Encodable {
    let provider: String
    let client: String
    /// The kernel's measurement.
    let kernel: P2PTransferOutcome
    /// The model's map type for the pair.
    let model: String
    /// `agree`, `disagree`, or `inconclusive` (the read failed for a reason that says nothing of P2P).
    let verdict: String
    /// One sentence: what the kernel did and what the model said.
    let summary: String

    /// Compares the kernel with the model. With the kernel's own map type (a kprobe trace), the two
    /// map types must be equal; without it, a refused read must be the model's `not-supported`
    /// and a completed one a supported route (bus address or through the host bridge).
    init(kernel: P2PTransferOutcome, model: P2PVerdict) {
        self.provider = kernel.provider
        self.client = kernel.client
        self.kernel = kernel
        self.model = model.mapType.rawValue
        let agrees: Bool?
        if let kernelType = kernel.kernelMapType {
            agrees = kernelType == model.mapType.rawValue
        } else {
            switch kernel.result {
            case .refused: agrees = model.mapType == .notSupported
            case .transferred, .bytesWrong: agrees = model.mapType != .notSupported
            case .failed: agrees = nil
            }
        }
        verdict = agrees.map { $0 ? "agree" : "disagree" } ?? "inconclusive"
        var said = "\(kernel.result.rawValue)"
        if let errno = kernel.errno { said += " (\(errno))" }
        if let type = kernel.kernelMapType { said += ", kernel map type \(type)" }
        summary = "kernel: \(said); model: \(model.mapType.rawValue)"
    }
}

/// What `p2p test` and `topo --verify` print as JSON.
struct P2PVerifyReport: Encodable {
    let kernelRelease: String?
    let pciP2PDMA: String
    let providers: [PublishedP2PMemory]
    let kernelMapTypeTraced: Bool
    let pairs: [P2PJudgement]
    let agree: Int
    let disagree: Int
    let inconclusive: Int
    /// Set when nothing could be tested, with the reason.
    let nothingToTest: String?
}

/// The shared machinery of `dmabuf p2p test` and `dmabuf topo --verify`.
struct P2PVerifier {
    let sysfs: String
    let topology: PCITopology
    let kprobe: Bool

    /// Why this machine has nothing to test, or `nil` when it has a provider and a client.
    static func nothingToTest(sysfs: String, providers: [PublishedP2PMemory], clients: [String], config: KernelConfig?) -> String? {
        if providers.filter(\.mappable).isEmpty {
            if let config, config.value("CONFIG_PCI_P2PDMA") == "not set" {
                return "nothing to test here: this kernel is built without CONFIG_PCI_P2PDMA (\(config.source)), so no device can publish peer-to-peer memory and every P2P pair is impossible on it, whatever the topology"
            }
            if providers.isEmpty {
                return "nothing to test here: no PCI device under \(sysfs) publishes peer-to-peer memory (a p2pmem/ folder appears when a driver registers BAR memory, such as the nvme driver for a controller memory buffer)"
            }
            return "nothing to test here: \(providers.map(\.device).joined(separator: ", ")) have p2pmem but no p2pmem/allocate (Linux 6.2 or newer maps it for user space)"
        }
        if clients.isEmpty {
            return "nothing to test here: no PCI device under \(sysfs) drives a block device, so no client can be made to read into peer-to-peer memory"
        }
        return nil
    }

    /// Runs the pairs, each once, under one kprobe trace and one kernel-log cursor.
    func judge(_ pairs: [(String, String)]) throws -> [P2PJudgement] {
        let trace: P2PMapTypeTrace?
        if kprobe {
            do { trace = try P2PMapTypeTrace() } catch { throw CLIError(error.message + " (--kprobe)", errno: error.errno) }
        } else {
            trace = nil
        }
        var log = try? KernelLogCursor()
        var judgements: [P2PJudgement] = []
        for (provider, client) in pairs {
            let model: P2PVerdict
            do {
                model = try topology.verdict(provider: try PCIAddress(parsing: provider), client: try PCIAddress(parsing: client))
            } catch {
                throw CLIError(error)
            }
            let outcome: P2PTransferOutcome
            do {
                outcome = try P2PTransferTest.run(provider: provider, client: client, sysfs: sysfs, trace: trace, log: &log)
            } catch {
                throw CLIError(error)
            }
            judgements.append(P2PJudgement(kernel: outcome, model: model))
        }
        return judgements
    }

    static func report(_ pairs: [P2PJudgement], providers: [PublishedP2PMemory], traced: Bool, nothing: String?) -> P2PVerifyReport {
        P2PVerifyReport(
            kernelRelease: KernelConfig.release(), pciP2PDMA: KernelConfig.read()?.value("CONFIG_PCI_P2PDMA") ?? "unknown",
            providers: providers, kernelMapTypeTraced: traced, pairs: pairs,
            agree: pairs.filter { $0.verdict == "agree" }.count, disagree: pairs.filter { $0.verdict == "disagree" }.count,
            inconclusive: pairs.filter { $0.verdict == "inconclusive" }.count, nothingToTest: nothing)
    }

    static func render(_ report: P2PVerifyReport) -> String {
        if let nothing = report.nothingToTest { return nothing + "\n" }
        var out = "kernel \(report.kernelRelease ?? "?"), CONFIG_PCI_P2PDMA \(report.pciP2PDMA); "
        out += report.kernelMapTypeTraced ? "the kernel's map type read with a kprobe on pci_p2pdma_map_type\n" : "judged by the transfer's outcome (add --kprobe to read the kernel's map type)\n"
        for pair in report.pairs {
            out += "\(pair.verdict == "agree" ? "ok  " : pair.verdict == "disagree" ? "DIFF" : "??  ") \(pair.provider) <- \(pair.client) (\(pair.kernel.blockDevice)): \(pair.summary)\n"
            if pair.kernel.result == .bytesWrong {
                out += "     the read completed but the bytes did not land in the provider's memory\n"
            }
            for line in pair.kernel.kernelLog { out += "     kernel: \(line)\n" }
        }
        out += "\(report.agree) agree, \(report.disagree) disagree, \(report.inconclusive) inconclusive\n"
        return out
    }

    static func requireRoot() throws {
        guard geteuid() == 0 else {
            throw CLIError("a real P2P transfer needs root: it maps p2pmem/allocate and opens the client's block device with O_DIRECT (run it with sudo)")
        }
    }
}

extension DMABufCommand {
    /// `dmabuf p2p`: peer-to-peer transfers the running kernel judges.
    package struct P2P: ParsableCommand {
        package static let configuration = CommandConfiguration(
            commandName: "p2p",
            abstract: "Make the running kernel judge a P2P pair with a real transfer, next to the model's verdict.",
            subcommands: [Test.self]
        )
        package init() {}

        /// `dmabuf p2p test PROVIDER CLIENT`.
        package struct Test: ParsableCommand {
            package static let configuration = CommandConfiguration(
                abstract: "Read CLIENT's block device into PROVIDER's published p2pmem and compare the kernel's answer with the model's.",
                discussion: """
                    PROVIDER must publish peer-to-peer memory (/sys/bus/pci/devices/PROVIDER/p2pmem/allocate,
                    an NVMe controller memory buffer for example); CLIENT must drive a block device. Nothing is
                    written to any disk: the first 8 KiB are read into host memory, then into the provider's
                    memory with O_DIRECT. Needs root. Exit status: 0 when the kernel and the model agree, 1 when
                    they disagree or the transfer says nothing, 2 on bad input.
                    Examples:
                      sudo dmabuf p2p test 0000:03:00.0 0000:04:00.0
                      sudo dmabuf p2p test 03:00.0 04:00.0 --kprobe --json
                    """
            )
            @Argument(help: "The device whose memory is written (BDF).") var provider: String
            @Argument(help: "The device that does the DMA: its block device is read (BDF).") var client: String
            @Option(help: ArgumentHelp("The sysfs root.", valueName: "DIR")) var sysfs = "/sys"
            @Flag(help: "Read the kernel's own map type with a kprobe on pci_p2pdma_map_type (tracefs).") var kprobe = false
            @Flag(help: "Print the JSON report.") var json = false

            package init() {}

            package func run() throws {
                let providerAddress: PCIAddress, clientAddress: PCIAddress
                do {
                    providerAddress = try PCIAddress(parsing: provider)
                    clientAddress = try PCIAddress(parsing: client)
                } catch {
                    throw CLIError("\(error.message) (PROVIDER \(provider), CLIENT \(client))", errno: error.errno)
                }
                let topology = try TopologySource.sysfs(sysfs).load()
                for (role, address, text) in [("PROVIDER", providerAddress, provider), ("CLIENT", clientAddress, client)]
                where topology.function(address) == nil {
                    throw CLIError("\(role) \(text) is not a PCI device under \(sysfs)")
                }
                let providers = PublishedP2PMemory.all(sysfs: sysfs)
                guard let memory = providers.first(where: { $0.device == providerAddress.description }), memory.mappable else {
                    let reason = P2PVerifier.nothingToTest(sysfs: sysfs, providers: [], clients: [], config: liveKernelConfig(sysfs))
                        ?? "nothing to test here"
                    throw CLIError("\(providerAddress) publishes no peer-to-peer memory; \(reason)")
                }
                guard !PCIBlockDevices.of(device: clientAddress.description, sysfs: sysfs).isEmpty else {
                    throw CLIError("\(clientAddress) drives no block device, so it cannot be made to read into \(providerAddress)'s memory")
                }
                try P2PVerifier.requireRoot()
                let verifier = P2PVerifier(sysfs: sysfs, topology: topology, kprobe: kprobe)
                let pairs = try verifier.judge([(providerAddress.description, clientAddress.description)])
                let report = P2PVerifier.report(pairs, providers: [memory], traced: kprobe, nothing: nil)
                if json { try printJSON(report) } else { print(P2PVerifier.render(report), terminator: "") }
                if report.agree != pairs.count { throw ExitCode(1) }
            }
        }
    }
}

extension TopologySource {
    /// A source reading the given sysfs root with the host's CPU.
    static func sysfs(_ root: String) throws -> TopologySource {
        try TopologySource.parse(["--sysfs", root])
    }
}

/// The running kernel's configuration when `sysfs` is the live `/sys`; `nil` for a copy, whose
/// kernel is not the one running.
func liveKernelConfig(_ sysfs: String) -> KernelConfig? {
    isLiveSysfs(sysfs) ? KernelConfig.read() : nil
}

/// Whether a sysfs root is this machine's own `/sys` (so its kernel is the one running).
func isLiveSysfs(_ sysfs: String) -> Bool {
    URL(fileURLWithPath: sysfs).standardizedFileURL.path == "/sys"
}

/// `dmabuf topo --verify`: every eligible pair of the live machine, each judged by the kernel.
func verifyEveryPair(sysfs: String, topology: PCITopology, kprobe: Bool, json: Bool) throws {
    let providers = PublishedP2PMemory.all(sysfs: sysfs)
    let clients = topology.functions.map(\.address.description).filter { !PCIBlockDevices.of(device: $0, sysfs: sysfs).isEmpty }
    if let nothing = P2PVerifier.nothingToTest(sysfs: sysfs, providers: providers, clients: clients, config: liveKernelConfig(sysfs)) {
        let report = P2PVerifier.report([], providers: providers, traced: false, nothing: nothing)
        if json { try printJSON(report) } else { print(P2PVerifier.render(report), terminator: "") }
        return
    }
    try P2PVerifier.requireRoot()
    let pairs = providers.filter(\.mappable).flatMap { provider in clients.map { (provider.device, $0) } }
    let judged = try P2PVerifier(sysfs: sysfs, topology: topology, kprobe: kprobe).judge(pairs)
    let report = P2PVerifier.report(judged, providers: providers, traced: kprobe, nothing: nil)
    if json { try printJSON(report) } else { print(P2PVerifier.render(report), terminator: "") }
    if report.agree != judged.count { throw ExitCode(1) }
}

/// What the running kernel adds to a topology read from sysfs: each device's published p2pmem, and
/// on the live machine (`/sys`) whether the kernel can do P2PDMA at all (`CONFIG_PCI_P2PDMA`,
/// `drivers/pci/Kconfig`: without it `pci_p2pdma_distance` and the p2pmem pools do not exist, so
/// every pair is impossible whatever the rules say). Empty for a YAML topology (`sysfs` nil).
func renderRunningKernelFacts(sysfs: String?, config: @autoclosure () -> KernelConfig? = KernelConfig.read()) -> String {
    guard let sysfs else { return "" }
    var out = ""
    let memory = PublishedP2PMemory.all(sysfs: sysfs)
    if !memory.isEmpty {
        out += "Published peer-to-peer memory (p2pmem):\n"
        for pool in memory {
            out += "  \(pool.device): \(formatBytes(pool.size)), \(formatBytes(pool.available)) free, "
            out += pool.published ? "published" : "not published"
            out += pool.mappable ? "" : ", no p2pmem/allocate"
            out += "\n"
        }
    }
    guard isLiveSysfs(sysfs) else { return out }
    let release = KernelConfig.release() ?? "unknown release"
    if let config = config() {
        if config.value("CONFIG_PCI_P2PDMA") == "not set" {
            out += "The running kernel (\(release)) is built without CONFIG_PCI_P2PDMA (\(config.source)): every P2P pair is impossible on it, whatever the topology; the verdicts above are what a kernel with P2PDMA would decide.\n"
        } else {
            out += "The running kernel (\(release)) has CONFIG_PCI_P2PDMA=\(config.value("CONFIG_PCI_P2PDMA")) (\(config.source)).\n"
        }
    } else {
        out += "The running kernel's configuration is not readable (/proc/config.gz, /boot/config-\(release)): whether it can do P2PDMA at all is unknown.\n"
    }
    return out
}

import ArgumentParser
import DMACore
import Foundation
import LinuxDMABuf
import PCI

extension DMABufCommand {
    /// `dmabuf doctor`: will a transfer between two devices be zero-copy on this machine, and if
    /// not, why and what to change (docs/doctor.md).
    package struct Doctor: ParsableCommand {
        package static let configuration = CommandConfiguration(
            abstract: "Say whether each GPU/NIC/NVMe pair's transfer will be zero-copy here, why not, and what to change.",
            discussion: """
                Every pair of a provider (a GPU, an NVMe controller, an accelerator, a device with
                p2pmem) and a client (any of those, a NIC, an RDMA device) gets one verdict:
                zero-copy, degraded (works, but migrates or bounces) or no, with every reason,
                the file it was read from, and a remedy with its cost.

                Exit codes: 0 every pair asked is zero-copy, 1 otherwise, 2 bad input.

                Examples:
                  dmabuf doctor                                 # every pair of this machine
                  dmabuf doctor 0000:41:00.0 mlx5_0             # one pair (an RDMA device by name)
                  dmabuf doctor --capture /tmp/machine          # copy what the doctor reads
                  dmabuf doctor --root /tmp/machine --json      # the same diagnosis, offline
                """
        )

        @Argument(help: "The device whose memory is shared (BDF); default: every provider.") var provider: String?
        @Argument(help: "The device that does the DMA (BDF or RDMA device name); default: every client.") var client: String?
        @Flag(help: "Print the report as JSON.") var json = false
        @Option(help: ArgumentHelp("Read a captured machine (a folder with sys/, proc/, boot/) instead of /.", valueName: "DIR"))
        var root: String?
        @Option(help: ArgumentHelp("Copy the files the doctor reads from this machine into DIR, and stop.", valueName: "DIR"))
        var capture: String?

        package init() {}

        package func validate() throws {
            if capture != nil, provider != nil || json || root != nil {
                throw ValidationError("--capture copies the live machine: give it alone")
            }
        }

        package func run() throws {
            if let capture {
                let written: Int
                do { written = try DoctorCapture.capture(to: capture) } catch { throw CLIError(error.message) }
                print("captured \(written) files and links into \(capture); diagnose them anywhere with: dmabuf doctor --root \(capture)")
                return
            }
            let facts: DoctorFacts
            do {
                facts = try DoctorFacts.gather(root: DoctorRoot(root ?? "/"))
            } catch let error as TopologyLoadError {
                throw CLIError(error.description)
            }
            var asked: [(provider: String, client: String)]?
            do {
                if let provider {
                    let p = try LinuxDMABuf.Doctor.resolve(provider, in: facts)
                    if let client {
                        asked = [(p, try LinuxDMABuf.Doctor.resolve(client, in: facts))]
                    } else {
                        asked = (facts.devices.map(\.device) + facts.rdma.map(\.name)).filter { $0 != p }.map { (p, $0) }
                    }
                }
            } catch {
                throw CLIError(error.message)
            }
            let report = LinuxDMABuf.Doctor.report(facts, pairs: asked)
            if json {
                try printJSON(report)
            } else {
                print(renderDoctor(report, details: asked?.count == 1), terminator: "")
            }
            if report.pairs.isEmpty || report.pairs.contains(where: { $0.verdict != .zeroCopy }) { throw ExitCode(1) }
        }
    }
}

/// `dmabuf doctor` in words: the counts, each pair's verdict with its deciding reasons and
/// remedies (every reason with `details`), then the facts read and where from.
func renderDoctor(_ report: DoctorReport, details: Bool) -> String {
    var out = ""
    if report.pairs.isEmpty {
        out += "no pair to judge: this machine has no P2P provider (GPU, NVMe controller, accelerator, p2pmem) and client\n"
    } else {
        let counts = ["zero-copy", "degraded", "no"].compactMap { key in report.counts[key].map { "\($0) \(key)" } }
        out += "\(report.pairs.count) pair(s): \(counts.joined(separator: ", "))\n"
    }
    for pair in report.pairs {
        out += "\n\(pair.provider) -> \(pair.client): \(pair.verdict.rawValue)"
        if let route = pair.route { out += " (route: \(route))" }
        if let copies = pair.copies { out += ", \(copies.kind)s \(copies.bytesPerTransfer)" }
        out += "\n"
        for reason in pair.reasons where details || reason.effect != .info {
            out += "  \(reason.effect.rawValue): \(reason.text) [\(reason.source)]\n"
            if let remedy = reason.remedy { out += "    remedy: \(remedy.action)\n    cost: \(remedy.cost)\n" }
        }
    }
    out += "\nFacts read:\n"
    let k = report.kernel
    out += "  kernel \(k.release?.value ?? "unknown") [\(k.release?.source ?? "/proc/sys/kernel/osrelease unreadable")]\n"
    out += "  CONFIG_PCI_P2PDMA \(k.pciP2PDMA.value) [\(k.pciP2PDMA.source)]"
    if let move = k.moveNotify { out += ", CONFIG_DMABUF_MOVE_NOTIFY \(move.value)" }
    out += "\n"
    if let line = k.commandLine {
        out += "  DMA parameters: \(k.dmaParameters.isEmpty ? "none" : k.dmaParameters.joined(separator: " ")) [\(line.source)]\n"
    }
    out += "  CPU \(report.cpu.value) [\(report.cpu.source)]\n"
    if let guest = report.confidentialGuest { out += "  \(guest.value) [\(guest.source)]\n" }
    for fact in report.confidential.evidence where fact != report.confidentialGuest { out += "  \(fact.value) [\(fact.source)]\n" }
    out += "  kernel log \(report.confidential.kernelLog.value) [\(report.confidential.kernelLog.source)]\n"
    if let unknown = report.confidential.unknown { out += "  confidential guest unknown: \(unknown.value) [\(unknown.source)]\n" }
    for device in report.devices {
        var facts = [device.kind.rawValue, device.ids, "driver \(device.driver ?? "none")"]
        if let bits = device.dmaMaskBits { facts.append("\(bits)-bit DMA") }
        facts.append("IOMMU " + (device.iommuGroup.map { "group \($0) " } ?? "") + device.domainType.value)
        if let memory = device.p2pmem { facts.append("p2pmem \(memory.size) bytes\(memory.published ? "" : " (not published)")") }
        out += "  \(device.device): \(facts.joined(separator: ", "))\n"
    }
    for rdma in report.rdma {
        out += "  RDMA \(rdma.name): " + (rdma.pciParent.map { "on \($0)" } ?? "software, no PCI device\(rdma.netdev.map { ", on \($0)" } ?? "")") + " [\(rdma.source)]\n"
    }
    if let nvidia = report.stack.nvidiaDriver { out += "  \(nvidia) [/proc/driver/nvidia/version]\n" }
    if report.stack.nvidiaPeermem { out += "  nvidia_peermem loaded [/proc/modules]\n" }
    return out
}

import ArgumentParser
import DMACore
import Foundation
import LinuxDMABuf
import PCI

extension DMABufCommand {
    /// `dmabuf ls`: every dma-buf held by every process (``DMABufCensus``), from `/proc`.
    package struct Ls: ParsableCommand {
        package static let configuration = CommandConfiguration(
            commandName: "ls",
            abstract: "List every dma-buf held by every process, with its exporter, name and holders.",
            discussion: """
                Reads /proc/*/fd, /proc/*/fdinfo and /proc/*/maps; a buffer is listed once (by inode)
                however many processes hold or map it. Processes that cannot be read (run as root to
                see them all) are counted and reported, not fatal.

                With --kernel, also reads the kernel's own list (debugfs dma_buf/bufinfo, root only):
                every buffer the kernel has, the devices attached to it, its fences, buffers that no
                process holds any more (held by the kernel), and memory per process as Android's
                dmabuf_dump counts it (Rss, Pss, fd and mapping references).

                Examples:
                  dmabuf ls
                  dmabuf ls --pid 1234
                  dmabuf ls --json
                  sudo dmabuf ls --kernel
                  sudo dmabuf ls --kernel --capture /tmp/snapshot
                  dmabuf ls --kernel --proc /tmp/snapshot/proc --debugfs /tmp/snapshot/debugfs
                  sudo dmabuf ls --kernel --json > before.json; sudo dmabuf ls --kernel --diff before.json
                  sudo dmabuf ls --kernel --watch 10
                """
        )

        @Option(help: "Only the buffers held or mapped by this process.")
        var pid: Int32?

        @Flag(help: "Print the census as JSON: {buffers, totals, processesScanned, unreadable, vanished}.")
        var json = false

        @Option(name: [.customLong("proc-root"), .customLong("proc")], help: ArgumentHelp("Where procfs is mounted (a captured or test tree).", valueName: "dir"))
        var procRoot = "/proc"

        @Flag(help: "Join the kernel's list of dma-bufs (debugfs dma_buf/bufinfo): attached devices, buffers only the kernel holds, Rss/Pss per process.")
        var kernel = false

        @Option(help: ArgumentHelp("Where debugfs is mounted (a captured tree); implies nothing without --kernel.", valueName: "dir"))
        var debugfs = "/sys/kernel/debug"

        @Option(help: ArgumentHelp("With --kernel: the sysfs tree whose PCI topology gives each attachment's P2P verdict.", valueName: "dir"))
        var sysfs = "/sys"

        @Option(help: ArgumentHelp("Compare with an earlier `dmabuf ls --kernel --json` (or `ls --json`): buffers and attachments that appeared or went, per exporter and per process.", valueName: "before.json"))
        var diff: String?

        @Option(help: ArgumentHelp("Take the view again every SECONDS and print what appeared and stayed since the first (or since --diff's baseline), per exporter and per process: a leak is a line that grows.", valueName: "seconds"))
        var watch: Double?

        @Option(help: ArgumentHelp("With --watch: stop after N rounds (default: until interrupted).", valueName: "n"))
        var rounds: Int?

        @Option(help: ArgumentHelp("Also write the files read into DIR (DIR/proc, DIR/debugfs), to rerun on them with --proc and --debugfs.", valueName: "dir"))
        var capture: String?

        package init() {}

        package func validate() throws {
            if let watch, !(watch >= 0 && watch <= 86400) { throw ValidationError("--watch \(watch): give seconds between 0 and 86400") }
            if let rounds, rounds < 1 { throw ValidationError("--rounds \(rounds): give 1 or more") }
            if rounds != nil && watch == nil { throw ValidationError("--rounds needs --watch SECONDS") }
            if watch != nil && capture != nil { throw ValidationError("--capture takes one snapshot; it cannot be combined with --watch") }
        }

        package func run() throws {
            let capturer = try capture.map { try Capture(root: $0) }
            // A baseline that cannot be read is an error before anything is read or captured.
            let before = try diff.map { try loadBaseline($0) }
            guard kernel || before != nil || watch != nil else {
                let census: DMABufCensus
                do { census = try DMABufCensus.takeChecked(procRoot: procRoot, pid: pid, record: capturer?.recordProc) } catch { throw CLIError(error) }
                if json {
                    try printJSON(census)
                } else {
                    print(renderCensus(census), terminator: "")
                }
                capturer?.report()
                return
            }
            do { try DMABufCensus.check(procRoot: procRoot, pid: pid) } catch { throw CLIError(error) }
            var view = try takeView(capturer)
            joinTopology(&view, sysfs: sysfs, procRoot: procRoot)
            if let watch {
                try watchLoop(every: watch, baseline: before ?? view, first: view)
                return
            }
            if let before {
                let change = DMABufKernelDiff(before: before, after: view)
                if json { try printJSON(change) } else { print(renderDiff(change, before: before, after: view, baseline: diff ?? ""), terminator: "") }
                capturer?.report()
                return
            }
            if json {
                if let pid {
                    // --pid: the buffers that process holds (with all their holders) and its memory;
                    // the totals stay the whole system's.
                    view.buffers = view.buffers.filter { $0.holders.contains { $0.pid == pid } }
                    view.processes = view.processes.filter { $0.pid == pid }
                }
                try printJSON(view)
            } else {
                print(renderKernelView(view, onlyPID: pid), terminator: "")
            }
            capturer?.report()
        }

        /// One round of `--watch`, as a JSON line.
        struct WatchRound: Encodable {
            var round: Int
            var seconds: Double
            var diff: DMABufKernelDiff
        }

        /// `--watch`: the view again every `seconds`, each round compared with `baseline`.
        func watchLoop(every seconds: Double, baseline: DMABufKernelView, first: DMABufKernelView) throws {
            let start = Date()
            var view = first
            var round = 0
            while true {
                let change = DMABufKernelDiff(before: baseline, after: view)
                let elapsed = Date().timeIntervalSince(start)
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    print(String(decoding: try encoder.encode(WatchRound(round: round, seconds: elapsed, diff: change)), as: UTF8.self))
                } else {
                    print(renderWatchRound(change, before: baseline, after: view, round: round, seconds: elapsed), terminator: "")
                }
                fflush(nil)  // every stream: a watch is read as it goes, through a pipe too
                round += 1
                if let rounds, round >= rounds { return }
                if seconds > 0 { Thread.sleep(forTimeInterval: seconds) }
                view = try takeView(nil)
            }
        }

        /// Reads the kernel's list (with --kernel) and /proc, and joins them.
        func takeView(_ capturer: Capture?) throws -> DMABufKernelView {
            // The kernel's list first (only with --kernel): a buffer made while /proc is read is then only in /proc
            // (listed, marked), never wrongly "held by the kernel only".
            var bufinfo: DMABufBufInfo?
            var unavailable: DMABufBufInfo.Unavailable?
            do {
                if kernel { bufinfo = try DMABufBufInfo.read(debugfsRoot: debugfs, record: capturer?.recordBufinfo) }
            } catch where error.code == .debugfsUnavailable {
                unavailable = DMABufBufInfo.unavailable(debugfsRoot: debugfs, errno: error.errno)
            } catch {
                throw CLIError(error)
            }
            // Every process, even with --pid: Pss and "held by the kernel only" need all holders.
            let census = DMABufCensus.take(procRoot: procRoot, pid: nil, record: capturer?.recordProc)
            let release = (try? SystemCalls.readFile("\(procRoot)/sys/kernel/osrelease").get()).map { bytes in
                capturer?.recordProc(.file(path: "sys/kernel/osrelease", bytes: bytes))
                return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            // The CPU the topology join judges the host-bridge rule with (`joinTopology`): a copy
            // without it would be judged with the CPU of the machine that reads it.
            if let capturer, let bytes = try? SystemCalls.readFile("\(procRoot)/cpuinfo", limit: 1 << 20).get() {
                capturer.recordProc(.file(path: "cpuinfo", bytes: bytes))
            }
            return DMABufKernelView(
                bufinfo: bufinfo, census: census,
                source: .init(bufinfo: "\(debugfs)/\(DMABufBufInfo.relativePath)", readable: bufinfo != nil, unavailable: unavailable, kernelRelease: release))
        }
    }

    /// Reads a `--diff` baseline: the JSON of `dmabuf ls --kernel --json`, or of `dmabuf ls --json`.
    static func loadBaseline(_ path: String) throws -> DMABufKernelView {
        let data: Data
        do {
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
            guard size <= 256 << 20 else { throw ValidationError("--diff \(path): \(size) bytes, more than a dmabuf ls --json can be (256 MiB)") }
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("--diff \(path): cannot read it: \(error.localizedDescription)")
        }
        if let view = try? JSONDecoder().decode(DMABufKernelView.self, from: data) { return view }
        if let census = try? JSONDecoder().decode(DMABufCensus.self, from: data) { return DMABufKernelView(census: census) }
        throw ValidationError("--diff \(path): not the JSON of dmabuf ls --kernel --json or dmabuf ls --json")
    }

    /// `dmabuf probe`: what this kernel offers for dma-buf sharing.
    package struct Probe: ParsableCommand {
        package static let configuration = CommandConfiguration(
            abstract: "Report DRM devices and drivers, the dma-buf exporters present and the kernel config facts that matter.",
            discussion: """
                Examples:
                  dmabuf probe
                  dmabuf probe --json
                """
        )

        /// The sections of the report, in order. A new section (the PCI topology summary) is one
        /// more ``ProbeSection`` in this list.
        package static var sections: [any ProbeSection] {
            [DRMProbeSection(), ExporterProbeSection(), KernelConfigProbeSection(), TopologyProbeSection()]
        }

        @Flag(help: "Print a JSON object with one key per section.")
        var json = false

        @Option(help: ArgumentHelp("Where procfs is mounted.", valueName: "dir"))
        var procRoot = "/proc"

        @Option(help: ArgumentHelp("Where device nodes are (dri/, udmabuf, dma_heap/).", valueName: "dir"))
        var devRoot = "/dev"

        @Option(help: ArgumentHelp("Where sysfs is mounted.", valueName: "dir"))
        var sysRoot = "/sys"

        @Option(help: ArgumentHelp("Where the kernel's config-RELEASE file is looked for.", valueName: "dir"))
        var bootRoot = "/boot"

        package init() {}

        /// The most characters of one line of the text report: a value from a copied tree can be
        /// any length, and the rest is counted, not printed.
        static let lineLimit = 1000

        package func run() throws {
            let environment = ProbeEnvironment(procRoot: procRoot, devRoot: devRoot, sysRoot: sysRoot, bootRoot: bootRoot)
            let reports = Self.sections.map { ($0, $0.gather(environment)) }
            if json {
                try printJSON(ProbeJSON(sections: reports.map { ($0.0.key, $0.1.value) }))
            } else {
                for (section, report) in reports {
                    print("\(section.title)")
                    // Each line names what the kernel or a copied tree said (driver names, heap
                    // names, config values, the release): escaped, so no byte of it drives the terminal.
                    for line in report.lines { print("  " + ErrorText.printable(line, limit: Self.lineLimit)) }
                }
            }
        }
    }
}

/// Where `dmabuf probe` reads the system from; tests pass trees of their own.
package struct ProbeEnvironment: Sendable {
    /// Where procfs is mounted.
    package var procRoot: String
    /// Where device nodes are.
    package var devRoot: String
    /// Where sysfs is mounted.
    package var sysRoot: String
    /// Where the kernel's `config-RELEASE` is.
    package var bootRoot: String

    /// Creates an environment; the defaults are the real system's.
    package init(procRoot: String = "/proc", devRoot: String = "/dev", sysRoot: String = "/sys", bootRoot: String = "/boot") {
        self.procRoot = procRoot
        self.devRoot = devRoot
        self.sysRoot = sysRoot
        self.bootRoot = bootRoot
    }
}

/// What one section of `dmabuf probe` found: lines for people and a value for `--json`.
package struct ProbeSectionReport: Sendable {
    /// The text lines, without indentation.
    package var lines: [String]
    /// The value printed under the section's key with `--json`.
    package var value: any Encodable & Sendable

    /// Creates a report.
    package init(lines: [String], value: any Encodable & Sendable) {
        self.lines = lines
        self.value = value
    }
}

/// One section of `dmabuf probe`: gathers one kind of fact about the running system.
package protocol ProbeSection: Sendable {
    /// The section's key in `--json` output (`drm`, `exporters`, `kernelConfig`).
    var key: String { get }
    /// The section's heading in text output.
    var title: String { get }
    /// Gathers the facts; never fails (an unreadable source is itself a fact to report).
    func gather(_ environment: ProbeEnvironment) -> ProbeSectionReport
}

/// DRM devices and their drivers (`drmGetDevices2`, `drmGetVersion`).
package struct DRMProbeSection: ProbeSection {
    package var key: String { "drm" }
    package var title: String { "DRM devices" }
    /// Creates the section.
    package init() {}

    package func gather(_ environment: ProbeEnvironment) -> ProbeSectionReport {
        let devices = DRM.devices(devRoot: environment.devRoot)
        var lines = devices.map { device -> String in
            let nodes = [device.bus.primaryNode, device.bus.renderNode].compactMap { $0 }.joined(separator: ", ")
            let driver = device.driver.map { "\($0.name) \($0.major).\($0.minor).\($0.patchLevel)" } ?? "driver unknown (\(device.error ?? "?"))"
            let bus = device.bus.pciAddress.map { "pci \($0)" + (device.bus.pciID.map { " [\($0)]" } ?? "") } ?? device.bus.bus
            return "\(nodes): \(driver), \(bus)"
        }
        if lines.isEmpty { lines = ["none (\(environment.devRoot)/dri is absent or empty)"] }
        return ProbeSectionReport(lines: lines, value: devices)
    }
}

/// The dma-buf exporters user space can reach: `/dev/udmabuf` and `/dev/dma_heap/*`.
package struct ExporterProbeSection: ProbeSection {
    package var key: String { "exporters" }
    package var title: String { "dma-buf exporters" }
    /// Creates the section.
    package init() {}

    struct Value: Codable, Sendable {
        var udmabuf: String
        var heaps: [String]
    }

    package func gather(_ environment: ProbeEnvironment) -> ProbeSectionReport {
        let udmabuf: String
        do throws(DMAError) {
            udmabuf = try UDMABufDevice.open(path: "\(environment.devRoot)/udmabuf") == nil ? "absent" : "present"
        } catch {
            udmabuf = "unusable: \(error.errno.name)"
        }
        let heaps = DMAHeap.available(devRoot: environment.devRoot)
        return ProbeSectionReport(
            lines: [
                "udmabuf: \(udmabuf) (\(environment.devRoot)/udmabuf)",
                "dma-heaps: " + (heaps.isEmpty ? "none (\(environment.devRoot)/dma_heap is absent)" : heaps.joined(separator: ", ")),
            ],
            value: Value(udmabuf: udmabuf, heaps: heaps)
        )
    }
}

/// The kernel configuration options that matter for dma-buf and P2P DMA.
package struct KernelConfigProbeSection: ProbeSection {
    package var key: String { "kernelConfig" }
    package var title: String { "Kernel configuration" }
    /// Creates the section.
    package init() {}

    struct Value: Codable, Sendable {
        var release: String?
        var source: String?
        var options: [String: String]
    }

    package func gather(_ environment: ProbeEnvironment) -> ProbeSectionReport {
        let release = KernelConfig.release(procRoot: environment.procRoot)
        guard let config = KernelConfig.read(procRoot: environment.procRoot, bootRoot: environment.bootRoot) else {
            return ProbeSectionReport(
                lines: ["release \(release ?? "?"): no readable \(environment.procRoot)/config.gz or \(environment.bootRoot)/config-\(release ?? "RELEASE")"],
                value: Value(release: release, source: nil, options: [:])
            )
        }
        var options: [String: String] = [:]
        var lines = ["release \(release ?? "?"), from \(config.source)"]
        for option in KernelConfig.relevantOptions {
            // CONFIG_DMABUF_MOVE_NOTIFY is gone from 7.1 on: absent there means always on, not off.
            let value = option == "CONFIG_DMABUF_MOVE_NOTIFY" ? config.moveNotify(release: release).rawValue : config.value(option)
            options[option] = value
            lines.append("\(option)=\(value)")
        }
        return ProbeSectionReport(lines: lines, value: Value(release: release, source: config.source, options: options))
    }
}

/// The probe's sections as one JSON object, in the sections' order of keys (sorted on output).
struct ProbeJSON: Encodable {
    let sections: [(String, any Encodable & Sendable)]

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (key, value) in sections {
            try value.encode(to: container.superEncoder(forKey: Key(stringValue: key)))
        }
    }
}

/// The census as text: one block per buffer, then totals per exporter.
func renderCensus(_ census: DMABufCensus) -> String {
    var out = ""
    if census.buffers.isEmpty {
        out += "No dma-buf is held or mapped by the \(census.processesScanned) processes scanned.\n"
    } else {
        out += "INODE      SIZE  EXPORTER      NAME\n"
        for buffer in census.buffers {
            let size = buffer.size.map(String.init) ?? "?"
            // Names come from other processes (DMA_BUF_SET_NAME, comm): escaped, never raw control bytes.
            out += pad(String(buffer.inode), 5) + " " + pad(size, 9, left: true) + "  " + pad(shown(buffer.exporter ?? "?"), 12) + "  "
                + shown(buffer.name ?? "-") + "\n"
            for holder in buffer.holders {
                var parts: [String] = []
                if !holder.fds.isEmpty { parts.append("fd " + holder.fds.map(String.init).joined(separator: ",")) }
                if holder.mappings > 0 { parts.append("\(holder.mappings) mapping\(holder.mappings == 1 ? "" : "s"), \(holder.mappedBytes) bytes") }
                out += "      held by \(holder.pid) (\(shown(holder.comm))): \(parts.joined(separator: "; "))\n"
            }
        }
        out += "\nTotals by exporter:\n"
        for total in census.totals {
            out += "  " + pad(shown(total.exporter), 12) + " " + pad(String(total.buffers), 4, left: true) + " buffer\(total.buffers == 1 ? " " : "s") " + pad(String(total.bytes), 12, left: true) + " bytes\n"
        }
    }
    out += "\(census.buffers.count) dma-bufs, \(census.totalBytes) bytes; \(census.processesScanned) processes scanned"
    if census.vanished > 0 { out += ", \(census.vanished) exited during the census" }
    out += ".\n"
    if !census.unreadable.isEmpty {
        out += "\(census.unreadable.count) unreadable (\(geteuid() == 0 ? "even as root" : "run as root to see them")): "
        out += census.unreadable.map { "pid \($0.pid) \($0.what) \($0.errno)" }.joined(separator: ", ") + "\n"
    }
    return out
}

/// A name read from another process, as the text output shows it: control characters escaped.
private func shown(_ name: String) -> String { ErrorText.printable(name, limit: 256) }

private func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - text.count))
    return left ? fill + text : text + fill
}

/// `dmabuf ls --capture DIR`: a copy of what the command read, laid out so that
/// `dmabuf ls --kernel --proc DIR/proc --debugfs DIR/debugfs` reads it back.
final class Capture {
    let root: String
    private(set) var files = 0
    private(set) var failures: [String] = []

    init(root: String) throws {
        self.root = root
        do {
            try FileManager.default.createDirectory(atPath: root + "/proc", withIntermediateDirectories: true)
        } catch {
            throw ValidationError("--capture \(root): cannot make the folder: \(error.localizedDescription)")
        }
    }

    func recordProc(_ read: DMABufCensus.Read) {
        switch read {
        case .file(let path, let bytes): write(root + "/proc/" + path, bytes)
        case .directory(let path):
            do {
                try FileManager.default.createDirectory(atPath: root + "/proc/" + path, withIntermediateDirectories: true)
            } catch {
                failures.append("\(root)/proc/\(path): \(error.localizedDescription)")
            }
        case .link(let path, let target):
            let full = root + "/proc/" + path
            do {
                try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try? FileManager.default.removeItem(atPath: full)
                try FileManager.default.createSymbolicLink(atPath: full, withDestinationPath: target)
                files += 1
            } catch {
                failures.append("\(full): \(error.localizedDescription)")
            }
        }
    }

    func recordBufinfo(_ bytes: [UInt8]) {
        write(root + "/debugfs/" + DMABufBufInfo.relativePath, bytes)
    }

    private func write(_ full: String, _ bytes: [UInt8]) {
        do {
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: full))
            files += 1
        } catch {
            failures.append("\(full): \(error.localizedDescription)")
        }
    }

    /// Says on standard error where the copy is and how to read it back.
    func report() {
        var message = "Captured \(files) files into \(root) (only what describes dma-bufs: their fd links, fdinfo, the dma-buf lines of maps, comm"
        message += FileManager.default.fileExists(atPath: root + "/debugfs") ? ", debugfs dma_buf/bufinfo)" : ")"
        message += "; read it back with: dmabuf ls --kernel --proc \(root)/proc --debugfs \(root)/debugfs\n"
        for failure in failures { message += "capture: cannot write \(failure)\n" }
        FileHandle.standardError.write(Data(message.utf8))
    }
}

/// `dmabuf ls --kernel` as text: the kernel's buffers with holders, attachments and fences, the
/// memory per process, and the totals.
func renderKernelView(_ view: DMABufKernelView, onlyPID: Int32?) -> String {
    var out = ""
    if let unavailable = view.source.unavailable {
        out += "The kernel's list of dma-bufs is not readable: \(unavailable.path): \(unavailable.errno), \(unavailable.reason).\n"
        out += "  To see it: \(unavailable.remedy).\n"
        out += "  Shown: the /proc view only (no attached devices, no buffers that only the kernel holds).\n\n"
    } else {
        out += "Kernel's list: \(view.source.bufinfo)" + (view.source.kernelRelease.map { " (kernel \($0))" } ?? "") + "\n\n"
    }
    let buffers = onlyPID.map { pid in view.buffers.filter { $0.holders.contains { $0.pid == pid } } } ?? view.buffers
    if buffers.isEmpty {
        out += onlyPID.map { "Process \($0) holds no dma-buf.\n" } ?? (view.source.readable ? "No dma-buf exists (the kernel lists none and no process holds one).\n"
            : "No dma-buf is held or mapped by the \(view.processesScanned) processes scanned.\n")
    } else {
        out += "INODE      SIZE  EXPORTER      REFS  NAME\n"
        for buffer in buffers {
            let size = buffer.size.map(String.init) ?? "?"
            let refs = buffer.references.map(String.init) ?? "-"
            out += pad(String(buffer.inode), 5) + " " + pad(size, 9, left: true) + "  " + pad(shown(buffer.exporter ?? "?"), 12) + " "
                + pad(refs, 5, left: true) + "  " + shown(buffer.name ?? "-") + "\n"
            for holder in buffer.holders {
                var parts: [String] = []
                if !holder.fds.isEmpty { parts.append("fd " + holder.fds.map(String.init).joined(separator: ",")) }
                if holder.mappings > 0 { parts.append("\(holder.mappings) mapping\(holder.mappings == 1 ? "" : "s"), \(holder.mappedBytes) bytes") }
                out += "      held by \(holder.pid) (\(shown(holder.comm))): \(parts.joined(separator: "; "))\n"
            }
            if buffer.heldByKernelOnly {
                out += "      held by the kernel only: no process\(view.unreadable.isEmpty ? "" : " that could be read") has an fd or a mapping of it"
                out += buffer.references.map { " (\($0) reference\($0 == 1 ? "" : "s") in the kernel)" } ?? ""
                out += "\n"
            } else if let kernelRefs = buffer.kernelReferences, kernelRefs > 0 {
                out += "      and \(kernelRefs) reference\(kernelRefs == 1 ? "" : "s") in the kernel (importers, the exporter)\n"
            }
            if !buffer.inKernelList && view.source.readable {
                out += "      not in the kernel's list (made after it was read)\n"
            }
            if view.source.readable {
                out += "      attached: " + (buffer.attachedDevices.isEmpty ? "no device" : buffer.attachedDevices.map(shown).joined(separator: ", ")) + "\n"
            }
            for route in buffer.routes ?? [] { out += "      \(shown(route.summary))\n" }
            for fence in buffer.fences {
                let what = [fence.driver, fence.timeline].compactMap { $0 }.map(shown).joined(separator: " ")
                out += "      \(shown(fence.usage)) fence: \(what.isEmpty ? "" : what + " ")" + (fence.seqno.map { "seq \($0) " } ?? "")
                    + (fence.signalled ? "signalled" : "unsignalled") + "\n"
            }
        }
    }
    let processes = onlyPID.map { pid in view.processes.filter { $0.pid == pid } } ?? view.processes
    if !processes.isEmpty {
        out += "\nMemory per process (as Android's dmabuf_dump counts it; Pss shares a buffer among the N processes holding it):\n"
        out += "    PID  COMM                     RSS          PSS  FD REFS  MAP REFS  BUFFERS\n"
        for process in processes {
            out += pad(String(process.pid), 7, left: true) + "  " + pad(shown(process.comm), 16) + " " + pad(String(process.rss), 11, left: true) + "  "
                + pad(String(process.pss), 11, left: true) + "  " + pad(String(process.fdRefs), 7, left: true) + "  "
                + pad(String(process.mapRefs), 8, left: true) + "  " + pad(String(process.buffers), 7, left: true) + "\n"
        }
    }
    if onlyPID == nil, !view.totals.isEmpty {
        out += "\nTotals by exporter:\n"
        for total in view.totals {
            out += "  " + pad(shown(total.exporter), 12) + " " + pad(String(total.buffers), 4, left: true) + " buffer\(total.buffers == 1 ? " " : "s") "
                + pad(String(total.bytes), 12, left: true) + " bytes"
            if total.kernelOnlyBuffers > 0 { out += ", \(total.kernelOnlyBuffers) held by the kernel only (\(total.kernelOnlyBytes) bytes)" }
            out += "\n"
        }
    }
    let kernelOnly = view.buffers.filter { $0.heldByKernelOnly }.count
    out += "\n\(view.buffers.count) dma-bufs, \(view.exportedBytes) bytes: processes hold \(view.userspaceBytes)"
    if view.source.readable { out += ", the kernel alone \(view.kernelOnlyBytes) (\(kernelOnly) buffer\(kernelOnly == 1 ? "" : "s"))" }
    out += "; \(view.processesScanned) processes scanned"
    if view.vanished > 0 { out += ", \(view.vanished) exited during the census" }
    out += ".\n"
    if !view.unreadable.isEmpty {
        out += "\(view.unreadable.count) unreadable (\(geteuid() == 0 ? "even as root" : "run as root to see them")): "
        out += view.unreadable.map { "pid \($0.pid) \($0.what) \($0.errno)" }.joined(separator: ", ") + "\n"
    }
    if !view.unrecognizedLines.isEmpty {
        out += "\(view.unrecognizedLines.count) line\(view.unrecognizedLines.count == 1 ? "" : "s") of bufinfo not understood, first: \(shown(view.unrecognizedLines[0]))\n"
    }
    return out
}

/// `dmabuf ls --diff BEFORE.json` as text: what appeared and went, new attachments, and the
/// change per exporter and per process (a leak is a line that grows run after run).
func renderDiff(_ change: DMABufKernelDiff, before: DMABufKernelView, after: DMABufKernelView, baseline: String) -> String {
    func signed(_ value: Int) -> String { value > 0 ? "+\(value)" : "\(value)" }
    func describe(_ buffer: DMABufKernelDiff.BufferChange) -> String {
        var text = pad(String(buffer.inode), 5) + " " + pad(buffer.size.map(String.init) ?? "?", 9, left: true) + "  " + pad(shown(buffer.exporter ?? "?"), 12) + "  " + shown(buffer.name ?? "-")
        text += buffer.heldByKernelOnly ? "; held by the kernel only" : "; held by " + buffer.holders.map(String.init).joined(separator: ",")
        if !buffer.attachedDevices.isEmpty { text += "; attached: " + buffer.attachedDevices.map(shown).joined(separator: ", ") }
        return text
    }
    var out = "Since \(shown(baseline)): \(before.buffers.count) → \(after.buffers.count) dma-bufs, \(before.exportedBytes) → \(after.exportedBytes) bytes"
    if after.source.readable { out += "; held by the kernel only \(change.kernelOnlyBytesBefore) → \(change.kernelOnlyBytesAfter) bytes" }
    out += ".\n"
    if before.source.readable != after.source.readable {
        out += "Note: only \(before.source.readable ? "the baseline" : "this run") read the kernel's list; buffers only the kernel holds are in one view only.\n"
    }
    out += "\nAppeared (\(change.appeared.count)):\n"
    out += change.appeared.isEmpty ? "  none\n" : change.appeared.map { "  + " + describe($0) + "\n" }.joined()
    out += "Gone (\(change.gone.count)):\n"
    out += change.gone.isEmpty ? "  none\n" : change.gone.map { "  - " + describe($0) + "\n" }.joined()
    if !change.attachments.isEmpty {
        out += "Attachments changed:\n"
        for item in change.attachments {
            var parts: [String] = []
            if !item.attached.isEmpty { parts.append("+ " + item.attached.map(shown).joined(separator: ", ")) }
            if !item.detached.isEmpty { parts.append("- " + item.detached.map(shown).joined(separator: ", ")) }
            out += "  \(item.inode) (\(shown(item.exporter ?? "?"))): " + parts.joined(separator: "; ") + "\n"
        }
    }
    out += "\nPer exporter:              BUFFERS                 BYTES\n"
    for line in change.exporters {
        out += "  " + pad(shown(line.key), 14) + pad("\(line.buffersBefore) → \(line.buffersAfter)", 12, left: true) + pad("(\(signed(line.buffersDelta)))", 7, left: true)
            + pad("\(signed(line.bytesDelta))", 14, left: true) + "\n"
    }
    if !change.processes.isEmpty {
        out += "Per process:               BUFFERS                   RSS\n"
        for line in change.processes {
            out += "  " + pad(shown(line.key), 14) + pad("\(line.buffersBefore) → \(line.buffersAfter)", 12, left: true) + pad("(\(signed(line.buffersDelta)))", 7, left: true)
                + pad("\(signed(line.bytesDelta))", 14, left: true) + "\n"
        }
    }
    return out
}

/// One round of `dmabuf ls --watch`: the totals since the baseline, then the exporters and
/// processes whose buffers changed, then the buffers that appeared and are still there.
func renderWatchRound(_ change: DMABufKernelDiff, before: DMABufKernelView, after: DMABufKernelView, round: Int, seconds: Double) -> String {
    func signed(_ value: Int) -> String { value > 0 ? "+\(value)" : "\(value)" }
    var out = "[round \(round), \(Int(seconds.rounded())) s] \(after.buffers.count) dma-bufs (\(signed(after.buffers.count - before.buffers.count))), "
        + "\(after.exportedBytes) bytes (\(signed(after.exportedBytes.subtractingReportingOverflow(before.exportedBytes).partialValue)))"
    if after.source.readable { out += "; held by the kernel only \(change.kernelOnlyBytesAfter) bytes (\(signed(change.kernelOnlyBytesAfter - change.kernelOnlyBytesBefore)))" }
    out += "\n"
    for line in change.exporters where line.buffersDelta != 0 || line.bytesDelta != 0 {
        out += "  exporter \(shown(line.key)): \(line.buffersBefore) → \(line.buffersAfter) buffers (\(signed(line.buffersDelta))), \(signed(line.bytesDelta)) bytes\n"
    }
    for line in change.processes {
        out += "  process \(shown(line.key)): \(line.buffersBefore) → \(line.buffersAfter) buffers (\(signed(line.buffersDelta))), Rss \(signed(line.bytesDelta)) bytes\n"
    }
    if !change.appeared.isEmpty {
        let shownCount = min(8, change.appeared.count)
        out += "  appeared and stayed: " + change.appeared.prefix(shownCount).map { buffer in
            "\(buffer.inode) (\(shown(buffer.exporter ?? "?")), " + (buffer.heldByKernelOnly ? "kernel only" : "pid " + buffer.holders.map(String.init).joined(separator: ","))
                + (buffer.attachedDevices.isEmpty ? "" : ", attached " + buffer.attachedDevices.map(shown).joined(separator: ",")) + ")"
        }.joined(separator: ", ") + (change.appeared.count > shownCount ? ", and \(change.appeared.count - shownCount) more" : "") + "\n"
    }
    return out
}

/// Joins each attachment of a PCI device with the PCI topology of `sysfs` (issue [M] item 2): the
/// exporter's device is the one PCI function bound to the driver `exp_name` names (amdgpu, xe,
/// vfio-pci's `vfio_pci_core`…); the verdict between it and the attached device is the kernel's
/// (`pci_p2pdma_distance`), and the sentence says what that made the exporter do: P2P, or for a
/// `not-supported` pair system memory (a GPU migrates to GTT) or a refused map (VFIO, `EINVAL`).
/// Buffers without a PCI attachment are left as they are; nothing is loaded when there is none.
/// The CPU (which the host-bridge rule reads) comes from `PROC/cpuinfo` of the /proc given, so a
/// captured machine is judged with its own CPU.
func joinTopology(_ view: inout DMABufKernelView, sysfs: String, procRoot: String) {
    let pciAttached = view.buffers.contains { $0.attachedDevices.contains { (try? PCIAddress(parsing: $0)) != nil } }
    guard pciAttached else { return }
    let topology: PCITopology
    do {
        let cpuinfo = FileManager.default.contents(atPath: "\(procRoot)/cpuinfo").map { String(decoding: $0.prefix(1 << 20), as: UTF8.self) }
        let cpu = cpuinfo.flatMap { CPUInfo.parse(procCPUInfo: $0) } ?? TopologySource.hostCPU()
        // Judged by the P2PDMA rules of the release whose /proc this is.
        topology = try SysfsTopologyLoader.load(root: sysfs, cpu: cpu).following(KernelConfig.runningVersion(procRoot: procRoot))
    } catch {
        for index in view.buffers.indices where !view.buffers[index].attachedDevices.isEmpty {
            view.buffers[index].routes = view.buffers[index].attachedDevices.map {
                DMABufKernelView.AttachmentRoute(device: $0, exporterDevice: nil, mapType: nil, summary: "\($0): no P2P verdict, the PCI topology of \(sysfs) is not readable")
            }
        }
        return
    }
    for index in view.buffers.indices {
        let buffer = view.buffers[index]
        let exporterName = buffer.exporter ?? "?"
        let driver = exporterName == "vfio_pci_core" ? "vfio-pci" : exporterName
        let bound = topology.functions.filter { $0.driver == driver }
        let exporterDevice = bound.count == 1 ? bound[0].address : nil
        var routes: [DMABufKernelView.AttachmentRoute] = []
        for device in buffer.attachedDevices {
            guard let client = try? PCIAddress(parsing: device), topology.function(client) != nil else { continue }
            guard let exporterDevice else {
                let why = bound.isEmpty ? "no PCI device is bound to \(driver)" : "\(bound.count) PCI devices are bound to \(driver)"
                routes.append(.init(device: device, exporterDevice: nil, mapType: nil, summary: "attached to \(client): no P2P verdict, the exporter's device is not known (\(why))"))
                continue
            }
            guard let verdict = try? topology.verdict(provider: exporterDevice, client: client) else { continue }
            let what: String
            switch verdict.mapType {
            case .busAddress: what = "P2P by bus address (a common upstream bridge)"
            case .throughHostBridge: what = "P2P through the host bridge"
            case .notSupported:
                what = exporterName == "vfio_pci_core"
                    ? "P2P not supported, so VFIO refuses the map (EINVAL)"
                    : "P2P not supported, so the exporter gave system memory (a GPU migrates the buffer to GTT)"
            }
            routes.append(.init(
                device: device, exporterDevice: exporterDevice.description, mapType: verdict.mapType.rawValue,
                summary: "\(exporterDevice) (\(exporterName))'s buffer attached to \(client): \(what)"))
        }
        if !routes.isEmpty { view.buffers[index].routes = routes }
    }
}

import ArgumentParser
import DMACore
import Foundation
import LinuxDMABuf

extension DMABufCommand {
    /// `dmabuf ls`: every dma-buf held by every process (``DMABufCensus``), from `/proc`.
    public struct Ls: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "ls",
            abstract: "List every dma-buf held by every process, with its exporter, name and holders.",
            discussion: """
                Reads /proc/*/fd, /proc/*/fdinfo and /proc/*/maps; a buffer is listed once (by inode)
                however many processes hold or map it. Processes that cannot be read (run as root to
                see them all) are counted and reported, not fatal.

                Examples:
                  dmabuf ls
                  dmabuf ls --pid 1234
                  dmabuf ls --json
                """
        )

        @Option(help: "Only the buffers held or mapped by this process.")
        var pid: Int32?

        @Flag(help: "Print the census as JSON: {buffers, totals, processesScanned, unreadable, vanished}.")
        var json = false

        @Option(help: ArgumentHelp("Where procfs is mounted (a captured or test tree).", valueName: "dir"))
        var procRoot = "/proc"

        public init() {}

        public func run() throws {
            let census: DMABufCensus
            do { census = try DMABufCensus.takeChecked(procRoot: procRoot, pid: pid) } catch { throw ModelFailure(error: error) }
            if json {
                try printJSON(census)
            } else {
                print(renderCensus(census), terminator: "")
            }
        }
    }

    /// `dmabuf probe`: what this kernel offers for dma-buf sharing.
    public struct Probe: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Report DRM devices and drivers, the dma-buf exporters present and the kernel config facts that matter.",
            discussion: """
                Examples:
                  dmabuf probe
                  dmabuf probe --json
                """
        )

        /// The sections of the report, in order. A new section (the PCI topology summary) is one
        /// more ``ProbeSection`` in this list.
        public static var sections: [any ProbeSection] {
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

        public init() {}

        public func run() throws {
            let environment = ProbeEnvironment(procRoot: procRoot, devRoot: devRoot, sysRoot: sysRoot, bootRoot: bootRoot)
            let reports = Self.sections.map { ($0, $0.gather(environment)) }
            if json {
                try printJSON(ProbeJSON(sections: reports.map { ($0.0.key, $0.1.value) }))
            } else {
                for (section, report) in reports {
                    print("\(section.title)")
                    for line in report.lines { print("  \(line)") }
                }
            }
        }
    }
}

/// Where `dmabuf probe` reads the system from; tests pass trees of their own.
public struct ProbeEnvironment: Sendable {
    /// Where procfs is mounted.
    public var procRoot: String
    /// Where device nodes are.
    public var devRoot: String
    /// Where sysfs is mounted.
    public var sysRoot: String
    /// Where the kernel's `config-RELEASE` is.
    public var bootRoot: String

    /// Creates an environment; the defaults are the real system's.
    public init(procRoot: String = "/proc", devRoot: String = "/dev", sysRoot: String = "/sys", bootRoot: String = "/boot") {
        self.procRoot = procRoot
        self.devRoot = devRoot
        self.sysRoot = sysRoot
        self.bootRoot = bootRoot
    }
}

/// What one section of `dmabuf probe` found: lines for people and a value for `--json`.
public struct ProbeSectionReport: Sendable {
    /// The text lines, without indentation.
    public var lines: [String]
    /// The value printed under the section's key with `--json`.
    public var value: any Encodable & Sendable

    /// Creates a report.
    public init(lines: [String], value: any Encodable & Sendable) {
        self.lines = lines
        self.value = value
    }
}

/// One section of `dmabuf probe`: gathers one kind of fact about the running system.
public protocol ProbeSection: Sendable {
    /// The section's key in `--json` output (`drm`, `exporters`, `kernelConfig`).
    var key: String { get }
    /// The section's heading in text output.
    var title: String { get }
    /// Gathers the facts; never fails (an unreadable source is itself a fact to report).
    func gather(_ environment: ProbeEnvironment) -> ProbeSectionReport
}

/// DRM devices and their drivers (`drmGetDevices2`, `drmGetVersion`).
public struct DRMProbeSection: ProbeSection {
    public var key: String { "drm" }
    public var title: String { "DRM devices" }
    /// Creates the section.
    public init() {}

    public func gather(_ environment: ProbeEnvironment) -> ProbeSectionReport {
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
public struct ExporterProbeSection: ProbeSection {
    public var key: String { "exporters" }
    public var title: String { "dma-buf exporters" }
    /// Creates the section.
    public init() {}

    struct Value: Codable, Sendable {
        var udmabuf: String
        var heaps: [String]
    }

    public func gather(_ environment: ProbeEnvironment) -> ProbeSectionReport {
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
public struct KernelConfigProbeSection: ProbeSection {
    public var key: String { "kernelConfig" }
    public var title: String { "Kernel configuration" }
    /// Creates the section.
    public init() {}

    struct Value: Codable, Sendable {
        var release: String?
        var source: String?
        var options: [String: String]
    }

    public func gather(_ environment: ProbeEnvironment) -> ProbeSectionReport {
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

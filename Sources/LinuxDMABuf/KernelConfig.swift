import CZlib
import DMACore

/// The running kernel's build configuration, from `/proc/config.gz` (`CONFIG_IKCONFIG_PROC`,
/// `kernel/configs.c`) or `/boot/config-RELEASE` (what Debian installs beside the kernel).
public struct KernelConfig: Sendable, Hashable, Codable {
    /// The options that decide what this package's layers can do on this kernel.
    public static let relevantOptions = [
        "CONFIG_DMA_SHARED_BUFFER", "CONFIG_PCI_P2PDMA", "CONFIG_DMABUF_MOVE_NOTIFY", "CONFIG_DMA_API_DEBUG",
        "CONFIG_SWIOTLB", "CONFIG_UDMABUF", "CONFIG_DMABUF_HEAPS", "CONFIG_DMABUF_HEAPS_SYSTEM",
        "CONFIG_DMABUF_DEBUG", "CONFIG_DRM_VGEM", "CONFIG_DRM_VIRTIO_GPU",
    ]

    /// The file the configuration was read from.
    public var source: String
    /// Every `CONFIG_X=value` line, by option.
    public var values: [String: String]
    /// The options of `# CONFIG_X is not set` lines: the symbol exists in this kernel, off.
    public var notSet: Set<String>

    /// An option's value: `y`, `m`, a number or string, or `not set`.
    public func value(_ option: String) -> String { values[option] ?? "not set" }

    /// Parses `.config` text: `CONFIG_X=value` lines into ``values``; `# CONFIG_X is not set`
    /// lines into ``notSet``.
    public init(source: String, parsing text: String) {
        self.source = source
        var values: [String: String] = [:]
        var notSet: Set<String> = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# CONFIG_"), line.hasSuffix(" is not set") {
                notSet.insert(String(line.dropFirst(2).dropLast(" is not set".count)))
                continue
            }
            guard line.hasPrefix("CONFIG_"), let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        self.values = values
        self.notSet = notSet
    }

    /// `CONFIG_DMABUF_MOVE_NOTIFY` as this kernel has it: `y`/`m` on; `# … is not set` off; no
    /// line at all on a `release` from 7.1 on (or an unknown release), where the symbol is gone
    /// from `drivers/dma-buf/Kconfig` and invalidation is always on; no line on an older release
    /// (dma-buf itself not built) off.
    public func moveNotify(release: String?) -> MoveNotifyConfig {
        let option = "CONFIG_DMABUF_MOVE_NOTIFY"
        if let value = values[option] { return value == "y" || value == "m" ? .on : .off }
        if notSet.contains(option) { return .off }
        if let version = release.flatMap(KernelVersion.init(parsing:)), !KernelRules(version).has(.moveNotifyAlwaysOn) { return .off }
        return .alwaysOn
    }

    /// The running kernel's release (`/proc/sys/kernel/osrelease`, as `uname -r` prints it).
    public static func release(procRoot: String = "/proc") -> String? {
        guard let bytes = try? SystemCalls.readFile("\(procRoot)/sys/kernel/osrelease").get() else { return nil }
        return String(decoding: bytes, as: UTF8.self).trimmingSuffix("\n")
    }

    /// The running kernel's release as the model's rules read it (`PROCROOT/sys/kernel/osrelease`),
    /// the newest when it cannot be read or parsed. What the P2P rules need: unlike
    /// ``runningRules(procRoot:bootRoot:)`` it reads no configuration.
    public static func runningVersion(procRoot: String = "/proc") -> KernelVersion {
        release(procRoot: procRoot).flatMap(KernelVersion.init(parsing:)) ?? .newest
    }

    /// The rules of the running kernel (`--kernel auto`): its release from
    /// `PROCROOT/sys/kernel/osrelease` and `CONFIG_DMABUF_MOVE_NOTIFY` from its configuration
    /// (``read(procRoot:bootRoot:)``; unreadable counts as off, the option's default). The newest
    /// rules when no release can be read: not a live Linux machine.
    public static func runningRules(procRoot: String = "/proc", bootRoot: String = "/boot") -> KernelRules {
        guard let release = release(procRoot: procRoot) else { return .newest }
        let config = read(procRoot: procRoot, bootRoot: bootRoot)
        return KernelRules.running(release: release, moveNotifyValue: config?.moveNotify(release: release) == .on ? "y" : nil)
    }

    /// The most a kernel configuration may be, compressed or inflated: 16 MiB (a distribution's
    /// `.config` is about 300 KiB). A `config.gz` that inflates past it is not read.
    static let configLimit = 16 << 20

    /// Reads the configuration from `PROCROOT/config.gz`, else `BOOTROOT/config-RELEASE`; `nil` when
    /// neither is readable.
    public static func read(procRoot: String = "/proc", bootRoot: String = "/boot") -> KernelConfig? {
        if let compressed = try? SystemCalls.readFile("\(procRoot)/config.gz", limit: configLimit).get(),
            let text = gunzip(compressed, limit: configLimit)
        {
            return KernelConfig(source: "\(procRoot)/config.gz", parsing: String(decoding: text, as: UTF8.self))
        }
        guard let release = release(procRoot: procRoot) else { return nil }
        let path = "\(bootRoot)/config-\(release)"
        guard let bytes = try? SystemCalls.readFile(path, limit: configLimit).get() else { return nil }
        return KernelConfig(source: path, parsing: String(decoding: bytes, as: UTF8.self))
    }
}

/// Decompresses gzip data with zlib (`inflateInit2` with gzip detection); `nil` when it is not
/// valid gzip or inflates to more than `limit` bytes (a gzip bomb stops there, not at its end).
/// - Complexity: O(min(inflated size, `limit`)).
func gunzip(_ input: [UInt8], limit: Int = KernelConfig.configLimit) -> [UInt8]? {
    var stream = z_stream()
    guard dmabufkit_inflate_init_gzip(&stream) == Z_OK else { return nil }
    defer { inflateEnd(&stream) }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    var input = input
    return input.withUnsafeMutableBufferPointer { source -> [UInt8]? in
        stream.next_in = source.baseAddress
        stream.avail_in = UInt32(source.count)
        while true {
            let status = chunk.withUnsafeMutableBufferPointer { buffer -> Int32 in
                stream.next_out = buffer.baseAddress
                stream.avail_out = UInt32(buffer.count)
                return inflate(&stream, Z_NO_FLUSH)
            }
            let produced = chunk.count - Int(stream.avail_out)
            output.append(contentsOf: chunk[0..<produced])
            if output.count > limit { return nil }
            if status == Z_STREAM_END { return output }
            if status != Z_OK { return nil }
            if produced == 0 && stream.avail_in == 0 { return nil }
        }
    }
}

import DMACore

/// The CPU facts the P2P rules read: vendor and family (`cpu_supports_p2pdma`,
/// `drivers/pci/p2pdma.c`: any AMD CPU of family 0x17 (Zen) or newer routes P2P through the host
/// bridge).
public struct CPUInfo: Hashable, Sendable, CustomStringConvertible {
    /// The CPU vendor.
    public enum Vendor: String, Hashable, Sendable {
        /// GenuineIntel.
        case intel
        /// AuthenticAMD (and HygonGenuine is not AMD for this rule).
        case amd
        /// Any other vendor, or a non-x86 CPU.
        case other
    }

    /// The vendor.
    public let vendor: Vendor
    /// The family as `/proc/cpuinfo` gives it (`cpu family`).
    public let family: Int

    /// Creates it.
    public init(vendor: Vendor, family: Int) {
        self.vendor = vendor
        self.family = family
    }

    /// The largest family `cpuid` can give: base family 0xf plus an 8-bit extended family.
    public static let maxFamily = 0xf + 0xff

    /// Parses `intel:0x6`, `amd:0x19`, `amd:0x16`, `other:0x0` (family in hex, `0x` optional; only
    /// hexadecimal digits, up to ``maxFamily``: `amd:-1` and `amd:+19` are refused).
    /// - Throws: `EINVAL` with the expected form.
    public init(parsing text: String) throws(DMAError) {
        let parts = text.lowercased().split(separator: ":", omittingEmptySubsequences: false)
        let digits = parts.count == 2 ? (parts[1].hasPrefix("0x") ? parts[1].dropFirst(2) : parts[1]) : ""
        guard parts.count == 2, let vendor = Vendor(rawValue: String(parts[0])), !digits.isEmpty, digits.count <= 4,
            digits.allSatisfy({ $0.isASCII && $0.isHexDigit }), let family = Int(digits, radix: 16), family <= Self.maxFamily
        else {
            throw DMAError(.invalidArgument, .EINVAL, "'\(ErrorText.printable(text))' is not a CPU description; write VENDOR:FAMILY such as intel:0x6 or amd:0x19")
        }
        self.init(vendor: vendor, family: family)
    }

    /// Reads `vendor_id` and `cpu family` of the first CPU from `/proc/cpuinfo` text.
    /// - Returns: `nil` when the text has no x86 vendor line (the CPU is then `other`).
    public static func parse(procCPUInfo text: String) -> CPUInfo? {
        var vendor: Vendor?
        var family: Int?
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: " \t") }
            guard parts.count == 2 else {
                if line.trimmingCharacters(in: " \t").isEmpty, vendor != nil { break }
                continue
            }
            if parts[0] == "vendor_id" && vendor == nil {
                vendor = parts[1] == "AuthenticAMD" ? .amd : parts[1] == "GenuineIntel" ? .intel : .other
            } else if parts[0] == "cpu family" && family == nil {
                family = Int(parts[1]).flatMap { (0...Self.maxFamily).contains($0) ? $0 : nil }
            }
        }
        guard let vendor else { return nil }
        return CPUInfo(vendor: vendor, family: family ?? 0)
    }

    /// `cpu_supports_p2pdma` (`drivers/pci/p2pdma.c`, from 5.9): an AMD CPU of family 0x17 (Zen)
    /// or newer routes P2P through any host bridge. Before 5.9 no CPU does (AMD root complexes
    /// were whitelist entries then).
    public func supportsP2PThroughHostBridge(kernel: KernelVersion = .newest) -> Bool {
        kernel >= KernelRule.p2pAMDZenCPU.introduced && isAMDZenOrNewer
    }

    /// An AMD CPU of family 0x17 (Zen) or newer: the CPU `cpu_supports_p2pdma` names, whatever
    /// the release.
    public var isAMDZenOrNewer: Bool { vendor == .amd && family >= 0x17 }

    /// `intel:0x6`.
    public var description: String { "\(vendor.rawValue):0x\(String(family, radix: 16))" }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}

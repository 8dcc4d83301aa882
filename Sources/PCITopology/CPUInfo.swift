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

    /// `cpu_supports_p2pdma`: an AMD CPU of family 0x17 or newer.
    public var supportsP2PThroughHostBridge: Bool { vendor == .amd && family >= 0x17 }

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

/// The host bridges known to route P2P well (`pci_p2pdma_whitelist`, `drivers/pci/p2pdma.c`, as
/// in the 7.x mainline): each entry is a vendor, a device (or any), and whether it is good only
/// between devices below the same host bridge.
public enum P2PHostBridgeWhitelist {
    /// One entry of the table.
    public struct Entry: Hashable, Sendable {
        /// Vendor ID.
        public let vendor: UInt16
        /// Device ID, `nil` for any device (`PCI_ANY_ID`).
        public let device: UInt16?
        /// `REQ_SAME_HOST_BRIDGE`: good only when both devices are below this one host bridge.
        public let sameHostBridgeOnly: Bool
        /// Where it comes from.
        public let comment: String
    }

    static let intel: UInt16 = 0x8086
    static let google: UInt16 = 0x1ae0
    static let nvidia: UInt16 = 0x10de

    /// The current table.
    public static let entries: [Entry] = [
        Entry(vendor: intel, device: 0x3c00, sameHostBridgeOnly: true, comment: "Intel Xeon E5/Core i7"),
        Entry(vendor: intel, device: 0x3c01, sameHostBridgeOnly: true, comment: "Intel Xeon E5/Core i7"),
        Entry(vendor: intel, device: 0x2f00, sameHostBridgeOnly: true, comment: "Intel Xeon E7 v3/Xeon E5 v3/Core i7"),
        Entry(vendor: intel, device: 0x2f01, sameHostBridgeOnly: true, comment: "Intel Xeon E7 v3/Xeon E5 v3/Core i7"),
        Entry(vendor: intel, device: 0x2030, sameHostBridgeOnly: false, comment: "Intel Skylake-E"),
        Entry(vendor: intel, device: 0x2031, sameHostBridgeOnly: false, comment: "Intel Skylake-E"),
        Entry(vendor: intel, device: 0x2032, sameHostBridgeOnly: false, comment: "Intel Skylake-E"),
        Entry(vendor: intel, device: 0x2033, sameHostBridgeOnly: false, comment: "Intel Skylake-E"),
        Entry(vendor: intel, device: 0x2020, sameHostBridgeOnly: false, comment: "Intel Skylake-E"),
        Entry(vendor: intel, device: 0x09a2, sameHostBridgeOnly: false, comment: "Intel Ice Lake-SP"),
        Entry(vendor: intel, device: 0x0b25, sameHostBridgeOnly: false, comment: "Intel DSA (Sapphire Rapids)"),
        Entry(vendor: intel, device: 0x0cfe, sameHostBridgeOnly: false, comment: "Intel IAX (Sapphire Rapids)"),
        Entry(vendor: intel, device: 0x11fb, sameHostBridgeOnly: false, comment: "Intel DSA (Granite Rapids-D)"),
        Entry(vendor: intel, device: 0x1212, sameHostBridgeOnly: false, comment: "Intel DSA (Diamond Rapids)"),
        Entry(vendor: intel, device: 0x1216, sameHostBridgeOnly: false, comment: "Intel IAA (Diamond Rapids)"),
        Entry(vendor: intel, device: 0x4940, sameHostBridgeOnly: false, comment: "Intel QAT 4xxx"),
        Entry(vendor: intel, device: 0x4942, sameHostBridgeOnly: false, comment: "Intel QAT 401xx"),
        Entry(vendor: intel, device: 0x4944, sameHostBridgeOnly: false, comment: "Intel QAT 402xx"),
        Entry(vendor: intel, device: 0x4946, sameHostBridgeOnly: false, comment: "Intel QAT 420xx"),
        Entry(vendor: intel, device: 0x4948, sameHostBridgeOnly: false, comment: "Intel QAT 6xxx"),
        Entry(vendor: google, device: nil, sameHostBridgeOnly: false, comment: "Google SoCs"),
        Entry(vendor: nvidia, device: 0x2f95, sameHostBridgeOnly: false, comment: "NVIDIA CPUs"),
        Entry(vendor: nvidia, device: 0x2f96, sameHostBridgeOnly: false, comment: "NVIDIA CPUs"),
        Entry(vendor: nvidia, device: 0x2f97, sameHostBridgeOnly: false, comment: "NVIDIA CPUs"),
        Entry(vendor: nvidia, device: 0x2f98, sameHostBridgeOnly: false, comment: "NVIDIA CPUs"),
    ]

    /// The first entry matching a vendor and device (the kernel stops at the first vendor+device
    /// match), if any.
    public static func entry(vendor: UInt16, device: UInt16) -> Entry? {
        entries.first { $0.vendor == vendor && ($0.device == nil || $0.device == device) }
    }
}

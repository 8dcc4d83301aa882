import DMACore

/// The host bridges known to route P2P well (`pci_p2pdma_whitelist`, `drivers/pci/p2pdma.c`), as
/// the table changed from release to release: each entry is a vendor, a device (or any), whether
/// it is good only between devices below the same host bridge, and the releases it was in.
///
/// History (mainline; the pull requests and maintainers' "applied for vX.Y" mails date each one,
/// except where marked):
/// - 5.2: AMD 1022:1450 through `root_complex_whitelist` (the table itself came in 5.4);
/// - 5.4: the table, with `REQ_SAME_HOST_BRIDGE`, and Intel 3c00/3c01/2f00/2f01 (all same host
///   bridge only);
/// - 5.6: Intel 2030 and 2020; 5.7: Intel 2031–2033; 5.8: AMD 15d0 and 1630;
/// - 5.9: every AMD entry removed, replaced by `cpu_supports_p2pdma` (AMD Zen or newer CPUs);
/// - 5.18: Intel 09a2 (Ice Lake-SP, the first root-bus device of every Xeon since);
/// - 7.1: wildcard device IDs and Google (any device) — dated by linux-next, not by a pull;
/// - 7.2: Intel's DSA, IAA and QAT devices (also in 7.1.3 stable) — dated by linux-next;
/// - 7.3: NVIDIA 2f95–2f98 — dated by the PCI tree's timing only.
/// Zhaoxin's host bridges were queued after 7.3-rc1 and are in no release yet.
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
        /// The first release that has it.
        public let introduced: KernelVersion
        /// The first release that no longer has it, `nil` while it is in the table.
        public let removed: KernelVersion?

        /// Whether the table of `kernel` holds it.
        public func isListed(in kernel: KernelVersion) -> Bool {
            introduced <= kernel && removed.map { kernel < $0 } != false
        }

        /// `8086:09a2` or `1ae0:*`.
        public var ids: String { "\(hex4(vendor)):\(device.map { hex4($0) } ?? "*")" }
    }

    static let amd: UInt16 = 0x1022
    static let intel: UInt16 = 0x8086
    static let google: UInt16 = 0x1ae0
    static let nvidia: UInt16 = 0x10de

    private static func entry(
        _ vendor: UInt16, _ device: UInt16?, same: Bool = false, _ comment: String, _ introduced: (Int, Int), removed: (Int, Int)? = nil
    ) -> Entry {
        Entry(
            vendor: vendor, device: device, sameHostBridgeOnly: same, comment: comment,
            introduced: KernelVersion(introduced.0, introduced.1), removed: removed.map { KernelVersion($0.0, $0.1) })
    }

    /// Every entry the table ever had, in the kernel's order, with the releases it was in.
    public static let history: [Entry] = [
        entry(amd, 0x1450, "AMD ZEN", (5, 2), removed: (5, 9)),
        entry(amd, 0x15d0, "AMD Raven", (5, 8), removed: (5, 9)),
        entry(amd, 0x1630, "AMD Renoir", (5, 8), removed: (5, 9)),
        entry(intel, 0x3c00, same: true, "Intel Xeon E5/Core i7", (5, 4)),
        entry(intel, 0x3c01, same: true, "Intel Xeon E5/Core i7", (5, 4)),
        entry(intel, 0x2f00, same: true, "Intel Xeon E7 v3/Xeon E5 v3/Core i7", (5, 4)),
        entry(intel, 0x2f01, same: true, "Intel Xeon E7 v3/Xeon E5 v3/Core i7", (5, 4)),
        entry(intel, 0x2030, "Intel Skylake-E", (5, 6)),
        entry(intel, 0x2031, "Intel Skylake-E", (5, 7)),
        entry(intel, 0x2032, "Intel Skylake-E", (5, 7)),
        entry(intel, 0x2033, "Intel Skylake-E", (5, 7)),
        entry(intel, 0x2020, "Intel Skylake-E", (5, 6)),
        entry(intel, 0x09a2, "Intel Ice Lake-SP", (5, 18)),
        entry(intel, 0x0b25, "Intel DSA (Sapphire Rapids)", (7, 2)),
        entry(intel, 0x0cfe, "Intel IAX (Sapphire Rapids)", (7, 2)),
        entry(intel, 0x11fb, "Intel DSA (Granite Rapids-D)", (7, 2)),
        entry(intel, 0x1212, "Intel DSA (Diamond Rapids)", (7, 2)),
        entry(intel, 0x1216, "Intel IAA (Diamond Rapids)", (7, 2)),
        entry(intel, 0x4940, "Intel QAT 4xxx", (7, 2)),
        entry(intel, 0x4942, "Intel QAT 401xx", (7, 2)),
        entry(intel, 0x4944, "Intel QAT 402xx", (7, 2)),
        entry(intel, 0x4946, "Intel QAT 420xx", (7, 2)),
        entry(intel, 0x4948, "Intel QAT 6xxx", (7, 2)),
        entry(google, nil, "Google SoCs", (7, 1)),
        entry(nvidia, 0x2f95, "NVIDIA CPUs", (7, 3)),
        entry(nvidia, 0x2f96, "NVIDIA CPUs", (7, 3)),
        entry(nvidia, 0x2f97, "NVIDIA CPUs", (7, 3)),
        entry(nvidia, 0x2f98, "NVIDIA CPUs", (7, 3)),
    ]

    /// The table of `kernel` (by default the newest release the model follows).
    public static func entries(in kernel: KernelVersion = .newest) -> [Entry] {
        history.filter { $0.isListed(in: kernel) }
    }

    /// The entry of `kernel`'s table matching a vendor and device, if any (the kernel stops at
    /// the first vendor and device match).
    public static func entry(vendor: UInt16, device: UInt16, kernel: KernelVersion = .newest) -> Entry? {
        history.first { $0.isListed(in: kernel) && $0.matches(vendor: vendor, device: device) }
    }

    /// The releases whose table lists a vendor and device: the first entry of the history that
    /// matches (for a remedy naming the release that would route a pair).
    public static func anyRelease(vendor: UInt16, device: UInt16) -> Entry? {
        history.first { $0.matches(vendor: vendor, device: device) }
    }
}

extension P2PHostBridgeWhitelist.Entry {
    func matches(vendor: UInt16, device: UInt16) -> Bool {
        self.vendor == vendor && (self.device == nil || self.device == device)
    }
}

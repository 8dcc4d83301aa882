import DMACore

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

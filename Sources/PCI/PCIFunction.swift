import DMACore

/// The PCI Express port type from the PCIe capability (`PCI_EXP_FLAGS_TYPE`,
/// `include/uapi/linux/pci_regs.h`).
public enum PCIePortType: Int, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// `PCI_EXP_TYPE_ENDPOINT`.
    case endpoint = 0x0
    /// `PCI_EXP_TYPE_LEG_END`.
    case legacyEndpoint = 0x1
    /// `PCI_EXP_TYPE_ROOT_PORT`.
    case rootPort = 0x4
    /// `PCI_EXP_TYPE_UPSTREAM`: the upstream port of a switch.
    case upstreamPort = 0x5
    /// `PCI_EXP_TYPE_DOWNSTREAM`: a downstream port of a switch.
    case downstreamPort = 0x6
    /// `PCI_EXP_TYPE_PCI_BRIDGE`: PCIe to PCI/PCI-X bridge.
    case pcieToPCIBridge = 0x7
    /// `PCI_EXP_TYPE_PCIE_BRIDGE`: PCI/PCI-X to PCIe bridge.
    case pciToPCIeBridge = 0x8
    /// `PCI_EXP_TYPE_RC_END`: root-complex integrated endpoint.
    case rootComplexEndpoint = 0x9
    /// `PCI_EXP_TYPE_RC_EC`: root-complex event collector.
    case rootComplexEventCollector = 0xa

    /// The name used in topology files (`root-port`).
    public var name: String {
        switch self {
        case .endpoint: "endpoint"
        case .legacyEndpoint: "legacy-endpoint"
        case .rootPort: "root-port"
        case .upstreamPort: "upstream-port"
        case .downstreamPort: "downstream-port"
        case .pcieToPCIBridge: "pcie-to-pci-bridge"
        case .pciToPCIeBridge: "pci-to-pcie-bridge"
        case .rootComplexEndpoint: "rc-endpoint"
        case .rootComplexEventCollector: "rc-event-collector"
        }
    }

    /// Parses ``name``.
    public init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = match
    }

    public var description: String { name }
}

/// The ACS extended capability of a function (`PCI_EXT_CAP_ID_ACS`), as far as it is known.
public enum ACSState: Hashable, Sendable, CustomStringConvertible {
    /// The function has no ACS capability (or no extended config space).
    case absent
    /// The capability at `offset` with its capability and control words.
    case present(offset: Int, capability: UInt16, control: UInt16)
    /// The config space could not be read far enough to tell (a non-root read of sysfs `config`
    /// gives 64 bytes).
    case unknown

    /// `PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC`: the control bits that redirect P2P TLPs upstream
    /// (`pci_bridge_has_acs_redir`, `drivers/pci/p2pdma.c`).
    public static let redirectMask: UInt16 = 0x04 | 0x08 | 0x20

    /// Whether the control word redirects P2P upstream; `nil` when unknown.
    public var redirects: Bool? {
        switch self {
        case .absent: false
        case .present(_, _, let control): control & Self.redirectMask != 0
        case .unknown: nil
        }
    }

    /// The control bits by name (`RR|CR`), or `"none"`.
    public static func describe(control: UInt16) -> String {
        let names: [(UInt16, String)] = [
            (0x01, "SV"), (0x02, "TB"), (0x04, "RR"), (0x08, "CR"), (0x10, "UF"), (0x20, "EC"), (0x40, "DT"),
        ]
        let set = names.filter { control & $0.0 != 0 }.map(\.1)
        return set.isEmpty ? "none" : set.joined(separator: "|")
    }

    public var description: String {
        switch self {
        case .absent: "no ACS"
        case .present(_, _, let control):
            "ACS ctrl \(hexID(control)) (\(Self.describe(control: control)))" + (control & Self.redirectMask != 0 ? ", redirects P2P" : "")
        case .unknown: "ACS unknown (config space not readable: read as root)"
        }
    }
}

/// A memory BAR (base address register) of a function.
public struct PCIBAR: Hashable, Sendable {
    /// The BAR index, 0…5.
    public let index: Int
    /// Where the CPU sees it (`pci_resource_start`, sysfs `resource`).
    public let cpuStart: PhysicalAddress
    /// Its size in bytes.
    public let size: UInt64
    /// Where it sits on the PCI bus (the BAR register, `pci_bus_address`); equal to the CPU address
    /// when the host bridge does not translate.
    public let busStart: DMAAddress
    /// A 64-bit BAR.
    public let is64Bit: Bool
    /// A prefetchable BAR.
    public let prefetchable: Bool

    /// Creates a BAR.
    /// - Throws: `EINVAL` for an index outside 0…5 or a zero size; `EOVERFLOW` when it wraps.
    public init(index: Int, cpuStart: PhysicalAddress, size: UInt64, busStart: DMAAddress? = nil, is64Bit: Bool = true, prefetchable: Bool = true)
        throws(DMAError)
    {
        guard (0...5).contains(index) else { throw DMAError(.invalidArgument, .EINVAL, "BAR index \(index) is outside 0…5") }
        _ = try PhysicalRange(start: cpuStart, length: size)
        self.index = index
        self.cpuStart = cpuStart
        self.size = size
        self.busStart = busStart ?? DMAAddress(cpuStart.rawValue)
        self.is64Bit = is64Bit
        self.prefetchable = prefetchable
    }

    /// The CPU physical range.
    public var cpuRange: PhysicalRange { try! PhysicalRange(start: cpuStart, length: size) }  // checked in init
}

/// One PCI function as the topology knows it: identity, place in the tree, and what the P2P rules
/// read (ACS, port type, BARs), plus what people want to see (class, DMA mask, NUMA node).
public struct PCIFunction: Hashable, Sendable {
    /// Its address.
    public let address: PCIAddress
    /// Vendor ID.
    public let vendor: UInt16
    /// Device ID.
    public let device: UInt16
    /// The 24-bit class code (`0x030200`).
    public let classCode: UInt32
    /// The bridge above it (`pci_upstream_bridge`), `nil` on a root bus.
    public let parent: PCIAddress?
    /// The host bridge it hangs below, as sysfs names it (`pci0000:00`).
    public let hostBridge: String
    /// The PCIe port type, `nil` for conventional PCI devices (no PCIe capability).
    public let portType: PCIePortType?
    /// Its ACS capability.
    public let acs: ACSState
    /// Its memory BARs.
    public let bars: [PCIBAR]
    /// Its DMA mask in bits, when known.
    public let dmaMaskBits: Int?
    /// Its NUMA node, when known (-1 for none).
    public let numaNode: Int?
    /// The bound driver's name, when known.
    public let driver: String?

    /// Creates a function.
    public init(
        address: PCIAddress, vendor: UInt16, device: UInt16, classCode: UInt32, parent: PCIAddress?, hostBridge: String,
        portType: PCIePortType? = nil, acs: ACSState = .absent, bars: [PCIBAR] = [], dmaMaskBits: Int? = nil,
        numaNode: Int? = nil, driver: String? = nil
    ) {
        self.address = address
        self.vendor = vendor
        self.device = device
        self.classCode = classCode
        self.parent = parent
        self.hostBridge = hostBridge
        self.portType = portType
        self.acs = acs
        self.bars = bars
        self.dmaMaskBits = dmaMaskBits
        self.numaNode = numaNode
        self.driver = driver
    }

    /// The base class (`0x06` for bridges).
    public var baseClass: UInt8 { UInt8(truncatingIfNeeded: classCode >> 16) }

    /// Whether this is a bridge by class (base class 0x06).
    public var isBridge: Bool { baseClass == 0x06 }

    /// A short human name of the class (`"3D controller"`).
    public var className: String { PCIClassNames.name(classCode) }

    /// `vendor:device` as `10de:2335`.
    public var ids: String { hex4(vendor) + ":" + hex4(self.device) }
}

/// Class names for the classes a DMA topology shows (`include/linux/pci_ids.h`, pci.ids).
enum PCIClassNames {
    static let bySubclass: [UInt16: String] = [
        0x0000: "Non-VGA unclassified device", 0x0100: "SCSI storage controller", 0x0101: "IDE interface",
        0x0104: "RAID bus controller", 0x0106: "SATA controller", 0x0107: "Serial Attached SCSI controller",
        0x0108: "Non-Volatile memory controller", 0x0180: "Mass storage controller", 0x0200: "Ethernet controller",
        0x0207: "InfiniBand controller", 0x0280: "Network controller", 0x0300: "VGA compatible controller",
        0x0302: "3D controller", 0x0380: "Display controller", 0x0403: "Audio device", 0x0500: "RAM memory",
        0x0580: "Memory controller", 0x0600: "Host bridge", 0x0601: "ISA bridge", 0x0604: "PCI bridge",
        0x0680: "Bridge", 0x0700: "Serial controller", 0x0880: "System peripheral", 0x0c03: "USB controller",
        0x0c05: "SMBus", 0x0c06: "InfiniBand", 0x1080: "Encryption controller", 0x1200: "Processing accelerators",
        0x1280: "Non-Essential Instrumentation", 0xff00: "Unassigned class",
    ]
    static let byBase: [UInt8: String] = [
        0x00: "Unclassified device", 0x01: "Mass storage controller", 0x02: "Network controller",
        0x03: "Display controller", 0x04: "Multimedia controller", 0x05: "Memory controller", 0x06: "Bridge",
        0x07: "Communication controller", 0x08: "Generic system peripheral", 0x0c: "Serial bus controller",
        0x10: "Encryption controller", 0x12: "Processing accelerators", 0xff: "Unassigned class",
    ]

    static func name(_ classCode: UInt32) -> String {
        let sub = UInt16(truncatingIfNeeded: classCode >> 8)
        if let name = bySubclass[sub] { return name }
        return byBase[UInt8(truncatingIfNeeded: classCode >> 16)] ?? "Class \(hex4(sub))"
    }
}

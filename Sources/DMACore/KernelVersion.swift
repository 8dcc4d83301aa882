/// A Linux release, as far as the model's rules care: major and minor (`6.12`, `7.1`). A stable
/// or distribution suffix (`6.12.95+deb12-amd64`) follows its series' rules.
public struct KernelVersion: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The major number (`6` of 6.12).
    public let major: Int
    /// The minor number (`12` of 6.12).
    public let minor: Int

    /// A version from its numbers.
    public init(_ major: Int, _ minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// Parses `6.12`, `v6.18`, `7.1-rc3` or a release as `uname -r` prints it
    /// (`6.12.95+deb12-amd64`); `nil` when it does not start with `MAJOR.MINOR`.
    public init?(parsing text: String) {
        var rest = Substring(text)
        if rest.first == "v" { rest = rest.dropFirst() }
        let majorDigits = rest.prefix(while: \.isASCIIDigit)
        rest = rest.dropFirst(majorDigits.count)
        guard !majorDigits.isEmpty, majorDigits.count <= 4, rest.first == "." else { return nil }
        rest = rest.dropFirst()
        let minorDigits = rest.prefix(while: \.isASCIIDigit)
        guard !minorDigits.isEmpty, minorDigits.count <= 4, let major = Int(majorDigits), let minor = Int(minorDigits) else { return nil }
        let after = rest.dropFirst(minorDigits.count).first
        guard after == nil || after == "." || after == "-" || after == "+" || after == "_" else { return nil }
        self.init(major, minor)
    }

    /// The newest release whose rules the model follows, and its default: 7.3, the release of the
    /// kernel tier (its P2PDMA host-bridge whitelist has entries from 7.2 and 7.3; the dma-buf
    /// rules of ``KernelRule`` last changed in 7.1).
    public static let newest = KernelVersion(7, 3)

    public static func < (a: KernelVersion, b: KernelVersion) -> Bool { (a.major, a.minor) < (b.major, b.minor) }

    /// `6.12`.
    public var description: String { "\(major).\(minor)" }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

/// Every rule of the model that depends on the kernel release, with the release it came in and
/// the kernel file it lives in (docs/kernel-versions.md is the same table for people). Each
/// place in the model that follows one of these asks ``KernelRules`` about it.
public enum KernelRule: String, CaseIterable, Sendable, CustomStringConvertible {
    /// `CONFIG_DMABUF_MOVE_NOTIFY` stops being a choice: invalidation is always on, the symbol is
    /// gone from `drivers/dma-buf/Kconfig` (7.1). Before, the option (experimental, default off,
    /// off in Debian and Ubuntu) decides whether `dma_buf_map_attachment` pins every attachment of
    /// a dynamic exporter (`drivers/dma-buf/dma-buf.c`, 6.12) and whether amdgpu may pin in VRAM
    /// (`amdgpu_dma_buf_pin` drops the VRAM domain when it is off: GTT only).
    case moveNotifyAlwaysOn = "move-notify-always-on"
    /// No more sg-table cache at attach (6.15, `drivers/dma-buf/dma-buf.c`): before, when the
    /// importer and the exporter differ in dynamic-ness, `dma_buf_dynamic_attach` pins (a
    /// dynamic exporter) and maps `DMA_BIDIRECTIONAL` at once, every map returns that table,
    /// unmap leaves it, and detach unmaps and unpins it.
    case noMappingCacheAtAttach = "no-mapping-cache-at-attach"
    /// `dma_map_phys` with `DMA_ATTR_MMIO` maps a P2P range through the host bridge (6.18,
    /// `kernel/dma/mapping.c`); before, `dma_map_resource` did.
    case mapPhysMMIO = "dma-map-phys-mmio"
    /// VFIO PCI dma-buf export, `VFIO_DEVICE_FEATURE_DMA_BUF` (6.19,
    /// `drivers/vfio/pci/vfio_pci_dmabuf.c`); before, the feature is unknown (`ENOTTY`).
    case vfioDMABufExport = "vfio-dmabuf-export"
    /// Revocable attachments: `move_notify` renamed `invalidate_mappings` and made optional (before,
    /// a dynamic importer without it is `EINVAL` at attach, and a pinned RDMA MR carries a stub
    /// that only warns), and `dma_buf_attach_revocable` lets VFIO refuse an importer that cannot
    /// be told (7.1, `drivers/dma-buf/dma-buf.c`, `drivers/vfio/pci/vfio_pci_dmabuf.c`).
    case revocableAttachments = "revocable-attachments"
    /// amdgpu may pin an exported buffer in VRAM when every attachment has P2P, and maps a buffer
    /// pinned in VRAM for whoever maps it (6.15, `drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c`);
    /// before, `amdgpu_dma_buf_pin` pins in GTT only and `amdgpu_dma_buf_map` refuses a buffer
    /// pinned anywhere else with `EBUSY`.
    case gpuPinsInVRAM = "amdgpu-pins-in-vram"
    /// Two devices with no upstream bridge in common reach each other when the root bus of each
    /// has an AMD Zen root complex (1022:1450) at 00.0 (5.2, `root_complex_whitelist` in
    /// `drivers/pci/p2pdma.c`): distance 0x1000 plus the hops, mapped with bus addresses as every
    /// P2P mapping was then. Before (4.20–5.1), devices below different root ports never reach
    /// each other.
    case p2pAMDRootComplex = "p2pdma-amd-root-complex"
    /// The host-bridge whitelist (5.4, `pci_p2pdma_whitelist` in `drivers/pci/p2pdma.c`) and the
    /// map types: a pair with no common upstream bridge, or with ACS redirect on its path, goes
    /// through the host bridge (`PCI_P2PDMA_MAP_THRU_HOST_BRIDGE`, mapped by the DMA API) when the
    /// host bridges are listed, both without `REQ_SAME_HOST_BRIDGE` when they differ. Before, ACS
    /// redirect on the path refuses the pair. Each entry of the table names its own release
    /// (`P2PHostBridgeWhitelist` in the `PCI` module).
    case p2pHostBridgeWhitelist = "p2pdma-host-bridge-whitelist"
    /// `cpu_supports_p2pdma` (5.9, `drivers/pci/p2pdma.c`): with an AMD CPU of family 0x17 (Zen)
    /// or newer every host bridge routes P2P, whatever the whitelist says; the table's AMD
    /// entries (1022:1450, 15d0, 1630) are gone from then on.
    case p2pAMDZenCPU = "p2pdma-amd-zen-cpu"
    /// A host bridge's whitelist identity (`pci_host_bridge_dev`) may be a PCIe root port at any
    /// devfn when it is the first device on the root bus (5.19, `drivers/pci/p2pdma.c`); before,
    /// only a device at devfn 00.0.
    case p2pRootPortIdentity = "p2pdma-root-port-identity"
    /// A pinned RDMA MR that can be revoked: `ib_umem_dmabuf_get_pinned_revocable_and_lock` pins
    /// and maps like `ib_umem_dmabuf_get_pinned` but gives `invalidate_mappings`, which revokes the
    /// MR for good (unmap, unpin, every later map `EINVAL`), so exporters that must be able to
    /// revoke (VFIO) accept it (7.1, `drivers/infiniband/core/umem_dmabuf.c`, used by irdma);
    /// before, the call does not exist.
    case revocablePinnedMR = "rdma-revocable-pinned-mr"

    /// The release the rule came in.
    public var introduced: KernelVersion {
        switch self {
        case .moveNotifyAlwaysOn: KernelVersion(7, 1)
        case .noMappingCacheAtAttach: KernelVersion(6, 15)
        case .mapPhysMMIO: KernelVersion(6, 18)
        case .vfioDMABufExport: KernelVersion(6, 19)
        case .revocableAttachments: KernelVersion(7, 1)
        case .gpuPinsInVRAM: KernelVersion(6, 15)
        case .p2pAMDRootComplex: KernelVersion(5, 2)
        case .p2pHostBridgeWhitelist: KernelVersion(5, 4)
        case .p2pAMDZenCPU: KernelVersion(5, 9)
        case .p2pRootPortIdentity: KernelVersion(5, 19)
        case .revocablePinnedMR: KernelVersion(7, 1)
        }
    }

    /// The kernel source file the rule is read from.
    public var kernelFile: String {
        switch self {
        case .moveNotifyAlwaysOn: "drivers/dma-buf/dma-buf.c, drivers/dma-buf/Kconfig, drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c"
        case .noMappingCacheAtAttach: "drivers/dma-buf/dma-buf.c"
        case .mapPhysMMIO: "kernel/dma/mapping.c"
        case .vfioDMABufExport: "drivers/vfio/pci/vfio_pci_dmabuf.c"
        case .revocableAttachments: "drivers/dma-buf/dma-buf.c"
        case .gpuPinsInVRAM: "drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c"
        case .p2pAMDRootComplex, .p2pHostBridgeWhitelist, .p2pAMDZenCPU, .p2pRootPortIdentity: "drivers/pci/p2pdma.c"
        case .revocablePinnedMR: "drivers/infiniband/core/umem_dmabuf.c"
        }
    }

    /// The rule in one line.
    public var summary: String {
        switch self {
        case .moveNotifyAlwaysOn:
            "CONFIG_DMABUF_MOVE_NOTIFY gone, invalidation always on; before, with it off, every map of a dynamic exporter pins and amdgpu pins in GTT only"
        case .noMappingCacheAtAttach:
            "importers map when they map; before, an importer and exporter of different dynamic-ness were pinned and mapped bidirectionally at attach"
        case .mapPhysMMIO: "P2P through the host bridge is mapped with dma_map_phys(DMA_ATTR_MMIO); before, with dma_map_resource"
        case .vfioDMABufExport: "VFIO_DEVICE_FEATURE_DMA_BUF exports a BAR as a dma-buf; before, ENOTTY"
        case .revocableAttachments:
            "invalidate_mappings (was move_notify, required until then) is optional; VFIO refuses importers that cannot be revoked"
        case .gpuPinsInVRAM:
            "amdgpu pins in VRAM when every attachment has P2P and maps a VRAM-pinned buffer for any importer; before, it pins in GTT only and a buffer pinned elsewhere is EBUSY at map"
        case .p2pAMDRootComplex:
            "devices below different root ports of AMD Zen root complexes (1022:1450) reach each other, at distance 0x1000 plus hops, by bus address; before, never"
        case .p2pHostBridgeWhitelist:
            "whitelisted host bridges route P2P without a common bridge or across ACS redirect (THRU_HOST_BRIDGE); before, ACS redirect refuses the pair"
        case .p2pAMDZenCPU: "an AMD Zen or newer CPU routes P2P through any host bridge; the AMD whitelist entries are removed"
        case .p2pRootPortIdentity: "a root port first on the root bus stands for its host bridge in the whitelist; before, only a device at 00.0"
        case .revocablePinnedMR:
            "a pinned RDMA MR may have invalidate_mappings, which revokes it for good (unmap, unpin, later maps EINVAL), so VFIO accepts it; before, no such MR"
        }
    }

    /// `move-notify-always-on (7.1)`.
    public var description: String { "\(rawValue) (\(introduced))" }
}

/// `CONFIG_DMABUF_MOVE_NOTIFY` as a kernel has it.
public enum MoveNotifyConfig: String, Hashable, Sendable, CustomStringConvertible {
    /// `# CONFIG_DMABUF_MOVE_NOTIFY is not set` (the default, and Debian's and Ubuntu's, before 7.1).
    case off = "not set"
    /// `CONFIG_DMABUF_MOVE_NOTIFY=y`.
    case on = "y"
    /// 7.1 on: no such symbol; invalidation is always on.
    case alwaysOn = "absent (always on since 7.1)"

    /// Whether exporters may move memory under dynamic importers' mappings.
    public var isEnabled: Bool { self != .off }

    /// `not set`, `y` or `absent (always on since 7.1)`.
    public var description: String { rawValue }
}

/// The rule set of one kernel: its release and the configuration the rules depend on. Every
/// version-dependent rule of the model (``KernelRule``) consults one; ``newest`` (7.3) is the
/// default everywhere, so a caller that names no kernel gets the behaviour the model always had.
public struct KernelRules: Hashable, Sendable, CustomStringConvertible {
    /// The release.
    public let version: KernelVersion
    /// `CONFIG_DMABUF_MOVE_NOTIFY`: ``MoveNotifyConfig/alwaysOn`` from 7.1, whatever was asked.
    public let moveNotify: MoveNotifyConfig

    /// The rules of `version`. `moveNotify` is the config value where the kernel has the option
    /// (before 7.1; `false`, the default, is what Debian and Ubuntu ship); from 7.1 the symbol is
    /// gone and it is ignored.
    public init(_ version: KernelVersion, moveNotify: Bool = false) {
        self.version = version
        if version >= KernelRule.moveNotifyAlwaysOn.introduced {
            self.moveNotify = .alwaysOn
        } else {
            self.moveNotify = moveNotify ? .on : .off
        }
    }

    /// The rules the model follows unless told otherwise: 7.3's.
    public static let newest = KernelRules(.newest)

    /// The rules of a running kernel: its release (`/proc/sys/kernel/osrelease`) and, where the
    /// release still has the option, the value of `CONFIG_DMABUF_MOVE_NOTIFY` in its config (`y`
    /// or `m` on; anything else, or no config, off). ``newest`` when the release cannot be read.
    public static func running(release: String?, moveNotifyValue: String?) -> KernelRules {
        guard let release, let version = KernelVersion(parsing: release) else { return .newest }
        return KernelRules(version, moveNotify: moveNotifyValue == "y" || moveNotifyValue == "m")
    }

    /// Parses a `--kernel` or `kernel:` value: `6.12`, `6.12+move-notify` (the option set), a
    /// release string; `newest` for 7.3.
    /// - Throws: `EINVAL` for anything else, naming the forms accepted.
    public init(parsing text: String) throws(DMAError) {
        if text == "newest" {
            self = .newest
            return
        }
        var name = Substring(text)
        var moveNotify = false
        if name.hasSuffix("+move-notify") {
            name = name.dropLast("+move-notify".count)
            moveNotify = true
        }
        guard let version = KernelVersion(parsing: String(name)), version.major >= 5 else {
            throw DMAError(
                .invalidArgument, .EINVAL,
                "kernel '\(text)' is not a release the model has rules for: give MAJOR.MINOR from 5.0 on (6.12, 7.1), optionally with +move-notify (CONFIG_DMABUF_MOVE_NOTIFY=y before 7.1), or newest")
        }
        if moveNotify, version >= KernelRule.moveNotifyAlwaysOn.introduced {
            throw DMAError(
                .invalidArgument, .EINVAL, "kernel '\(text)': CONFIG_DMABUF_MOVE_NOTIFY does not exist from 7.1 on (invalidation is always on)")
        }
        self.init(version, moveNotify: moveNotify)
    }

    /// Whether `rule` holds in this kernel (it came in this release or earlier).
    public func has(_ rule: KernelRule) -> Bool { version >= rule.introduced }

    /// Whether every map of a dynamic exporter's buffer pins it, whoever imports
    /// (`dma_buf_map_attachment` with `CONFIG_DMABUF_MOVE_NOTIFY` off, `drivers/dma-buf/dma-buf.c`
    /// before 7.1).
    public var everyMapPins: Bool { !moveNotify.isEnabled }

    /// Whether `dma_buf_dynamic_attach` maps (and pins, for a dynamic exporter) at attach when
    /// the importer and the exporter differ in dynamic-ness, and keeps that mapping until detach
    /// (`drivers/dma-buf/dma-buf.c` before 6.15).
    public var cachesMappingAtAttach: Bool { !has(.noMappingCacheAtAttach) }

    /// Whether a GPU exporter may pin in VRAM (`amdgpu_dma_buf_pin` removes the VRAM domain when
    /// `CONFIG_DMABUF_MOVE_NOTIFY` is off; `amdgpu_dma_buf.c`).
    public var gpuMayPinInVRAM: Bool { moveNotify.isEnabled }

    /// The DMA API call that maps a P2P range through the host bridge.
    public var mmioMapCall: String { has(.mapPhysMMIO) ? "dma_map_phys(DMA_ATTR_MMIO)" : "dma_map_resource" }

    /// The importer's callback a move or revoke calls.
    public var invalidateCallName: String { has(.revocableAttachments) ? "invalidate_mappings" : "move_notify" }

    /// `7.1` or `6.12 (CONFIG_DMABUF_MOVE_NOTIFY not set)`.
    public var description: String {
        moveNotify == .alwaysOn ? "\(version)" : "\(version) (CONFIG_DMABUF_MOVE_NOTIFY \(moveNotify))"
    }

    /// The `--kernel` form that gives these rules back: `6.12`, `6.12+move-notify`, `7.1`.
    public var argument: String { moveNotify == .on ? "\(version)+move-notify" : "\(version)" }
}

extension KernelRules: Encodable {
    private enum CodingKeys: String, CodingKey { case version, moveNotify }

    /// `{"version": "6.12", "moveNotify": "not set"}`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version.description, forKey: .version)
        try c.encode(moveNotify.rawValue, forKey: .moveNotify)
    }
}

import DMACore

/// One DMA segment after mapping: what the device is told to use.
@frozen
public struct DMASegment: Hashable, Sendable, CustomStringConvertible {
    /// The address the device uses.
    public var address: DMAAddress
    /// The number of bytes.
    public var length: UInt64
    /// Whether this is a P2P bus address that no IOMMU or bounce was involved in
    /// (`sg_dma_is_bus_address`): it must not be unmapped through the IOMMU.
    public var isBusAddress: Bool

    /// Creates a segment.
    @inlinable
    public init(address: DMAAddress, length: UInt64, isBusAddress: Bool = false) {
        self.address = address
        self.length = length
        self.isBusAddress = isBusAddress
    }

    public var description: String { "\(address)+\(hex(length))" + (isBusAddress ? " (bus)" : "") }
}

/// A scatter-list after `dma_map_sgtable`: the original entries (`orig_nents`) and the DMA segments
/// the ops produced (`nents`), which may be fewer when the ops coalesce (an IOMMU does).
///
/// A value: the caller keeps it and hands it back to unmap and sync, as a driver keeps its
/// `sg_table`. Its parts are public so that a caller can hand back a wrong one; the DMA-API debug
/// layer is there to catch that.
public struct DMAScatterTable: Hashable, Sendable {
    /// The list that was mapped.
    public var list: ScatterList
    /// The DMA segments, in order.
    public var segments: [DMASegment]
    /// For a P2P list, how it was mapped; `nil` for host memory.
    public var p2pMapType: P2PMapType?

    /// Creates a table.
    public init(list: ScatterList, segments: [DMASegment], p2pMapType: P2PMapType? = nil) {
        self.list = list
        self.segments = segments
        self.p2pMapType = p2pMapType
    }

    /// The sum of the segment lengths.
    public var mappedLength: UInt64 { segments.reduce(0) { $0 + $1.length } }
}

/// Which way a device access goes, for the IOMMU's permission check.
public enum DMAAccess: String, Hashable, Sendable {
    /// The device reads memory (a transmit).
    case read
    /// The device writes memory (a receive).
    case write
}

/// A reserved IOVA range of the two-step IOVA API (`struct dma_iova_state`, 6.16).
public struct DMAIOVAState: Hashable, Sendable {
    /// The first IOVA of the reservation (including the first link's offset inside its page).
    public let address: DMAAddress
    /// The number of bytes reserved.
    public let size: UInt64
    /// The offset inside the first granule of the physical address `try_alloc` was given.
    public let offset: UInt64

    /// Creates a state (ops that implement the two-step API make these).
    public init(address: DMAAddress, size: UInt64, offset: UInt64) {
        self.address = address
        self.size = size
        self.offset = offset
    }
}

/// A table of DMA-mapping operations: the kernel's `struct dma_map_ops`
/// (`include/linux/dma-map-ops.h`) together with the dma-direct and dma-iommu paths that run when a
/// device has no ops of its own. Built-in ops and third-party ops plug in the same way, through a
/// ``DMAOpsRegistry``.
///
/// The contract, which `DMAConformance` checks for any implementation:
/// - a map returns addresses the device can reach (within its mask) or throws, and leaves nothing
///   mapped when it throws (a scatter-list map is all-or-nothing, as `dma_map_sg` unwinds);
/// - `DMA_NONE` is refused with `EINVAL`;
/// - a P2P scatter-list is accepted only when ``p2pSupported`` is true; otherwise the ops throw
///   `DMAError/Code/peerToPeerNotSupported` (`EREMOTEIO`) and map nothing;
/// - every mapping is undone by exactly one unmap with the same size and direction;
/// - ``translate(_:access:device:)`` tells how the device's address reaches memory, so the
///   simulated DMA engine can move bytes through what the ops built.
public protocol DMAOps: Sendable {
    /// The name the registry knows the ops by (`"direct"`, `"iommu"`).
    var name: String { get }
    /// Whether the ops can map P2P memory (`DMA_F_PCI_P2PDMA_SUPPORTED`).
    var p2pSupported: Bool { get }
    /// One line for people: what the ops do.
    var summary: String { get }
    /// Whether the addresses handed out are CPU virtual addresses for a software device (virt
    /// ops), which no bus carries, so the device's DMA mask does not bound them. `false` unless
    /// the ops say so.
    var addressesAreCPUVirtual: Bool { get }

    /// Maps one physical range (`map_phys`, 6.19; `dma_map_phys`, 6.18).
    /// - Returns: the address the device uses for the first byte.
    func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAAddress
    /// Undoes ``mapPhys(_:direction:attributes:device:)`` (`unmap_phys`).
    func unmapPhys(
        _ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError)
    /// Maps a scatter-list (`map_sg`); all-or-nothing.
    func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAScatterTable
    /// Undoes ``mapScatterList(_:direction:attributes:device:)`` (`unmap_sg`).
    func unmapScatterList(
        _ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError)
    /// Hands mapped memory to the CPU (`sync_single_for_cpu`): after it the CPU sees what the
    /// device wrote.
    func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError)
    /// Hands mapped memory to the device (`sync_single_for_device`): after it the device sees what
    /// the CPU wrote.
    func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice)
        throws(DMAError)
    /// Syncs every segment of a mapped scatter-list for the CPU (`sync_sg_for_cpu`).
    func syncScatterListForCPU(_ table: DMAScatterTable, direction: DMADirection, device: DMADevice) throws(DMAError)
    /// Syncs every segment of a mapped scatter-list for the device (`sync_sg_for_device`).
    func syncScatterListForDevice(_ table: DMAScatterTable, direction: DMADirection, device: DMADevice)
        throws(DMAError)
    /// How the device's address `address` reaches physical memory: through an IOMMU page table, by
    /// subtracting the bus offset, or whatever the ops set up. The simulated DMA engine calls it
    /// for every page a device touches.
    /// - Throws: `DMAError/Code/iommuFault` (`EFAULT`) for an address that is not mapped or not
    ///   mapped for this access.
    func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress

    /// Reserves one IOVA range for the two-step API (`dma_iova_try_alloc`), or answers `nil` when
    /// the device does not use an IOMMU, so that the caller falls back to per-range mapping.
    func iovaTryAlloc(_ physical: PhysicalAddress, size: UInt64, device: DMADevice) throws(DMAError) -> DMAIOVAState?
    /// Links a physical range at `offset` into a reserved range (`dma_iova_link`).
    func iovaLink(
        _ state: DMAIOVAState, physical: PhysicalAddress, offset: UInt64, length: UInt64, direction: DMADirection,
        attributes: DMAAttributes, device: DMADevice) throws(DMAError)
    /// Makes the links visible to the device (`dma_iova_sync`, one IOTLB sync for all links).
    func iovaSync(_ state: DMAIOVAState, offset: UInt64, length: UInt64, device: DMADevice) throws(DMAError)
    /// Unlinks `mappedLength` bytes and frees the reservation (`dma_iova_destroy`).
    func iovaDestroy(
        _ state: DMAIOVAState, mappedLength: UInt64, direction: DMADirection, attributes: DMAAttributes,
        device: DMADevice) throws(DMAError)
}

extension DMAOps {
    public var summary: String { name }
    public var addressesAreCPUVirtual: Bool { false }

    public func syncScatterListForCPU(_ table: DMAScatterTable, direction: DMADirection, device: DMADevice)
        throws(DMAError)
    {
        for segment in table.segments where !segment.isBusAddress {
            try syncForCPU(segment.address, length: segment.length, direction: direction, device: device)
        }
    }

    public func syncScatterListForDevice(_ table: DMAScatterTable, direction: DMADirection, device: DMADevice)
        throws(DMAError)
    {
        for segment in table.segments where !segment.isBusAddress {
            try syncForDevice(segment.address, length: segment.length, direction: direction, device: device)
        }
    }

    /// The two-step API is not there unless the ops say so: `dma_iova_try_alloc` answers no.
    public func iovaTryAlloc(_ physical: PhysicalAddress, size: UInt64, device: DMADevice) throws(DMAError)
        -> DMAIOVAState?
    { nil }

    public func iovaLink(
        _ state: DMAIOVAState, physical: PhysicalAddress, offset: UInt64, length: UInt64, direction: DMADirection,
        attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        throw DMAError(.notSupported, .EOPNOTSUPP, "\(name) ops have no two-step IOVA API")
    }

    public func iovaSync(_ state: DMAIOVAState, offset: UInt64, length: UInt64, device: DMADevice) throws(DMAError) {
        throw DMAError(.notSupported, .EOPNOTSUPP, "\(name) ops have no two-step IOVA API")
    }

    public func iovaDestroy(
        _ state: DMAIOVAState, mappedLength: UInt64, direction: DMADirection, attributes: DMAAttributes,
        device: DMADevice
    ) throws(DMAError) {
        throw DMAError(.notSupported, .EOPNOTSUPP, "\(name) ops have no two-step IOVA API")
    }

    /// The checks every ops runs first on a scatter-list, as `__dma_map_sg_attrs` and the P2P
    /// state machine do (`kernel/dma/mapping.c`, `pci_p2pdma_state`): a valid direction, and for a
    /// P2P list ops that support P2P and a topology that allows it.
    /// - Returns: the P2P map type, or `nil` for host memory.
    /// - Throws: `EINVAL` for `DMA_NONE`; `EREMOTEIO` when P2P is impossible.
    public func checkScatterList(_ list: ScatterList, direction: DMADirection, device: DMADevice) throws(DMAError)
        -> P2PMapType?
    {
        guard direction.isValidForMapping else { throw .invalidDirection(direction, "dma_map_sgtable") }
        guard let provider = list.provider else { return nil }
        guard p2pSupported else {
            throw DMAError(
                .peerToPeerNotSupported, .EREMOTEIO,
                "\(name) ops cannot map P2P memory (no DMA_F_PCI_P2PDMA_SUPPORTED): \(device.name) was handed \(list)")
        }
        let type = device.p2pMapType(to: provider)
        guard type != .notSupported else {
            throw DMAError(
                .peerToPeerNotSupported, .EREMOTEIO,
                "\(device.name) cannot reach \(provider) peer-to-peer (PCI_P2PDMA_MAP_NOT_SUPPORTED)")
        }
        return type
    }
}

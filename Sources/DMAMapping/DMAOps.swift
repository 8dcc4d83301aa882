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
/// Seven members make an ops: ``name``, ``p2pSupported``, ``mapPhys(_:direction:attributes:device:)``,
/// ``unmapPhys(_:length:direction:attributes:device:)``, ``syncForCPU(_:length:direction:device:)``,
/// ``syncForDevice(_:length:direction:device:)`` and ``translate(_:access:device:)``. Everything
/// else has a default: the scatter-list map and unmap (the P2P check, the bus-address fast path,
/// one ``mapPhys(_:direction:attributes:device:)`` per entry with unwind, as `dma_direct_map_sg`
/// does), the scatter-list syncs, and the two-step IOVA API (absent). Ops that keep state per
/// device put it in ``DMADevice/opsState(_:make:)``, which tells it when the device goes away.
///
/// What the ops may rely on: the direction is never `DMA_NONE`. The DMA API (``DMADevice``'s
/// `mapPhys`, `mapScatterList`, their unmaps and the syncs) refuses it before dispatching, where
/// `kernel/dma/mapping.c` has `BUG_ON(!valid_dma_direction(dir))`; no ops checks it again.
///
/// What the ops promise, which `DMAConformance` checks for any implementation through the DMA API:
/// - a map returns addresses the device can reach (within its mask) or throws, and leaves nothing
///   mapped when it throws (a scatter-list map is all-or-nothing, as `dma_map_sg` unwinds);
/// - a P2P scatter-list is accepted only when ``p2pSupported`` is true; otherwise the ops throw
///   `DMAError/Code/peerToPeerNotSupported` (`EREMOTEIO`) and map nothing;
/// - every mapping is undone by exactly one unmap with the same size and direction;
/// - ``translate(_:access:device:)`` tells how the device's address reaches memory, so the
///   simulated DMA engine can move bytes through what the ops built.
public protocol DMAOps: Sendable {
    /// The name the registry knows the ops by (`"direct"`, `"iommu"`).
    var name: String { get }
    /// Whether the ops can map P2P memory (`DMA_F_PCI_P2PDMA_SUPPORTED`). When `false` the
    /// default scatter-list map refuses every P2P list with `EREMOTEIO` before any range is mapped.
    var p2pSupported: Bool { get }
    /// One line for people: what the ops do (the name unless the ops say more).
    var summary: String { get }
    /// Whether the addresses handed out are CPU virtual addresses for a software device (virt
    /// ops), which no bus carries, so the device's DMA mask does not bound them. `false` unless
    /// the ops say so.
    var addressesAreCPUVirtual: Bool { get }

    /// Maps one physical range (`map_phys`, 6.19; `dma_map_phys`, 6.18).
    ///
    /// Obligations: return the address the device uses for the first byte, reachable within the
    /// device's mask (bounce, remap or throw: never hand out an address the device cannot drive);
    /// refuse a range no memory backs, and RAM and MMIO mixed up (``checkMemoryKind(_:attributes:device:)``);
    /// honour `DMA_ATTR_MMIO` (no bounce, no CPU sync); leave nothing behind when throwing; be safe
    /// to call from many threads at once. `direction` is never `DMA_NONE`.
    /// - Returns: the address the device uses for the first byte.
    /// - Throws: a typed error with the kernel's errno (`ENOMEM` when nothing can reach or bounce
    ///   the range, `EINVAL` for a bad range).
    func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAAddress
    /// Undoes ``mapPhys(_:direction:attributes:device:)`` (`unmap_phys`).
    ///
    /// Obligations: release everything the map took (IOVA, page-table entries, bounce slots, table
    /// entries); for a bounced `DMA_FROM_DEVICE`/`DMA_BIDIRECTIONAL` mapping copy the device's
    /// bytes back unless `DMA_ATTR_SKIP_CPU_SYNC` says not to; it is called with the length,
    /// direction and attributes of the map. The default scatter-list unmap calls it once per
    /// segment, with `DMA_ATTR_SKIP_CPU_SYNC` added when it unwinds a failed map.
    func unmapPhys(
        _ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError)
    /// Maps a scatter-list (`map_sg`); all or nothing.
    ///
    /// The default (``mapScatterListEntries(_:direction:attributes:device:)``) does what
    /// `dma_direct_map_sg` does: the P2P check, bus addresses for a bus-address P2P list, and one
    /// ``mapPhys(_:direction:attributes:device:)`` per entry otherwise (with `DMA_ATTR_MMIO` for a
    /// P2P list through the host bridge), unwinding what was mapped when an entry fails. Ops that
    /// map a list at once (an IOMMU: one IOVA range, one page-table call) implement it themselves;
    /// they must then call ``checkScatterList(_:device:)`` first and leave nothing mapped when
    /// they throw.
    func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAScatterTable
    /// Undoes ``mapScatterList(_:direction:attributes:device:)`` (`unmap_sg`).
    ///
    /// The default (``unmapScatterListSegments(_:direction:attributes:device:)``) unmaps every
    /// segment that is not a bus address with ``unmapPhys(_:length:direction:attributes:device:)``
    /// (with `DMA_ATTR_MMIO` for a host-bridge P2P table), and refuses with `EINVAL` a table whose
    /// segments are not one per entry (not one the default map made).
    func unmapScatterList(
        _ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError)
    /// Hands mapped memory to the CPU (`sync_single_for_cpu`): after it the CPU sees what the
    /// device wrote. Obligation: copy a bounce buffer back for `DMA_FROM_DEVICE` and
    /// `DMA_BIDIRECTIONAL`; nothing to do for ops that map memory in place.
    func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError)
    /// Hands mapped memory to the device (`sync_single_for_device`): after it the device sees what
    /// the CPU wrote. Obligation: copy into a bounce buffer for `DMA_TO_DEVICE` and
    /// `DMA_BIDIRECTIONAL`; nothing to do for ops that map memory in place.
    func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice)
        throws(DMAError)
    /// Syncs every segment of a mapped scatter-list for the CPU (`sync_sg_for_cpu`); the default
    /// calls ``syncForCPU(_:length:direction:device:)`` for every segment that is not a bus address.
    func syncScatterListForCPU(_ table: DMAScatterTable, direction: DMADirection, device: DMADevice) throws(DMAError)
    /// Syncs every segment of a mapped scatter-list for the device (`sync_sg_for_device`); the
    /// default calls ``syncForDevice(_:length:direction:device:)`` for every segment that is not a
    /// bus address.
    func syncScatterListForDevice(_ table: DMAScatterTable, direction: DMADirection, device: DMADevice)
        throws(DMAError)
    /// How the device's address `address` reaches physical memory: through an IOMMU page table, by
    /// subtracting the bus offset, or whatever the ops set up. The simulated DMA engine calls it
    /// for every page a device touches (bus-address P2P windows excepted: the switch routes those).
    ///
    /// Obligation: answer only for addresses the ops handed out and still hold, and only for the
    /// access the mapping's direction allows where the ops can tell.
    /// - Throws: `DMAError/Code/iommuFault` (`EFAULT`) for an address that is not mapped or not
    ///   mapped for this access.
    func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress

    /// Reserves one IOVA range for the two-step API (`dma_iova_try_alloc`), or answers `nil` when
    /// the device does not use an IOMMU, so that the caller falls back to per-range mapping. The
    /// default answers `nil`.
    func iovaTryAlloc(_ physical: PhysicalAddress, size: UInt64, device: DMADevice) throws(DMAError) -> DMAIOVAState?
    /// Links a physical range at `offset` into a reserved range (`dma_iova_link`). The kernel does
    /// not check the direction here (no `BUG_ON`): a link made with `DMA_NONE` gives the device no
    /// access, which an x86 IOMMU refuses with `EINVAL`, so ops that implement it must refuse it too.
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

    public func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAScatterTable
    {
        try mapScatterListEntries(list, direction: direction, attributes: attributes, device: device)
    }

    public func unmapScatterList(
        _ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        let kind = table.p2pMapType == .throughHostBridge ? attributes.union(.mmio) : attributes
        try unmapScatterListSegments(table, direction: direction, attributes: kind, device: device)
    }

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

    /// The P2P check every scatter-list map runs first, as the P2P state machine does
    /// (`pci_p2pdma_state`, `kernel/dma/direct.c` and `drivers/iommu/dma-iommu.c`): for a P2P list,
    /// ops that support P2P and a topology that gives a route. (The direction is the DMA API's to
    /// check, before the ops are reached.)
    /// - Returns: the P2P map type, or `nil` for host memory.
    /// - Throws: `EREMOTEIO` when P2P is impossible.
    public func checkScatterList(_ list: ScatterList, device: DMADevice) throws(DMAError) -> P2PMapType? {
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

    /// The default scatter-list map, for ops that map entry by entry (`dma_direct_map_sg`,
    /// `kernel/dma/direct.c`): ``checkScatterList(_:device:)``; for a bus-address P2P list every
    /// segment is the provider's bus address, marked, and no ops call is made
    /// (``DMAScatterTable/busAddresses(_:provider:)``); otherwise one
    /// ``mapPhys(_:direction:attributes:device:)`` per entry, with `DMA_ATTR_MMIO` added for a P2P
    /// list through the host bridge (its entries are BAR pages).
    /// - Throws: `EREMOTEIO` from the P2P check; when an entry fails, what was mapped is unmapped
    ///   without a CPU sync and the list fails as `dma_direct_map_sg` fails it:
    ///   `DMAError/Code/mapFailed` with `EIO`, the entry's own error as its cause.
    public func mapScatterListEntries(
        _ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) -> DMAScatterTable {
        let type = try checkScatterList(list, device: device)
        if type == .busAddress, let provider = list.provider { return .busAddresses(list, provider: provider) }
        let kind = type == .throughHostBridge ? attributes.union(.mmio) : attributes
        return try mapEachEntry(list, p2pMapType: type, direction: direction, attributes: kind, device: device) {
            (range) throws(DMAError) in try mapPhys(range, direction: direction, attributes: kind, device: device)
        }
    }

    /// Maps every entry of `list` with `map`, one segment per entry; when an entry fails, unmaps
    /// the ones before it with ``unmapPhys(_:length:direction:attributes:device:)`` and
    /// `DMA_ATTR_SKIP_CPU_SYNC`, and throws `DMAError/Code/mapFailed` (`EIO`) with the entry's
    /// error as cause (`dma_direct_map_sg`'s `out_unmap`).
    public func mapEachEntry(
        _ list: ScatterList, p2pMapType: P2PMapType?, direction: DMADirection, attributes: DMAAttributes,
        device: DMADevice, map: (PhysicalRange) throws(DMAError) -> DMAAddress
    ) throws(DMAError) -> DMAScatterTable {
        var segments: [DMASegment] = []
        segments.reserveCapacity(list.count)
        for range in list {
            do {
                segments.append(DMASegment(address: try map(range), length: range.length))
            } catch {
                for segment in segments {
                    try? unmapPhys(
                        segment.address, length: segment.length, direction: direction, attributes: attributes.union(.skipCPUSync),
                        device: device)
                }
                throw DMAError(.mapFailed, .EIO, "segment \(segments.count) of \(list.count): \(error.message)", cause: error)
            }
        }
        return DMAScatterTable(list: list, segments: segments, p2pMapType: p2pMapType)
    }

    /// The default scatter-list unmap (`dma_direct_unmap_sg`): every segment that is not a bus
    /// address is unmapped with ``unmapPhys(_:length:direction:attributes:device:)`` and
    /// `attributes`; all are tried, the first error is thrown.
    /// - Throws: `DMAError/Code/notMapped` (`EINVAL`) for a table that does not hold one segment
    ///   per entry; the first error of an unmap.
    public func unmapScatterListSegments(
        _ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        guard table.segments.count == table.list.count else {
            throw DMAError(
                .notMapped, .EINVAL,
                "\(name) maps one segment per entry: the table has \(table.segments.count) segments for \(table.list.count) entries")
        }
        var firstError: DMAError?
        for segment in table.segments where !segment.isBusAddress {
            do {
                try unmapPhys(segment.address, length: segment.length, direction: direction, attributes: attributes, device: device)
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
    }
}

extension DMAScatterTable {
    /// A bus-address P2P list as every P2P-capable ops maps it (`pci_p2pdma_bus_addr_map`): each
    /// segment is the entry's physical address plus the provider's bus offset, marked
    /// (`sg_dma_mark_bus_address`), one array filled in place with no ops call.
    public static func busAddresses(_ list: ScatterList, provider: P2PProvider) -> DMAScatterTable {
        let ranges = list.ranges.ranges
        let busOffset = provider.busOffset
        let segments = [DMASegment](unsafeUninitializedCapacity: ranges.count) { buffer, count in
            for (i, range) in ranges.enumerated() {
                buffer.initializeElement(
                    at: i, to: DMASegment(address: DMAAddress(range.start.rawValue &+ busOffset), length: range.length, isBusAddress: true))
            }
            count = ranges.count
        }
        return DMAScatterTable(list: list, segments: segments, p2pMapType: .busAddress)
    }
}

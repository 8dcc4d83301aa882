import DMACore
import Synchronization

/// An IOMMU translation domain: an IOVA allocator and a page table, shared by the devices attached
/// to it (`struct iommu_domain` with its `iova_domain`, `drivers/iommu/iova.c` and
/// `drivers/iommu/dma-iommu.c`).
///
/// The rules modelled:
/// - IOVAs are allocated top-down below the device's limit, size-aligned to the next power of two
///   of the allocation (`alloc_iova` with `size_aligned`: `align_mask = ~0 << fls_long(size - 1)`),
///   and allocations below 32 granules are first rounded up to a power of two (`alloc_iova_fast`);
/// - a device is first given an address below 4 GiB, and only when that space is exhausted does it
///   get full-width addresses from then on (`iommu_dma_alloc_iova`, `pci_32bit_workaround`);
/// - the page table is page-granular with read/write/MMIO permissions (`dma_info_to_prot`), and a
///   device access without a present, permitted, synced entry is a fault that is recorded.
/// - IOVA 0 is never handed out (the domain starts at pfn 1, as `init_iova_domain` is called);
/// - reserved regions are never handed out (`iova_reserve_iommu_regions` and
///   `iova_reserve_pci_windows` in `drivers/iommu/dma-iommu.c` call `reserve_iova` for them when
///   the domain is set up): the IOMMU's MSI window (0xfee00000–0xfeefffff on x86, reported as
///   `IOMMU_RESV_MSI` by the Intel and AMD drivers) and the host bridge's memory windows, so an
///   IOVA never aliases a bus address a peer would decode.
public final class IOMMUDomain: Sendable {
    /// A range of IOVA space the allocator never hands out (`struct iommu_resv_region`, or a PCI
    /// host bridge window reserved by `iova_reserve_pci_windows`).
    public struct ReservedRegion: Hashable, Sendable, CustomStringConvertible {
        /// What the region is, for messages (`"MSI"`, `"PCI window 0000:03:00.0 BAR0"`).
        public let name: String
        /// The first reserved IOVA.
        public let start: DMAAddress
        /// The number of bytes reserved.
        public let length: UInt64

        /// A region of `length` bytes at `start`.
        /// - Throws: `EINVAL` for an empty region or one that passes 2^64 − 1.
        public init(name: String, start: DMAAddress, length: UInt64) throws(DMAError) {
            guard length > 0, start.rawValue <= UInt64.max - (length - 1) else {
                throw DMAError(.invalidArgument, .EINVAL, "reserved IOVA region \(name): \(length) bytes at \(start) is empty or passes 2^64 − 1")
            }
            self.name = name
            self.start = start
            self.length = length
        }

        /// The x86 interrupt window, which every Intel and AMD IOMMU reports as `IOMMU_RESV_MSI`
        /// (`IOAPIC_RANGE_START`–`IOAPIC_RANGE_END` in `drivers/iommu/intel/iommu.c`,
        /// `MSI_RANGE_START`–`MSI_RANGE_END` in `drivers/iommu/amd/iommu.c`): 0xfee00000–0xfeefffff.
        public static let x86MSI = try! ReservedRegion(name: "MSI", start: 0xfee0_0000, length: 0x10_0000)

        /// The last reserved IOVA.
        public var end: UInt64 { start.rawValue + (length - 1) }
        public var description: String { "\(name) \(start)-\(hex(end))" }
    }


    /// Page permissions (`IOMMU_READ`, `IOMMU_WRITE`, `IOMMU_MMIO`).
    public struct Protection: OptionSet, Hashable, Sendable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The device may read.
        public static let read = Protection(rawValue: 1)
        /// The device may write.
        public static let write = Protection(rawValue: 2)
        /// The page is MMIO (a BAR reached through the host bridge).
        public static let mmio = Protection(rawValue: 4)

        /// `dma_info_to_prot`: the direction gives read and/or write; `DMA_ATTR_MMIO` adds MMIO.
        public init(direction: DMADirection, attributes: DMAAttributes) {
            var prot: Protection = []
            if direction.deviceReads { prot.insert(.read) }
            if direction.deviceWrites { prot.insert(.write) }
            if attributes.contains(.mmio) { prot.insert(.mmio) }
            self = prot
        }
    }

    /// A device access the IOMMU refused, as a real IOMMU logs a DMAR fault.
    public struct Fault: Hashable, Sendable, CustomStringConvertible {
        /// The device that made the access.
        public let device: String
        /// The IOVA it used.
        public let address: DMAAddress
        /// Read or write.
        public let access: DMAAccess
        /// Why it faulted.
        public let reason: String
        public var description: String { "DMAR fault: \(device) \(access) at \(address): \(reason)" }
    }

    private struct Extent: Hashable {
        var start: UInt64  // pfn
        var pages: UInt64
        var reserved = false  // a reserve_iova range: never freed, never an allocation
        var end: UInt64 { start + pages - 1 }
    }

    private struct State {
        var extents: [Extent] = []  // sorted by start
        var table = IOPageTable()
        var faults: [Fault] = []
        var fullWidth: Set<String> = []  // devices whose 32-bit-first workaround is off
        var reservedExtents = 0
        var reserved: [ReservedRegion] = []
    }

    /// The domain's name, for traces.
    public let name: String
    /// The last IOVA the domain can translate (`geometry.aperture_end`).
    public let apertureEnd: UInt64
    /// Whether devices are first given addresses below 4 GiB (`pci_32bit_workaround`, on unless
    /// `iommu.forcedac=1`).
    public let tryBelow4GiBFirst: Bool
    private let state = ModelMutex(State())

    /// The IOMMU page size and IOVA granule: 4 KiB.
    public static let granule: UInt64 = pageSize

    /// Creates a domain.
    /// - Note: About the arguments:
    ///   - apertureEnd: the last translatable IOVA; 48 bits by default. A small aperture makes
    ///     exhaustion easy to test.
    ///   - reserved: the regions the allocator skips (``ReservedRegion/x86MSI`` unless given);
    ///     add a host bridge's windows with ``reserve(_:)``.
    /// - Throws: `EINVAL` when the aperture holds no page above IOVA 0.
    public init(
        name: String = "iommu", apertureEnd: UInt64 = 0xffff_ffff_ffff, tryBelow4GiBFirst: Bool = true,
        reserved: [ReservedRegion] = [.x86MSI]
    ) throws(DMAError) {
        guard apertureEnd >= 2 * Self.granule - 1 else {
            throw DMAError(.invalidArgument, .EINVAL, "IOMMU aperture ending at \(hex(apertureEnd)) has no usable page")
        }
        self.name = name
        self.apertureEnd = apertureEnd
        self.tryBelow4GiBFirst = tryBelow4GiBFirst
        for region in reserved { try reserve(region) }
    }

    /// Takes `region` out of the allocator (`reserve_iova`), as the domain's setup does for the
    /// IOMMU's reserved regions and the host bridge's windows. The part beyond the aperture is
    /// ignored; overlapping reservations merge.
    /// - Throws: `DMAError/Code/alreadyExists` (`EEXIST`) when a live allocation overlaps it (the
    ///   kernel reserves before the first mapping).
    public func reserve(_ region: ReservedRegion) throws(DMAError) {
        try state.withLock { (state) throws(DMAError) in
            state.reserved.append(region)
            var first = region.start.rawValue / Self.granule
            var last = min(region.end, apertureEnd) / Self.granule
            guard first <= last else { return }
            first = max(first, 1)
            var index = Self.firstIndex(startingAfter: last, state.extents)
            while index > 0, state.extents[index - 1].end >= first {
                let extent = state.extents[index - 1]
                guard extent.reserved else {
                    throw DMAError(
                        .alreadyExists, .EEXIST,
                        "IOMMU domain \(name): reserved region \(region) overlaps the live IOVA allocation at \(hex(extent.start * Self.granule))")
                }
                first = min(first, extent.start)
                last = max(last, extent.end)
                state.extents.remove(at: index - 1)
                state.reservedExtents -= 1
                index -= 1
            }
            Self.insert(&state.extents, Extent(start: first, pages: last - first + 1, reserved: true))
            state.reservedExtents += 1
        }
    }

    /// The regions reserved so far, in the order they were reserved.
    public var reservedRegions: [ReservedRegion] { state.withLock { $0.reserved } }

    // MARK: IOVA allocation

    /// Allocates `pages` IOVA pages below `limit` (the device's mask) for `device`
    /// (`iommu_dma_alloc_iova`).
    /// - Returns: the first IOVA (page-aligned).
    /// - Throws: `DMAError/Code/resourceExhausted` (`ENOMEM`) when no gap fits.
    public func allocateIOVA(pages: UInt64, limit: UInt64, device: String) throws(DMAError) -> DMAAddress {
        guard pages > 0 else { throw DMAError(.invalidArgument, .EINVAL, "an IOVA allocation of 0 pages") }
        // alloc_iova_fast: small sizes are rounded up to a power of two for the range caches.
        let size = pages < 32 ? Self.roundUpPowerOfTwo(pages) : pages
        return try state.withLock { (state) throws(DMAError) -> DMAAddress in
            let limit = min(limit, apertureEnd)
            if tryBelow4GiBFirst, limit > 0xffff_ffff, !state.fullWidth.contains(device) {
                if let pfn = Self.findGap(state.extents, size: size, limitPfn: 0xffff_ffff / Self.granule) {
                    Self.insert(&state.extents, Extent(start: pfn, pages: size))
                    return DMAAddress(pfn * Self.granule)
                }
                state.fullWidth.insert(device)  // "Using 64-bit DMA addresses" from now on
            }
            guard let pfn = Self.findGap(state.extents, size: size, limitPfn: limit / Self.granule) else {
                throw DMAError(
                    .resourceExhausted, .ENOMEM,
                    "IOMMU domain \(name): no free IOVA range of \(formatBytes(size * Self.granule)) below \(hex(limit))")
            }
            Self.insert(&state.extents, Extent(start: pfn, pages: size))
            return DMAAddress(pfn * Self.granule)
        }
    }

    /// Frees the IOVA allocation that holds `address` (`free_iova_fast` finds it by pfn).
    /// - Throws: `DMAError/Code/notMapped` (`EINVAL`) when no allocation holds it.
    public func freeIOVA(_ address: DMAAddress) throws(DMAError) {
        try state.withLock { (state) throws(DMAError) in
            let pfn = address.rawValue / Self.granule
            guard let index = Self.extentIndex(containing: pfn, state.extents), !state.extents[index].reserved else {
                throw DMAError(.notMapped, .EINVAL, "IOMMU domain \(name): \(address) is not an allocated IOVA")
            }
            state.extents.remove(at: index)
        }
    }

    /// The allocated IOVA range that holds `address`, if any: (first IOVA, bytes).
    public func iovaAllocation(containing address: DMAAddress) -> (start: DMAAddress, length: UInt64)? {
        state.withLock { state in
            let pfn = address.rawValue / Self.granule
            guard let index = Self.extentIndex(containing: pfn, state.extents), !state.extents[index].reserved else { return nil }
            let extent = state.extents[index]
            return (DMAAddress(extent.start * Self.granule), extent.pages * Self.granule)
        }
    }

    private static func roundUpPowerOfTwo(_ value: UInt64) -> UInt64 {
        value <= 1 ? 1 : UInt64(1) << UInt64(64 - (value - 1).leadingZeroBitCount)
    }

    /// Top-down search for `size` pfns, size-aligned, at or below `limitPfn`, at or above pfn 1.
    private static func findGap(_ extents: [Extent], size: UInt64, limitPfn: UInt64) -> UInt64? {
        let alignment = roundUpPowerOfTwo(size)
        var high = limitPfn + 1  // exclusive
        func fits(_ low: UInt64) -> UInt64? {
            guard high >= size else { return nil }
            let candidate = (high - size) & ~(alignment - 1)
            return candidate >= low ? candidate : nil
        }
        for extent in extents.reversed() {
            if extent.start >= high { continue }
            if extent.end >= high {
                high = extent.start
                continue
            }
            if let found = fits(extent.end + 1) { return found }
            high = extent.start
        }
        return fits(1)
    }

    /// The index of the first extent that starts after `pfn` (the package's one binary search;
    /// extents are sorted by start).
    private static func firstIndex(startingAfter pfn: UInt64, _ extents: [Extent]) -> Int {
        extents.partitioningIndex { $0.start > pfn }
    }

    /// The index of the extent that holds `pfn`, if any.
    private static func extentIndex(containing pfn: UInt64, _ extents: [Extent]) -> Int? {
        let after = firstIndex(startingAfter: pfn, extents)
        return after > 0 && extents[after - 1].end >= pfn ? after - 1 : nil
    }

    private static func insert(_ extents: inout [Extent], _ extent: Extent) {
        extents.insert(extent, at: firstIndex(startingAfter: extent.start, extents))
    }

    // MARK: Page table

    /// One contiguous piece of a ``map(_:protection:synced:)`` call: `length` bytes (page
    /// multiples) at page-aligned `iova` to page-aligned `physical`.
    public struct Run: Hashable, Sendable {
        /// The first IOVA.
        public var iova: DMAAddress
        /// The first physical address.
        public var physical: PhysicalAddress
        /// The bytes mapped, a multiple of the granule.
        public var length: UInt64

        /// Creates a run.
        public init(iova: DMAAddress, physical: PhysicalAddress, length: UInt64) {
            self.iova = iova
            self.physical = physical
            self.length = length
        }
    }

    /// Maps `length` bytes (page multiples) at page-aligned `iova` to `physical` (`iommu_map`).
    /// - Note: `synced`: `false` for `iommu_map_nosync` (the two-step API's links), which the
    ///   device cannot use until ``sync(_:length:)``.
    /// - Throws: `EINVAL` for unaligned arguments; `EEXIST` when a page is already mapped (nothing
    ///   is mapped then).
    public func map(_ iova: DMAAddress, physical: PhysicalAddress, length: UInt64, protection: Protection, synced: Bool = true)
        throws(DMAError)
    {
        try map([Run(iova: iova, physical: physical, length: length)], protection: protection, synced: synced)
    }

    /// Maps several runs with one protection in one call (`iommu_map_sg`, which `iommu_dma_map_sg`
    /// uses to map a whole scatter-list into its one IOVA range): all or nothing.
    /// - Throws: `EINVAL` for a run that is not page-aligned, or a protection that gives the device
    ///   neither read nor write (a `DMA_NONE` link: x86 IOMMUs refuse such a mapping,
    ///   `__domain_mapping` in `drivers/iommu/intel/iommu.c`); `EEXIST` when a page of any run is
    ///   already mapped, or when two runs overlap. Nothing is mapped when it throws.
    public func map(_ runs: [Run], protection: Protection, synced: Bool = true) throws(DMAError) {
        guard !protection.isDisjoint(with: [.read, .write]) else {
            throw DMAError(.invalidArgument, .EINVAL, "iommu_map in domain \(name) with no read or write permission (a DMA_NONE mapping)")
        }
        for (index, run) in runs.enumerated() {
            guard run.iova.rawValue % Self.granule == 0, run.physical.isPageAligned, run.length > 0, run.length % Self.granule == 0,
                run.iova.rawValue <= UInt64.max - run.length + 1
            else {
                throw DMAError(
                    .invalidArgument, .EINVAL,
                    "iommu_map of \(run.length) bytes at \(run.iova) → \(run.physical) is not page-aligned" + Self.place(index, runs.count))
            }
        }
        try state.withLock { (state) throws(DMAError) in
            var mapped = 0
            for (index, run) in runs.enumerated() {
                let first = run.iova.rawValue / Self.granule
                let count = run.length / Self.granule
                if let taken = state.table.firstPresent(first, count: count) {
                    for undo in runs.prefix(mapped) { state.table.clear(undo.iova.rawValue / Self.granule, count: undo.length / Self.granule) }
                    throw DMAError(
                        .alreadyExists, .EEXIST,
                        "IOMMU domain \(name): IOVA \(hex(taken * Self.granule)) is already mapped" + Self.place(index, runs.count))
                }
                state.table.set(first, count: count, physicalPage: run.physical.rawValue, protection: protection, synced: synced)
                mapped += 1
            }
        }
    }

    private static func place(_ index: Int, _ count: Int) -> String { count > 1 ? " (run \(index) of \(count))" : "" }

    /// Makes mapped pages usable by devices (`iommu_sync_map`, the IOTLB sync of `dma_iova_sync`).
    public func sync(_ iova: DMAAddress, length: UInt64) {
        state.withLock { state in
            let first = iova.rawValue / Self.granule
            let last = (iova.rawValue + max(length, 1) - 1) / Self.granule
            state.table.markSynced(first, count: last - first + 1)
        }
    }

    /// Unmaps the pages of `length` bytes at page-aligned `iova` (`iommu_unmap`).
    /// - Returns: the number of bytes that were mapped and are now unmapped.
    @discardableResult
    public func unmap(_ iova: DMAAddress, length: UInt64) -> UInt64 {
        state.withLock { state in
            let first = iova.rawValue / Self.granule
            let count = (length + Self.granule - 1) / Self.granule
            return UInt64(state.table.clear(first, count: count)) * Self.granule
        }
    }

    /// What a device access at `iova` reaches (`iommu_iova_to_phys` plus the permission check).
    /// - Throws: `DMAError/Code/iommuFault` (`EFAULT`), and records a ``Fault``, when the page is
    ///   not mapped, not yet synced, or mapped without the permission the access needs.
    public func translate(_ iova: DMAAddress, access: DMAAccess, device: String) throws(DMAError) -> PhysicalAddress {
        try state.withLock { (state) throws(DMAError) -> PhysicalAddress in
            let reason: String
            if let entry = state.table.entry(iova.rawValue / Self.granule) {
                if !entry.isSynced {
                    reason = "mapped but not yet synced to the IOTLB (dma_iova_sync missing)"
                } else if access == .read && !entry.protection.contains(.read) {
                    reason = "page is not readable by the device (mapped DMA_FROM_DEVICE)"
                } else if access == .write && !entry.protection.contains(.write) {
                    reason = "page is not writable by the device (mapped DMA_TO_DEVICE)"
                } else {
                    return PhysicalAddress(entry.physicalPage + (iova.rawValue % Self.granule))
                }
            } else {
                reason = "no translation (never mapped, or already unmapped)"
            }
            let fault = Fault(device: device, address: iova, access: access, reason: reason)
            state.faults.append(fault)
            throw DMAError(.iommuFault, .EFAULT, fault.description)
        }
    }

    /// The permissions of the page that holds `iova`, or `nil` when it is not mapped.
    public func protection(at iova: DMAAddress) -> Protection? {
        state.withLock { $0.table.entry(iova.rawValue / Self.granule)?.protection }
    }

    /// Every fault recorded so far, oldest first.
    public var faults: [Fault] { state.withLock { $0.faults } }
    /// The number of live IOVA allocations.
    public var liveAllocations: Int { state.withLock { $0.extents.count - $0.reservedExtents } }
    /// The number of mapped pages.
    public var mappedPages: Int { state.withLock { $0.table.presentCount } }
    /// The number of last-level page tables allocated (each maps 2 MiB of IOVA; a table is freed
    /// when its last page is unmapped).
    public var pageTables: Int { state.withLock { $0.table.tableCount } }
}

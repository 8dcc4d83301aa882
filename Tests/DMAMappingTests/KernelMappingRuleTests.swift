import DMACore
import DMAMapping
import Testing

/// Host-bridge P2P in scatter-lists, mapped as `kernel/dma/direct.c` (`dma_direct_map_sg` →
/// `dma_direct_map_phys`, `kernel/dma/direct.h`) and `drivers/iommu/dma-iommu.c`
/// (`iommu_dma_map_sg`) map it: the physical path of a page, not MMIO.
@Suite("Host-bridge P2P scatter-lists take the page path (direct.c, dma-iommu.c; 6.18 for bouncing)")
struct HostBridgeScatterListTests {
    /// direct.c: the entry falls through to `dma_direct_map_phys` with the list's attributes, so
    /// `phys_to_dma` adds the bus offset (MMIO would be used at its physical address as is).
    @Test("Direct: bus offset applied, not DMA_ATTR_MMIO; the device reaches the BAR through it")
    func directBusOffset() throws {
        let machine = try Machine()
        let offset: UInt64 = 0x1000_0000_0000
        let device = try machine.device(DirectDMAOps(), topology: .throughHostBridge, dmaOffset: offset)
        let range = try machine.vramRange(offset: 0x3000, length: 0x2000)
        let table = try device.mapScatterList(try ScatterList.peerToPeer([range], provider: machine.vram), direction: .fromDevice)
        #expect(table.p2pMapType == .throughHostBridge)
        #expect(table.segments == [DMASegment(address: DMAAddress(range.start.rawValue + offset), length: 0x2000)])
        try device.dmaWrite([4, 2], at: table.segments[0].address)
        #expect(try machine.memory.read(range.start, count: 2) == [4, 2])
        try device.unmapScatterList(table, direction: .fromDevice)
        #expect(device.debug.reports.isEmpty && device.debug.liveEntries.isEmpty)
    }

    /// direct.h: a P2P page has a `struct page`, so from 6.18 (`dma_direct_map_phys`) it is
    /// bounced like RAM when the device cannot reach it; before 6.18 `dma_direct_map_page`
    /// answered `DMA_MAPPING_ERROR` for `is_pci_p2pdma_page`, and the list failed with EIO.
    @Test(
        "Direct, 32-bit device, BAR above 4 GiB: bounced from 6.18, refused (EIO) before",
        arguments: [("6.12", false), ("6.17", false), ("6.18", true), ("7.1", true)])
    func directBounce(kernel: String, bounced: Bool) throws {
        let machine = try Machine()
        let device = try machine.device(
            DirectDMAOps(), mask: 32, pool: true, topology: .throughHostBridge, kernel: try KernelRules(parsing: kernel))
        let range = try machine.vramRange(offset: 0, length: 0x1000)
        try machine.memory.write(pattern(7, 4096), at: range.start)
        let list = try ScatterList.peerToPeer([range], provider: machine.vram)
        guard bounced else {
            let error = #expect(throws: DMAError.self) { try device.mapScatterList(list, direction: .toDevice) }
            #expect(error?.errno == .EIO)
            #expect(error?.cause?.message.contains("before 6.18") == true)
            #expect(device.swiotlb!.usage.used == 0)
            return
        }
        let table = try device.mapScatterList(list, direction: .toDevice)
        let address = table.segments[0].address
        #expect(device.swiotlb!.contains(PhysicalAddress(address.rawValue)))
        #expect(try device.dmaRead(at: address, count: 4096) == pattern(7, 4096))
        try device.unmapScatterList(table, direction: .toDevice)
        #expect(device.swiotlb!.usage.used == 0)
    }

    /// dma-iommu.c: "Mapping through host bridge should be mapped with regular IOVAs": the list's
    /// protection from `dma_info_to_prot`, no `IOMMU_MMIO`.
    @Test("IOMMU: regular IOVAs with the list's protection, no IOMMU_MMIO", arguments: [DMADirection.toDevice, .fromDevice, .bidirectional])
    func iommuProtection(direction: DMADirection) throws {
        let machine = try Machine()
        let domain = try IOMMUDomain()
        let device = try machine.device(IOMMUDMAOps(), iommu: domain, topology: .throughHostBridge)
        let list = try ScatterList.peerToPeer(
            [try machine.vramRange(offset: 0, length: 0x1000), try machine.vramRange(offset: 0x8000, length: 0x1000)],
            provider: machine.vram)
        let table = try device.mapScatterList(list, direction: direction)
        #expect(table.segments.count == 1 && !table.segments[0].isBusAddress)
        let expected = IOMMUDomain.Protection(direction: direction, attributes: [])
        for page in 0..<2 {
            #expect(domain.protection(at: try table.segments[0].address.advanced(by: UInt64(page) * 0x1000)) == expected)
        }
        try device.unmapScatterList(table, direction: direction)
        #expect(domain.mappedPages == 0 && domain.liveAllocations == 0)
    }
}

/// `pci_p2pdma_map_type` (`drivers/pci/p2pdma.c`) reads the topology alone; ops that cannot carry
/// P2P refuse at map time.
@Suite("The P2P map type is the topology's alone (drivers/pci/p2pdma.c)")
struct MapTypeTests {
    @Test(
        "A device whose ops cannot carry P2P still gets the topology's map type; its map refuses with EREMOTEIO",
        arguments: [P2PMapType.busAddress, .throughHostBridge, .notSupported])
    func topologyAlone(type: P2PMapType) throws {
        let machine = try Machine()
        let device = try machine.device(VirtDMAOps(), name: "0000:07:00.0", topology: type)
        #expect(device.p2pMapType(to: machine.vram) == type)
        let list = try ScatterList.peerToPeer([try machine.vramRange(offset: 0, length: 0x1000)], provider: machine.vram)
        let error = #expect(throws: DMAError.self) { try device.mapScatterList(list, direction: .toDevice) }
        #expect(error?.errno == .EREMOTEIO)
        #expect(error?.code == .peerToPeerNotSupported)
        #expect(device.debug.liveEntries.isEmpty)
    }

    @Test("Without a topology nothing is reachable peer-to-peer")
    func noTopology() throws {
        let machine = try Machine()
        let device = try DMADevice(name: "0000:04:00.0", memory: machine.memory, ops: DirectDMAOps())
        #expect(device.p2pMapType(to: machine.vram) == .notSupported)
    }
}

/// Mapping constraints: `kernel/dma/swiotlb.c` (segment boundary), `drivers/iommu/dma-iommu.c`
/// with `drivers/iommu/iova.c` (reserved regions, `min_align_mask`).
@Suite("Mapping constraints the kernel honours (swiotlb.c, dma-iommu.c, iova.c)")
struct MappingConstraintTests {
    /// swiotlb.c `swiotlb_search_pool_area`: `iommu_is_span_boundary` skips a run of slots that
    /// would cross the device's segment boundary.
    @Test("swiotlb: a bounce buffer never crosses the device's segment boundary")
    func swiotlbBoundary() throws {
        let machine = try Machine()
        let pool = try SwiotlbPool(memory: machine.memory, slotCount: 128)
        let buffer = try machine.memory.allocate(length: 48 << 10)
        let boundary: UInt64 = 0xffff  // 64 KiB
        let first = try pool.map(buffer, minAlignMask: 0, segmentBoundaryMask: boundary)
        let second = try pool.map(buffer, minAlignMask: 0, segmentBoundaryMask: boundary)
        for slot in [first, second] {
            #expect(slot.rawValue & ~boundary == (slot.rawValue + (48 << 10) - 1) & ~boundary, "\(slot) crosses 64 KiB")
        }
        // Without the boundary the second one would have followed the first directly.
        #expect(second.rawValue - first.rawValue == 64 << 10)
        let unbounded = try SwiotlbPool(memory: machine.memory, slotCount: 128)
        let a = try unbounded.map(buffer, minAlignMask: 0)
        let b = try unbounded.map(buffer, minAlignMask: 0)
        #expect(b.rawValue - a.rawValue == 48 << 10)
        // A run longer than the boundary can never be placed: the pool is "full".
        let big = try machine.memory.allocate(length: 96 << 10)
        let error = #expect(throws: DMAError.self) { try pool.map(big, minAlignMask: 0, segmentBoundaryMask: boundary) }
        #expect(error?.errno == .ENOMEM)
    }

    @Test("swiotlb through the direct ops uses the device's boundary and bus offset")
    func swiotlbBoundaryThroughDevice() throws {
        let machine = try Machine()
        let device = try machine.device(DirectDMAOps.swiotlb, pool: true, segmentBoundaryMask: 0xffff)
        let buffer = try machine.memory.allocate(length: 40 << 10)
        var addresses: [DMAAddress] = []
        for _ in 0..<3 {
            let address = try device.mapPhys(buffer, direction: .toDevice)
            device.debug.mappingError(address, device: device)
            #expect(address.rawValue & ~0xffff == (address.rawValue + (40 << 10) - 1) & ~0xffff)
            addresses.append(address)
        }
        for address in addresses { try device.unmapPhys(address, length: 40 << 10, direction: .toDevice) }
        #expect(device.debug.reports.isEmpty)
    }

    /// dma-iommu.c `iova_reserve_iommu_regions`: the MSI window (`IOMMU_RESV_MSI`) is reserved.
    @Test("The IOVA allocator never hands out the x86 MSI window")
    func msiReserved() throws {
        // An aperture that ends inside the MSI window: below 4 GiB only 0xfee00000 and lower exist.
        let domain = try IOMMUDomain(apertureEnd: 0xfeef_ffff, tryBelow4GiBFirst: false)
        #expect(domain.reservedRegions == [.x86MSI])
        let first = try domain.allocateIOVA(pages: 1, limit: .max, device: "a")
        #expect(first.rawValue < 0xfee0_0000)
        #expect(first.rawValue == 0xfedf_f000)
        let plain = try IOMMUDomain(apertureEnd: 0xfeef_ffff, tryBelow4GiBFirst: false, reserved: [])
        #expect(try plain.allocateIOVA(pages: 1, limit: .max, device: "a").rawValue == 0xfeef_f000)
        #expect(domain.liveAllocations == 1)
        #expect(throws: DMAError.self) { try domain.freeIOVA(0xfee0_0000) }
        try domain.freeIOVA(first)
        #expect(domain.liveAllocations == 0)
    }

    /// dma-iommu.c `iova_reserve_pci_windows`: the host bridge's memory windows are reserved, so
    /// an IOVA never equals a bus address a peer decodes.
    @Test("With the BAR windows reserved, no IOVA aliases a BAR's bus address")
    func windowsReserved() throws {
        let machine = try Machine()
        // A small aperture that holds both the BAR's bus range and a little more.
        let bar = machine.vram
        let barBus = bar.busAddress(of: bar.cpuRange.start).rawValue
        let domain = try IOMMUDomain(apertureEnd: barBus + bar.cpuRange.length + (64 << 10) - 1, tryBelow4GiBFirst: false)
        try domain.reserve(try IOMMUDomain.ReservedRegion(name: "PCI window", start: DMAAddress(barBus), length: bar.cpuRange.length))
        let device = try machine.device(IOMMUDMAOps(), iommu: domain, topology: .throughHostBridge)
        let pages = try machine.discontiguousPages(16)
        let table = try device.mapScatterList(try ScatterList.host(pages), direction: .toDevice)
        let end = barBus + bar.cpuRange.length
        for segment in table.segments {
            #expect(segment.address.rawValue >= end || segment.address.rawValue + segment.length <= barBus)
        }
        #expect(table.segments[0].address.rawValue == end)  // the 64 KiB just above the window
        // Only 64 KiB above the window is free: 32 more pages go below it, never into it.
        let more = try device.mapScatterList(try ScatterList.host(try machine.discontiguousPages(32)), direction: .toDevice)
        for segment in more.segments { #expect(segment.address.rawValue + segment.length <= barBus) }
        try device.unmapScatterList(more, direction: .toDevice)
        try device.unmapScatterList(table, direction: .toDevice)
        // A reservation over a live allocation is refused.
        let live = try domain.allocateIOVA(pages: 1, limit: .max, device: "x")
        #expect(throws: DMAError.self) { try domain.reserve(try IOMMUDomain.ReservedRegion(name: "late", start: live, length: 4096)) }
    }

    /// dma-iommu.c `__iommu_dma_map`: "Unsupported alignment constraint" when `min_align_mask`
    /// is wider than the IOVA granule.
    @Test("IOMMU: min_align_mask wider than the 4 KiB granule is refused; up to granule − 1 maps", arguments: [UInt64(0xfff), 0x1fff, 0xffff])
    func minAlignMask(mask: UInt64) throws {
        let machine = try Machine()
        let domain = try IOMMUDomain()
        let device = try machine.device(IOMMUDMAOps(), iommu: domain, minAlignMask: mask)
        let page = try machine.discontiguousPages(1)[0]
        if mask <= IOMMUDomain.granule - 1 {
            let address = try device.mapPhys(page, direction: .toDevice)
            device.debug.mappingError(address, device: device)
            try device.unmapPhys(address, length: 4096, direction: .toDevice)
        } else {
            let error = #expect(throws: DMAError.self) { try device.mapPhys(page, direction: .toDevice) }
            #expect(error?.errno == .EINVAL)
            #expect(error?.message.contains("Unsupported alignment constraint") == true)
            #expect(domain.liveAllocations == 0)
        }
    }
}

import DMACore
import DMAMapping
import Testing

@Suite("IOMMU mapping (drivers/iommu/dma-iommu.c, drivers/iommu/iova.c)")
struct IOMMUTests {
    @Test("256 discontiguous pages map to one IOVA range; device writes land in the right pages; after unmap it faults")
    func scatterListOneRange() throws {
        let machine = try Machine()
        let domain = try IOMMUDomain()
        let device = try machine.device(IOMMUDMAOps(), iommu: domain, maxSegmentSize: 1 << 20)
        let pages = try machine.discontiguousPages(256)
        let table = try device.mapScatterList(try ScatterList.host(pages), direction: .fromDevice)
        #expect(domain.liveAllocations == 1)
        #expect(domain.mappedPages == 256)
        #expect(table.segments.count == 1)
        #expect(table.segments[0].length == 256 * pageSize)
        let data = pattern(7, 256 * 4096)
        try device.dmaWrite(data, at: table.segments[0].address)
        for (i, page) in pages.enumerated() {
            #expect(try machine.memory.read(page.start, count: 4096) == Array(data[(i * 4096)..<((i + 1) * 4096)]))
        }
        try device.unmapScatterList(table, direction: .fromDevice)
        #expect(domain.liveAllocations == 0 && domain.mappedPages == 0)
        let fault = #expect(throws: DMAError.self) { try device.dmaWrite([1], at: table.segments[0].address) }
        #expect(fault?.code == .iommuFault)
        #expect(fault?.errno == .EFAULT)
        #expect(domain.faults.count == 1)
        #expect(domain.faults[0].reason.contains("no translation"))
        #expect(device.debug.reports.isEmpty)
    }

    @Test("The IOVA range is split into segments of at most max_seg_size (__finalise_sg)")
    func maxSegmentSize() throws {
        let machine = try Machine()
        let device = try machine.device(IOMMUDMAOps(), iommu: try IOMMUDomain())
        let table = try device.mapScatterList(try ScatterList.host(try machine.discontiguousPages(256)), direction: .toDevice)
        #expect(table.segments.count == 16)
        #expect(table.segments.allSatisfy { $0.length == 65536 })
        for (a, b) in zip(table.segments, table.segments.dropFirst()) {
            #expect(b.address.rawValue == a.address.rawValue + a.length)  // still one contiguous range
        }
        try device.unmapScatterList(table, direction: .toDevice)
    }

    @Test("In-page offsets are kept; an entry that ends mid-page starts a new segment")
    func offsets() throws {
        let machine = try Machine()
        let device = try machine.device(IOMMUDMAOps(), iommu: try IOMMUDomain())
        let pages = try machine.discontiguousPages(3)
        let list = try ScatterList.host([
            try pages[0].subrange(offset: 0x100, length: 0xf00),  // ends on the page end: mergeable after
            pages[1],  // starts on a page: joins the first
            try pages[2].subrange(offset: 0, length: 0x800),  // joins; ends mid-page
        ])
        let table = try device.mapScatterList(list, direction: .bidirectional)
        #expect(table.segments.count == 1)
        #expect(table.segments[0].address.rawValue % pageSize == 0x100)
        #expect(table.segments[0].length == 0xf00 + 0x1000 + 0x800)
        try device.dmaWrite([0xAB], at: table.segments[0].address)
        #expect(try machine.memory.read(try pages[0].start.advanced(by: 0x100), count: 1) == [0xAB])
        try device.unmapScatterList(table, direction: .bidirectional)

        let split = try ScatterList.host([try pages[0].subrange(offset: 0, length: 0x800), pages[1]])
        let table2 = try device.mapScatterList(split, direction: .bidirectional)
        #expect(table2.segments.count == 2)  // the first entry ends mid-page
        try device.unmapScatterList(table2, direction: .bidirectional)
    }

    @Test("Page permissions follow the direction (dma_info_to_prot): a TO_DEVICE page cannot be written")
    func permissions() throws {
        let machine = try Machine()
        let domain = try IOMMUDomain()
        let device = try machine.device(IOMMUDMAOps(), iommu: domain)
        let page = try machine.discontiguousPages(1)[0]
        let address = try device.mapPhys(page, direction: .toDevice)
        device.debug.mappingError(address, device: device)
        _ = try device.dmaRead(at: address, count: 16)
        let error = #expect(throws: DMAError.self) { try device.dmaWrite([1], at: address) }
        #expect(error?.code == .iommuFault)
        #expect(domain.faults.last?.reason.contains("not writable") == true)
        #expect(try machine.memory.read(page.start, count: 1) == [0])
        try device.unmapPhys(address, length: pageSize, direction: .toDevice)
    }

    @Test(
        "IOVAs are size-aligned to the next power of two (alloc_iova size_aligned)",
        arguments: [(UInt64(1), UInt64(1)), (3, 4), (5, 8), (31, 32), (33, 64), (40, 64), (64, 64)])
    func sizeAligned(pages: UInt64, alignment: UInt64) throws {
        let domain = try IOMMUDomain()
        _ = try domain.allocateIOVA(pages: 1, limit: UInt64.max, device: "d")
        let iova = try domain.allocateIOVA(pages: pages, limit: UInt64.max, device: "d")
        #expect(iova.rawValue % (alignment * pageSize) == 0)
        #expect(iova.rawValue < 0x1_0000_0000)  // PCI devices get a 32-bit IOVA first
        try domain.freeIOVA(iova)
        #expect(domain.liveAllocations == 1)
    }

    @Test("Allocation is top-down below the device limit, and falls back to full width once 4 GiB is used up")
    func topDownAndFallback() throws {
        let domain = try IOMMUDomain()
        let first = try domain.allocateIOVA(pages: 1, limit: UInt64.max, device: "d")
        #expect(first.rawValue == 0xffff_f000)
        let huge = try domain.allocateIOVA(pages: (1 << 20) - 1, limit: UInt64.max, device: "d")
        #expect(huge.rawValue > 0xffff_ffff)  // no room below 4 GiB for it: full width from now on
        let next = try domain.allocateIOVA(pages: 1, limit: UInt64.max, device: "d")
        #expect(next.rawValue > 0xffff_ffff)
        let other = try domain.allocateIOVA(pages: 1, limit: UInt64.max, device: "e")
        #expect(other.rawValue < 0xffff_ffff)
        #expect(try domain.allocateIOVA(pages: 1, limit: 0xf_ffff, device: "f").rawValue <= 0xf_f000)
    }

    @Test("IOVA exhaustion fails a scatter-list map with ENOMEM and leaves nothing mapped")
    func exhaustion() throws {
        let machine = try Machine()
        let domain = try IOMMUDomain(apertureEnd: 0x3f_ffff)  // 1023 usable pages
        let device = try machine.device(IOMMUDMAOps(), iommu: domain)
        let first = try device.mapScatterList(try ScatterList.host(try machine.discontiguousPages(512)), direction: .toDevice)
        let error = #expect(throws: DMAError.self) {
            try device.mapScatterList(try ScatterList.host(try machine.discontiguousPages(512)), direction: .toDevice)
        }
        #expect(error?.errno == .ENOMEM)
        #expect(error?.code == .resourceExhausted)
        #expect(domain.liveAllocations == 1 && domain.mappedPages == 512)
        try device.unmapScatterList(first, direction: .toDevice)
        #expect(domain.liveAllocations == 0 && domain.mappedPages == 0)
    }

    @Test("Bus-address P2P segments bypass the IOMMU; through the host bridge they are regular IOVAs")
    func p2p() throws {
        let machine = try Machine()
        let domain = try IOMMUDomain()
        let list = try ScatterList.peerToPeer(
            [try machine.vramRange(offset: 0, length: 0x1000), try machine.vramRange(offset: 0x4000, length: 0x1000)],
            provider: machine.vram)
        let near = try machine.device(IOMMUDMAOps(), iommu: domain)
        let bus = try near.mapScatterList(list, direction: .fromDevice)
        #expect(bus.segments.map(\.isBusAddress) == [true, true])
        #expect(domain.mappedPages == 0)
        try near.dmaWrite([5, 6], at: bus.segments[1].address)
        #expect(try machine.memory.read(try machine.vram.cpuRange.start.advanced(by: 0x4000), count: 2) == [5, 6])
        try near.unmapScatterList(bus, direction: .fromDevice)

        let farDomain = try IOMMUDomain()
        let far = try machine.device(IOMMUDMAOps(), name: "0000:81:00.0", iommu: farDomain, topology: .throughHostBridge)
        let viaHost = try far.mapScatterList(list, direction: .fromDevice)
        #expect(viaHost.p2pMapType == .throughHostBridge)
        #expect(farDomain.mappedPages == 2)
        #expect(viaHost.segments.count == 1)  // two separate BAR pages, one contiguous IOVA segment
        #expect(viaHost.segments.allSatisfy { !$0.isBusAddress && $0.address.rawValue < 0x1_0000_0000 })
        try far.dmaWrite([7], at: try viaHost.segments[0].address.advanced(by: 0x1000))
        #expect(try machine.memory.read(try machine.vram.cpuRange.start.advanced(by: 0x4000), count: 1) == [7])
        try far.unmapScatterList(viaHost, direction: .fromDevice)
        #expect(farDomain.mappedPages == 0)
    }

    @Test("Without an IOMMU domain the iommu ops refuse to map (ENODEV)")
    func noDomain() throws {
        let machine = try Machine()
        let device = try machine.device(IOMMUDMAOps())
        let error = #expect(throws: DMAError.self) { try device.mapPhys(try machine.discontiguousPages(1)[0], direction: .toDevice) }
        #expect(error?.errno == .ENODEV)
    }
}

@Suite("The two-step IOVA API (6.16, Documentation/core-api/dma-api.rst)")
struct IOVAAPITests {
    @Test("try_alloc answers no for a device without an IOMMU, so the caller maps range by range")
    func noIOMMU() throws {
        let machine = try Machine()
        for ops: any DMAOps in [DirectDMAOps(), DirectDMAOps.swiotlb, VirtDMAOps(), IOMMUDMAOps()] {
            let device = try machine.device(ops, pool: true)
            #expect(try device.ops.iovaTryAlloc(0x1000_0000, size: 4096, device: device) == nil)
        }
    }

    @Test("Reserve, link, sync, use, destroy; a link is invisible to the device until the sync")
    func lifecycle() throws {
        let machine = try Machine()
        let domain = try IOMMUDomain()
        let device = try machine.device(IOMMUDMAOps(), iommu: domain)
        let ops = device.ops
        let pages = try machine.discontiguousPages(3)
        let first = try pages[0].subrange(offset: 0x200, length: 0xe00)
        let state = try #require(try ops.iovaTryAlloc(first.start, size: 0xe00 + 0x2000, device: device))
        #expect(state.address.rawValue % pageSize == 0x200)
        try ops.iovaLink(state, physical: first.start, offset: 0, length: 0xe00, direction: .fromDevice, attributes: [], device: device)
        try ops.iovaLink(state, physical: pages[1].start, offset: 0xe00, length: 0x1000, direction: .fromDevice, attributes: [], device: device)
        try ops.iovaLink(state, physical: pages[2].start, offset: 0x1e00, length: 0x1000, direction: .fromDevice, attributes: [], device: device)
        let early = #expect(throws: DMAError.self) { try device.dmaWrite([1], at: state.address) }
        #expect(early?.message.contains("not yet synced") == true)
        try ops.iovaSync(state, offset: 0, length: state.size, device: device)
        let data = pattern(9, Int(state.size))
        try device.dmaWrite(data, at: state.address)
        #expect(try machine.memory.read(first.start, count: 0xe00) == Array(data[0..<0xe00]))
        #expect(try machine.memory.read(pages[2].start, count: 0x1000) == Array(data[0x1e00..<0x2e00]))
        try ops.iovaDestroy(state, mappedLength: state.size, direction: .fromDevice, attributes: [], device: device)
        #expect(domain.liveAllocations == 0 && domain.mappedPages == 0)
        #expect(throws: DMAError.self) { try device.dmaWrite([1], at: state.address) }
    }

    @Test("Only the first link may start inside a page (EIO); a link must fit the reservation (EINVAL)")
    func linkRules() throws {
        let machine = try Machine()
        let device = try machine.device(IOMMUDMAOps(), iommu: try IOMMUDomain())
        let ops = device.ops
        let page = try machine.discontiguousPages(2)
        let state = try #require(try ops.iovaTryAlloc(page[0].start, size: 0x2000, device: device))
        let unaligned = #expect(throws: DMAError.self) {
            try ops.iovaLink(state, physical: try page[1].start.advanced(by: 8), offset: 0x1000, length: 0x100, direction: .toDevice, attributes: [], device: device)
        }
        #expect(unaligned?.errno == .EIO)
        let tooLong = #expect(throws: DMAError.self) {
            try ops.iovaLink(state, physical: page[1].start, offset: 0x1000, length: 0x2000, direction: .toDevice, attributes: [], device: device)
        }
        #expect(tooLong?.errno == .EINVAL)
        try ops.iovaDestroy(state, mappedLength: 0, direction: .toDevice, attributes: [], device: device)
        #expect(device.iommu!.liveAllocations == 0)
    }
}

@Suite("HFI-style virt ops (dma_virt_ops, ib_uses_virt_dma)")
struct VirtTests {
    @Test("DMA address = CPU virtual address in the direct map; the software device reaches RAM through it")
    func virtualAddresses() throws {
        let machine = try Machine()
        let device = try machine.device(VirtDMAOps())
        let pages = try machine.discontiguousPages(2)
        let table = try device.mapScatterList(try ScatterList.host(pages), direction: .bidirectional)
        #expect(table.segments.map(\.address.rawValue) == pages.map { $0.start.rawValue + VirtDMAOps.pageOffset })
        try device.dmaWrite([1, 2, 3], at: table.segments[1].address)
        #expect(try machine.memory.read(pages[1].start, count: 3) == [1, 2, 3])
        try device.unmapScatterList(table, direction: .bidirectional)
        #expect(throws: DMAError.self) { try device.dmaRead(at: 0x1000, count: 1) }
    }

    @Test("Handed P2P memory or MMIO, it refuses with EREMOTEIO and never crashes")
    func refusesP2P() throws {
        let machine = try Machine()
        let device = try machine.device(VirtDMAOps())
        let bar = try machine.vramRange(offset: 0, length: 0x1000)
        let single = #expect(throws: DMAError.self) { try device.mapPhys(bar, direction: .toDevice, attributes: .mmio) }
        #expect(single?.errno == .EREMOTEIO)
        let list = #expect(throws: DMAError.self) {
            try device.mapScatterList(try ScatterList.peerToPeer([bar], provider: machine.vram), direction: .toDevice)
        }
        #expect(list?.errno == .EREMOTEIO)
        #expect(device.debug.liveEntries.isEmpty)
    }
}

@Suite("The simulated DMA engine")
struct EngineTests {
    @Test("A device cannot drive an address beyond its mask; an unbacked address is a bus error")
    func engineLimits() throws {
        let machine = try Machine()
        let device = try machine.device(DirectDMAOps(), mask: 32)
        let beyond = #expect(throws: DMAError.self) { try device.dmaRead(at: 0xffff_fff0, count: 32) }
        #expect(beyond?.errno == .EFAULT)
        let unbacked = #expect(throws: DMAError.self) { try device.dmaWrite([1], at: 0x9000_0000) }
        #expect(unbacked?.code == .busError)
        #expect(throws: DMAError.self) { try device.dmaRead(at: 0x1000_0000, count: 0) }
    }
}

@Suite("IOMMU scatter-list layout against the segment boundary (iommu_dma_map_sg)")
struct IOMMUBoundaryTests {
    @Test("An entry that would cross the device's segment boundary starts on it; the one before is padded")
    func padding() throws {
        let machine = try Machine()
        let domain = try IOMMUDomain()
        let device = try DMADevice(
            name: "0000:04:00.0", memory: machine.memory, ops: IOMMUDMAOps(), maxSegmentSize: 1 << 20,
            segmentBoundaryMask: 0xffff, iommu: domain)
        let block = try machine.memory.allocate(length: 256 << 10)
        let first = try block.subrange(offset: 0, length: 48 << 10)
        let second = try block.subrange(offset: 128 << 10, length: 48 << 10)
        let table = try device.mapScatterList(try ScatterList.host([first, second]), direction: .toDevice)
        // 48 KiB, then 16 KiB of padding so the second entry does not cross the 64 KiB boundary:
        // two segments (a join on a boundary is not merged), the second at base + 64 KiB.
        #expect(table.segments.count == 2)
        #expect(table.segments[1].address.rawValue == table.segments[0].address.rawValue + (64 << 10))
        #expect(table.segments.allSatisfy { $0.address.rawValue / 0x10000 == ($0.address.rawValue + $0.length - 1) / 0x10000 })
        #expect(domain.mappedPages == 24)  // the padding is reserved IOVA, not mapped
        try device.unmapScatterList(table, direction: .toDevice)
        #expect(domain.mappedPages == 0 && domain.liveAllocations == 0)
    }

    @Test("The page table: runs across a 2 MiB last-level table boundary translate page by page; empty tables are freed")
    func pageTableAcrossTables() throws {
        let domain = try IOMMUDomain()
        // 4 pages before a 2 MiB boundary and 4 after: two last-level tables.
        let iova = DMAAddress(0x20_0000 - 4 * IOMMUDomain.granule)
        try domain.map(iova, physical: 0x1_0000_0000, length: 8 * IOMMUDomain.granule, protection: [.read, .write])
        #expect(domain.mappedPages == 8 && domain.pageTables == 2)
        for page in 0..<UInt64(8) {
            let at = DMAAddress(iova.rawValue + page * IOMMUDomain.granule + 0x123)
            #expect(try domain.translate(at, access: .write, device: "d").rawValue == 0x1_0000_0000 + page * IOMMUDomain.granule + 0x123)
        }
        #expect(domain.unmap(iova, length: 4 * IOMMUDomain.granule) == 4 * IOMMUDomain.granule)
        #expect(domain.mappedPages == 4 && domain.pageTables == 1)  // the first table is empty and freed
        #expect(domain.unmap(iova, length: 8 * IOMMUDomain.granule) == 4 * IOMMUDomain.granule)
        #expect(domain.mappedPages == 0 && domain.pageTables == 0)
    }

    @Test("iommu_map_sg is all or nothing: a run over a mapped page maps none of the runs", arguments: [0, 1, 2])
    func batchMapAllOrNothing(_ clashing: Int) throws {
        let domain = try IOMMUDomain()
        let g = IOMMUDomain.granule
        try domain.map(DMAAddress(0x10_0000 + UInt64(clashing) * 0x1000 * g), physical: 0x9000_0000, length: g, protection: .read)
        let runs = (0..<3).map { i in
            IOMMUDomain.Run(
                iova: DMAAddress(0x10_0000 + UInt64(i) * 0x1000 * g), physical: PhysicalAddress(0x1_0000_0000 + UInt64(i) * 4 * g),
                length: 4 * g)
        }
        let error = #expect(throws: DMAError.self) { try domain.map(runs, protection: [.read, .write]) }
        #expect(error?.errno == .EEXIST)
        #expect(error?.message.contains("run \(clashing) of 3") == true)
        #expect(domain.mappedPages == 1, "pages of the runs before the clash are still mapped")
        // The page that was there keeps its translation.
        #expect(try domain.translate(DMAAddress(0x10_0000 + UInt64(clashing) * 0x1000 * g), access: .read, device: "d") == 0x9000_0000)
    }

    @Test("A run that is not page-aligned is refused with EINVAL before anything is mapped")
    func batchMapUnaligned() throws {
        let domain = try IOMMUDomain()
        let runs = [
            IOMMUDomain.Run(iova: 0x10_0000, physical: 0x1_0000_0000, length: 0x1000),
            IOMMUDomain.Run(iova: 0x20_0000, physical: 0x1_0000_0800, length: 0x1000),
        ]
        let error = #expect(throws: DMAError.self) { try domain.map(runs, protection: .read) }
        #expect(error?.errno == .EINVAL)
        #expect(domain.mappedPages == 0 && domain.pageTables == 0)
    }
}

import DMACore
import DMAMapping
import Testing

/// One test per class of `kernel/dma/debug.c` report.
/// `0x%016llx`, as debug.c prints addresses.
func kernelHex(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 16 - digits.count) + digits
}

@Suite("DMA-API debug layer (kernel/dma/debug.c)")
struct DebugLayerTests {
    struct Setup {
        let machine: Machine
        let device: DMADevice
        let page: PhysicalRange
        var debug: DMADebug { device.debug }

        init(strict: Bool = false, checkMappingErrors: Bool = true, showAllErrors: Bool = false, kernel: KernelRules = .newest) throws {
            machine = try Machine()
            device = try machine.device(
                DirectDMAOps(),
                debug: DMADebug(configuration: .init(strict: strict, checkMappingErrors: checkMappingErrors, showAllErrors: showAllErrors)),
                kernel: kernel)
            page = try machine.discontiguousPages(1)[0]
        }

        /// Maps the page and checks the result, as a careful driver does.
        func map(_ direction: DMADirection = .toDevice, attributes: DMAAttributes = []) throws -> DMAAddress {
            let address = try device.mapPhys(page, direction: direction, attributes: attributes)
            #expect(!debug.mappingError(address, device: device))
            return address
        }

        func kinds() -> [DMADebugReport.Kind] { debug.reports.map(\.kind) }
    }

    @Test("A clean map/sync/unmap cycle reports nothing")
    func clean() throws {
        let s = try Setup()
        let address = try s.map(.bidirectional)
        try s.device.syncForCPU(address, length: 4096, direction: .bidirectional)
        try s.device.syncForDevice(address, length: 4096, direction: .bidirectional)
        try s.device.unmapPhys(address, length: 4096, direction: .bidirectional)
        #expect(s.debug.reports.isEmpty)
        #expect(s.debug.deviceReleased(s.device) == nil)
    }

    @Test("Unmap of an address never mapped")
    func unmapNotMapped() throws {
        let s = try Setup()
        try s.device.unmapPhys(0x1234_5000, length: 4096, direction: .toDevice)
        #expect(s.kinds() == [.unmapNotMapped])
        #expect(s.debug.reports[0].message.contains("has not allocated"))
    }

    @Test("Unmap of DMA_MAPPING_ERROR")
    func unmapMappingError() throws {
        let s = try Setup()
        try s.device.unmapPhys(.mappingError, length: 4096, direction: .toDevice)
        #expect(s.kinds() == [.unmapMappingError])
    }

    @Test("Unmap with another size")
    func sizeMismatch() throws {
        let s = try Setup()
        try s.device.unmapPhys(try s.map(), length: 2048, direction: .toDevice)
        #expect(s.kinds() == [.sizeMismatch])
    }

    @Test("Unmap with another direction")
    func directionMismatch() throws {
        let s = try Setup()
        try s.device.unmapPhys(try s.map(.toDevice), length: 4096, direction: .fromDevice)
        #expect(s.kinds() == [.directionMismatch])
    }

    /// kernel/dma/debug.c: from 6.18 every dma_map_phys is recorded as "phy", RAM or MMIO, so a
    /// RAM mapping unmapped with DMA_ATTR_MMIO is the same function; before, dma_map_page was
    /// "single" and dma_map_resource "resource". A scatter-list unmapped singly is wrong in both.
    @Test(
        "Unmap with another function: single/resource before 6.18, one 'phy' type from 6.18; scatter-list vs single always",
        arguments: [("6.12", true), ("6.17", true), ("6.18", false), ("7.1", false)])
    func typeMismatch(kernel: String, ramVersusMMIOIsWrong: Bool) throws {
        let s = try Setup(kernel: try KernelRules(parsing: kernel))
        let address = try s.map()
        #expect(s.debug.liveEntries.map(\.type) == [ramVersusMMIOIsWrong ? .single : .phys])
        try s.device.unmapPhys(address, length: 4096, direction: .toDevice, attributes: .mmio)
        #expect(s.kinds() == (ramVersusMMIOIsWrong ? [.typeMismatch] : []))
        if ramVersusMMIOIsWrong { #expect(s.debug.reports[0].message.contains("[mapped as single] [unmapped as resource]")) }
        s.debug.clearReports()
        let table = try s.device.mapScatterList(try ScatterList.host([s.page]), direction: .toDevice)
        try s.device.unmapPhys(table.segments[0].address, length: 4096, direction: .toDevice)
        #expect(s.kinds() == [.typeMismatch])
    }

    @Test("Scatter-list unmap with another entry count")
    func entryCountMismatch() throws {
        let s = try Setup()
        let pages = try s.machine.discontiguousPages(3)
        let table = try s.device.mapScatterList(try ScatterList.host(pages), direction: .toDevice)
        var wrong = table
        wrong.list = try ScatterList.host(Array(pages.prefix(2)) + [pages[2]] + (try s.machine.discontiguousPages(1)))
        wrong.segments.append(DMASegment(address: 0x9999_0000, length: 4096))
        try s.device.unmapScatterList(wrong, direction: .toDevice)  // the debug layer observes; direct unmap has nothing to undo
        #expect(s.kinds().filter { $0 == .entryCountMismatch }.count == 3)
        #expect(s.kinds().contains(.unmapNotMapped))
    }

    @Test("A successful map whose address was never checked with dma_mapping_error")
    func unchecked() throws {
        let s = try Setup()
        let address = try s.device.mapPhys(s.page, direction: .toDevice)
        try s.device.unmapPhys(address, length: 4096, direction: .toDevice)
        #expect(s.kinds() == [.mappingErrorNotChecked])
        let relaxed = try Setup(checkMappingErrors: false)
        let other = try relaxed.device.mapPhys(relaxed.page, direction: .toDevice)
        try relaxed.device.unmapPhys(other, length: 4096, direction: .toDevice)
        #expect(relaxed.debug.reports.isEmpty)
    }

    /// kernel/dma/debug.c `check_sync` finds the entry with `bucket_find_contain`: an entry must
    /// hold the whole synced range. A sync that runs past the end of a mapping is matched by none
    /// and is "tries to sync DMA memory it has not allocated" (this test asserted
    /// "outside allocated range" before, which the kernel cannot reach that way).
    @Test("Sync of an address never mapped, and past the end of a mapping: both 'has not allocated' (containment)")
    func syncBounds() throws {
        let s = try Setup()
        try s.device.syncForCPU(0x7777_0000, length: 16, direction: .fromDevice)
        #expect(s.kinds() == [.syncNotMapped])
        s.debug.clearReports()
        let address = try s.map(.fromDevice)
        try s.device.syncForCPU(try address.advanced(by: 4000), length: 200, direction: .fromDevice)
        #expect(s.kinds() == [.syncNotMapped])
        #expect(s.debug.reports[0].message.contains("tries to sync DMA memory it has not allocated"))
        s.debug.clearReports()
        try s.device.syncForCPU(try address.advanced(by: 4000), length: 96, direction: .fromDevice)
        try s.device.syncForCPU(address, length: 4096, direction: .fromDevice)
        #expect(s.debug.reports.isEmpty)
    }

    /// `bucket_find_contain` walks back hash bucket by hash bucket (16384 buckets of 8 KiB of
    /// address): a sync deep inside a large mapping, buckets after the one the mapping starts in,
    /// still finds it; two containing mappings in one bucket with no perfect fit find none.
    @Test("A sync inside a large mapping is found buckets later; two equal containing mappings in one bucket are ambiguous")
    func syncContainmentWalk() throws {
        let machine = try Machine()
        let debug = DMADebug(configuration: .init(checkMappingErrors: false))
        let device = try machine.device(DirectDMAOps(), debug: debug)
        let block = try machine.memory.allocate(length: 1 << 20, alignment: 1 << 20)
        let address = try device.mapPhys(block, direction: .fromDevice)
        try device.syncForCPU(try address.advanced(by: 900 << 10), length: 4096, direction: .fromDevice)
        #expect(debug.reports.isEmpty)
        // The same range mapped again (no IOMMU: the same DMA address): two candidates in one bucket,
        // neither a perfect fit for a 4 KiB single sync, so hash_bucket_find answers none.
        let again = try device.mapPhys(block, direction: .fromDevice)
        #expect(again == address)
        try device.syncForCPU(try address.advanced(by: 900 << 10), length: 4096, direction: .fromDevice)
        #expect(debug.reports.map(\.kind) == [.syncNotMapped])
        try device.unmapPhys(again, length: 1 << 20, direction: .fromDevice)
        try device.unmapPhys(address, length: 1 << 20, direction: .fromDevice)
    }

    @Test("Sync in the wrong direction: TO_DEVICE memory for the CPU, FROM_DEVICE memory for the device")
    func syncDirections() throws {
        let s = try Setup()
        let tx = try s.map(.toDevice)
        try s.device.syncForCPU(tx, length: 4096, direction: .fromDevice)
        #expect(s.kinds() == [.syncDirectionMismatch, .syncReadOnlyForCPU])
        s.debug.clearReports()
        try s.device.unmapPhys(tx, length: 4096, direction: .toDevice)

        let rx = try s.map(.fromDevice)
        try s.device.syncForDevice(rx, length: 4096, direction: .toDevice)
        #expect(s.kinds() == [.syncDirectionMismatch, .syncWriteOnlyForDevice])
        s.debug.clearReports()
        // Syncing a TO_DEVICE mapping for the CPU with its own direction is legal (the kernel allows it).
        try s.device.unmapPhys(rx, length: 4096, direction: .fromDevice)
    }

    @Test("BIDIRECTIONAL mappings may be synced either way")
    func bidirectionalSync() throws {
        let s = try Setup()
        let both = try s.map(.bidirectional)
        try s.device.syncForCPU(both, length: 4096, direction: .toDevice)
        try s.device.syncForDevice(both, length: 4096, direction: .fromDevice)
        #expect(s.debug.reports.isEmpty)
    }

    /// kernel/dma/debug.c `dma_debug_device_change`: the count, then "One of leaked entries
    /// details" for one entry (the last met walking the buckets in order); the entries stay.
    @Test("Mappings live at teardown are reported as the kernel prints it: the count and one entry's details")
    func leaks() throws {
        let s = try Setup()
        let single = try s.map()
        let table = try s.device.mapScatterList(try ScatterList.host(try s.machine.discontiguousPages(2)), direction: .fromDevice)
        let report = try #require(s.debug.deviceReleased(s.device))
        #expect(report.kind == .leak)
        #expect(report.size == 3)
        let lines = report.message.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0] == "device driver has pending DMA allocations while released from device [count=3]")
        // the highest hash bucket wins: the single mapping sits above the list's pages
        let last = ([single] + table.segments.map(\.address)).max { ($0.rawValue >> 13) & 16383 < ($1.rawValue >> 13) & 16383 }!
        #expect(last == single)
        #expect(
            lines[1] == "One of leaked entries details: [device address=\(kernelHex(single.rawValue))] [size=4096 bytes] [mapped with DMA_TO_DEVICE] [mapped as phy]")
        #expect(s.debug.liveEntries.count == 3)
    }

    /// `err_printk` prints while `all_errors` is set or `num_errors` (1 by default) has some left;
    /// every error is counted in `error_count`.
    @Test("Only the first error is shown by default; all_errors shows every one; every one is counted", arguments: [false, true])
    func firstErrorOnly(showAll: Bool) throws {
        let s = try Setup(showAllErrors: showAll)
        try s.device.unmapPhys(0x1234_5000, length: 4096, direction: .toDevice)
        try s.device.syncForCPU(0x7777_0000, length: 16, direction: .fromDevice)
        try s.device.unmapPhys(try s.map(.toDevice), length: 4096, direction: .fromDevice)
        #expect(s.kinds() == [.unmapNotMapped, .syncNotMapped, .directionMismatch])
        #expect(s.debug.errorCount == 3)
        #expect(s.debug.shownReports.map(\.kind) == (showAll ? s.kinds() : [.unmapNotMapped]))
    }

    /// kernel/dma/debug.c `check_sg_segment`, called by `debug_dma_map_sg` for every mapped segment.
    @Test("check_sg_segment: an entry longer than max_seg_size, a segment across the segment boundary")
    func sgSegmentChecks() throws {
        let machine = try Machine()
        let debug = DMADebug(configuration: .init(checkMappingErrors: false))
        // A list built without looking at dma_parms: one 128 KiB entry for a 64 KiB device.
        let device = try machine.device(DirectDMAOps(), debug: debug, maxSegmentSize: 64 << 10)
        let big = try machine.memory.allocate(length: 128 << 10, alignment: 128 << 10)
        let table = try device.mapScatterList(try ScatterList.host([big]), direction: .toDevice)
        #expect(debug.reports.map(\.kind) == [.segmentTooLong])
        #expect(debug.reports[0].message == "mapping sg segment longer than device claims to support [len=131072] [max=65536]")
        try device.unmapScatterList(table, direction: .toDevice)
        debug.clearReports()
        // A 64 KiB boundary: an 8 KiB entry straddling a 64 KiB line crosses it on the direct path.
        let narrow = try machine.device(DirectDMAOps(), name: "0000:05:00.0", debug: debug, segmentBoundaryMask: 0xffff)
        let block = try machine.memory.allocate(length: 128 << 10, alignment: 64 << 10)
        let straddle = try block.subrange(offset: (64 << 10) - 4096, length: 8192)
        let crossing = try narrow.mapScatterList(try ScatterList.host([straddle]), direction: .toDevice)
        #expect(debug.reports.map(\.kind) == [.segmentAcrossBoundary])
        let start = straddle.start.rawValue
        #expect(
            debug.reports[0].message
                == "mapping sg segment across boundary [start=\(kernelHex(start))] [end=\(kernelHex(start + 8191))] [boundary=0x000000000000ffff]")
        try narrow.unmapScatterList(crossing, direction: .toDevice)
        // The IOMMU pads entries to the boundary (iommu_dma_map_sg), so its segments never cross.
        debug.clearReports()
        let mapped = try machine.device(
            IOMMUDMAOps(), name: "0000:06:00.0", iommu: try IOMMUDomain(), debug: debug, segmentBoundaryMask: 0xffff)
        let pages = try machine.discontiguousPages(20)
        let viaIOMMU = try mapped.mapScatterList(try ScatterList.host(pages), direction: .toDevice)
        #expect(debug.reports.isEmpty)
        try mapped.unmapScatterList(viaIOMMU, direction: .toDevice)
    }

    @Test("Strict mode throws at the first problem, before the call reaches the ops, and keeps the entry")
    func strict() throws {
        let s = try Setup(strict: true)
        let address = try s.map(.fromDevice)
        let error = #expect(throws: DMAError.self) { try s.device.unmapPhys(address, length: 4096, direction: .toDevice) }
        #expect(error?.code == .debugCheckFailed)
        #expect(s.debug.liveEntries.count == 1)
        try s.device.unmapPhys(address, length: 4096, direction: .fromDevice)
        #expect(s.debug.liveEntries.isEmpty)
        #expect(s.debug.reports.isEmpty)
    }

    @Test("Entries are matched best-fit on device + DMA address (hash_bucket_find)")
    func bestFit() throws {
        let machine = try Machine()
        let debug = DMADebug(configuration: .init(checkMappingErrors: false))
        // Two devices map the same address (no IOMMU, same page): each unmap finds its own entry.
        let a = try machine.device(DirectDMAOps(), name: "0000:0a:00.0", debug: debug)
        let b = try machine.device(DirectDMAOps(), name: "0000:0b:00.0", debug: debug)
        let page = try machine.discontiguousPages(1)[0]
        let ta = try a.mapPhys(page, direction: .toDevice)
        let tb = try b.mapPhys(page, direction: .fromDevice)
        #expect(ta == tb)
        try b.unmapPhys(tb, length: 4096, direction: .fromDevice)
        try a.unmapPhys(ta, length: 4096, direction: .toDevice)
        #expect(debug.reports.isEmpty)
        // One device, the same address twice with different directions: the exact match is taken.
        let x = try a.mapPhys(page, direction: .toDevice)
        let y = try a.mapPhys(page, direction: .bidirectional)
        try a.unmapPhys(y, length: 4096, direction: .bidirectional)
        try a.unmapPhys(x, length: 4096, direction: .toDevice)
        #expect(debug.reports.isEmpty)
    }

    @Test("Scatter-list syncs are checked per segment, including the entry count")
    func scatterListSync() throws {
        let s = try Setup()
        let pages = try s.machine.discontiguousPages(2)
        let table = try s.device.mapScatterList(try ScatterList.host(pages), direction: .fromDevice)
        try s.device.syncForCPU(table, direction: .fromDevice)
        #expect(s.debug.reports.isEmpty)
        try s.device.syncForDevice(table, direction: .fromDevice)  // legal: the device gets the buffer back
        #expect(s.debug.reports.isEmpty)
        try s.device.unmapScatterList(table, direction: .fromDevice)
        #expect(s.debug.reports.isEmpty)
    }
}

import DMACore
import DMAMapping
import Testing

/// One test per class of `kernel/dma/debug.c` report.
@Suite("DMA-API debug layer (kernel/dma/debug.c)")
struct DebugLayerTests {
    struct Setup {
        let machine: Machine
        let device: DMADevice
        let page: PhysicalRange
        var debug: DMADebug { device.debug }

        init(strict: Bool = false, checkMappingErrors: Bool = true) throws {
            machine = try Machine()
            device = try machine.device(
                DirectDMAOps(), debug: DMADebug(configuration: .init(strict: strict, checkMappingErrors: checkMappingErrors)))
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

    @Test("Unmap with another function: single vs phys (MMIO) vs scatter-list")
    func typeMismatch() throws {
        let s = try Setup()
        try s.device.unmapPhys(try s.map(), length: 4096, direction: .toDevice, attributes: .mmio)
        #expect(s.kinds() == [.typeMismatch])
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

    @Test("Sync of an address never mapped, and past the end of a mapping")
    func syncBounds() throws {
        let s = try Setup()
        try s.device.syncForCPU(0x7777_0000, length: 16, direction: .fromDevice)
        #expect(s.kinds() == [.syncNotMapped])
        s.debug.clearReports()
        let address = try s.map(.fromDevice)
        try s.device.syncForCPU(try address.advanced(by: 4000), length: 200, direction: .fromDevice)
        #expect(s.kinds() == [.syncOutOfBounds])
        s.debug.clearReports()
        try s.device.syncForCPU(try address.advanced(by: 4000), length: 96, direction: .fromDevice)
        #expect(s.debug.reports.isEmpty)
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

    @Test("Mappings live at teardown are reported with their count and each entry")
    func leaks() throws {
        let s = try Setup()
        _ = try s.map()
        _ = try s.device.mapScatterList(try ScatterList.host(try s.machine.discontiguousPages(2)), direction: .fromDevice)
        let report = try #require(s.debug.deviceReleased(s.device))
        #expect(report.kind == .leak)
        #expect(report.size == 3)
        #expect(report.message.contains("[count=3]"))
        #expect(report.message.split(separator: "\n").filter { $0.contains("[device address=") }.count == 3)
        #expect(s.debug.liveEntries.isEmpty)
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
        let a = try machine.device(DirectDMAOps(), name: "a", debug: debug)
        let b = try machine.device(DirectDMAOps(), name: "b", debug: debug)
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

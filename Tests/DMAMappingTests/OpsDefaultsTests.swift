import DMACore
import DMAMapping
import Synchronization
import Testing

/// A seven-member ops that keeps, per device, what it mapped and what it was asked: identity
/// addresses, and a failure on the `failAt`-th map of a range (counting from 0) when asked.
struct LedgerOps: DMAOps {
    final class Ledger: DMAOpsDeviceState {
        let state = Mutex((live: [UInt64: UInt64](), maps: [DMAAttributes](), released: [String]()))
        func deviceReleased(_ device: String) { state.withLock { $0.released.append("\(device) with \($0.live.count) live") } }
        var live: Int { state.withLock { $0.live.count } }
        var maps: [DMAAttributes] { state.withLock { $0.maps } }
        var released: [String] { state.withLock { $0.released } }
    }
    var failAt: Int? = nil
    var name: String { "ledger" }
    var p2pSupported: Bool { true }

    func ledger(_ device: DMADevice) throws(DMAError) -> Ledger { try device.opsState { Ledger() } }

    func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) -> DMAAddress {
        try checkMemoryKind(range, attributes: attributes, device: device)
        let ledger = try ledger(device)
        let refused = ledger.state.withLock { state -> Bool in
            defer { state.maps.append(attributes) }
            guard state.maps.count != failAt else { return true }
            state.live[range.start.rawValue] = range.length
            return false
        }
        if refused { throw DMAError(.resourceExhausted, .ENOMEM, "ledger full") }
        return DMAAddress(range.start.rawValue)
    }
    func unmapPhys(_ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) {
        let removed = try ledger(device).state.withLock { $0.live.removeValue(forKey: address.rawValue) }
        guard removed == length else { throw DMAError(.notMapped, .EINVAL, "\(address) not mapped with \(length) bytes") }
    }
    func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}
    func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}
    func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress {
        PhysicalAddress(address.rawValue)
    }
}

/// Issue [N] item 4: an ops of seven members gets its scatter-list map and unmap from the
/// protocol (`dma_direct_map_sg`'s shape, `kernel/dma/direct.c`), and keeps per-device state on
/// the device with a hook when the device goes away (`iommu_ops.release_device`).
@Suite("DMAOps defaults and per-device ops state")
struct OpsDefaultsTests {
    @Test("The default map_sg maps every entry with map_phys, and unmap_sg unmaps each")
    func defaultMapAndUnmap() throws {
        let machine = try Machine()
        let ops = LedgerOps()
        let device = try machine.device(ops)
        let pages = try machine.discontiguousPages(4)
        let table = try device.mapScatterList(try ScatterList.host(pages), direction: .toDevice)
        #expect(table.segments.map(\.address.rawValue) == pages.map(\.start.rawValue))
        #expect(try ops.ledger(device).live == 4)
        try device.unmapScatterList(table, direction: .toDevice)
        #expect(try ops.ledger(device).live == 0)
        #expect(device.debug.reports.isEmpty && device.debug.liveEntries.isEmpty)
    }

    @Test("A failed entry unwinds the ones before it and fails the list with EIO, its own error as cause", arguments: [0, 1, 3])
    func defaultUnwinds(failAt: Int) throws {
        let machine = try Machine()
        let ops = LedgerOps(failAt: failAt)
        let device = try machine.device(ops)
        let pages = try machine.discontiguousPages(4)
        let error = #expect(throws: DMAError.self) { try device.mapScatterList(try ScatterList.host(pages), direction: .fromDevice) }
        #expect(error?.code == .mapFailed && error?.errno == .EIO)
        #expect(error?.cause?.code == .resourceExhausted && error?.cause?.errno == .ENOMEM)
        #expect(try ops.ledger(device).live == 0, "entries mapped before the failure were not unwound")
        #expect(device.debug.liveEntries.isEmpty)
    }

    @Test("A bus-address P2P list takes the fast path: bus addresses, marked, and no map_phys call")
    func defaultBusAddressFastPath() throws {
        let machine = try Machine()
        let ops = LedgerOps()
        let device = try machine.device(ops, topology: .busAddress)
        let ranges = [try machine.vramRange(offset: 0, length: 0x1000), try machine.vramRange(offset: 0x4000, length: 0x2000)]
        let table = try device.mapScatterList(try ScatterList.peerToPeer(ranges, provider: machine.vram), direction: .toDevice)
        #expect(table.segments.map(\.address) == ranges.map { machine.vram.busAddress(of: $0.start) })
        #expect(table.segments.allSatisfy(\.isBusAddress) && table.p2pMapType == .busAddress)
        #expect(try ops.ledger(device).maps.isEmpty)
        try device.unmapScatterList(table, direction: .toDevice)
    }

    @Test("A P2P list through the host bridge is mapped entry by entry with DMA_ATTR_MMIO, and unmapped so")
    func defaultHostBridgeIsMMIO() throws {
        let machine = try Machine()
        let ops = LedgerOps()
        let device = try machine.device(ops, topology: .throughHostBridge)
        let list = try ScatterList.peerToPeer([try machine.vramRange(offset: 0, length: 0x1000)], provider: machine.vram)
        let table = try device.mapScatterList(list, direction: .toDevice)
        #expect(try ops.ledger(device).maps == [.mmio])
        try device.unmapScatterList(table, direction: .toDevice)
        #expect(try ops.ledger(device).live == 0)
    }

    @Test("Ops that do not declare P2P get every P2P list refused by the default with EREMOTEIO, nothing mapped")
    func defaultRefusesP2P() throws {
        let machine = try Machine()
        let device = try machine.device(IdentityTestOps())
        let list = try ScatterList.peerToPeer([try machine.vramRange(offset: 0, length: 0x1000)], provider: machine.vram)
        let error = #expect(throws: DMAError.self) { try device.mapScatterList(list, direction: .toDevice) }
        #expect(error?.errno == .EREMOTEIO && error?.code == .peerToPeerNotSupported)
        #expect(device.debug.liveEntries.isEmpty)
    }

    @Test("Per-device state: one value per device, told once when the device goes away, ENODEV after")
    func perDeviceState() throws {
        let machine = try Machine()
        let ops = LedgerOps()
        let first = try machine.device(ops, name: "0000:04:00.0")
        let second = try machine.device(ops, name: "0000:05:00.0")
        let page = try machine.discontiguousPages(1)[0]
        _ = try first.mapPhys(page, direction: .toDevice)
        let ledger = try ops.ledger(first)
        let other = try ops.ledger(second)
        #expect(try ops.ledger(first) === ledger)
        #expect(other !== ledger && ledger.live == 1 && other.live == 0)
        first.release()
        first.release()
        #expect(ledger.released == ["0000:04:00.0 with 1 live"])
        #expect(first.isReleased && !second.isReleased)
        let gone = #expect(throws: DMAError.self) { try first.mapPhys(page, direction: .toDevice) }
        #expect(gone?.code == .noDevice && gone?.errno == .ENODEV)
    }

    @Test("A device that is never released tells its ops state when its last reference goes")
    func stateToldAtDeinit() throws {
        let machine = try Machine()
        let ops = LedgerOps()
        var ledger: LedgerOps.Ledger?
        do {
            let device = try DMADevice(name: "0000:06:00.0", memory: machine.memory, ops: ops)
            ledger = try ops.ledger(device)
        }
        #expect(ledger?.released == ["0000:06:00.0 with 0 live"])
    }

    @Test("dma_iova_link with DMA_NONE gives no access: the IOMMU refuses it with EINVAL and links nothing")
    func iovaLinkDirectionNone() throws {
        let machine = try Machine()
        let device = try machine.device(IOMMUDMAOps(), iommu: try IOMMUDomain())
        let page = try machine.discontiguousPages(1)[0]
        let state = try #require(try device.ops.iovaTryAlloc(page.start, size: pageSize, device: device))
        let error = #expect(throws: DMAError.self) {
            try device.ops.iovaLink(state, physical: page.start, offset: 0, length: pageSize, direction: .none, attributes: [], device: device)
        }
        #expect(error?.errno == .EINVAL)
        #expect(device.iommu?.mappedPages == 0)
        try device.ops.iovaDestroy(state, mappedLength: 0, direction: .toDevice, attributes: [], device: device)
    }
}

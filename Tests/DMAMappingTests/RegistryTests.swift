import DMACore
import DMAMapping
import Synchronization
import Testing

@Suite("DMAOps registry (include/linux/dma-map-ops.h)")
struct RegistryTests {
    @Test("The four built-in ops, and which can map P2P (dma_pci_p2pdma_supported)")
    func builtIn() throws {
        let registry = DMAOpsRegistry.builtIn()
        #expect(registry.all.map(\.name) == ["direct", "iommu", "swiotlb", "virt"])
        #expect(try registry.ops(named: "direct").p2pSupported)
        #expect(try registry.ops(named: "iommu").p2pSupported)
        #expect(try registry.ops(named: "swiotlb").p2pSupported)
        #expect(try !registry.ops(named: "virt").p2pSupported)
    }

    @Test("A duplicate name is an error (EEXIST), and the first registration stays")
    func duplicate() throws {
        let registry = DMAOpsRegistry.builtIn()
        let error = #expect(throws: DMAError.self) { try registry.register(DirectDMAOps()) }
        #expect(error?.errno == .EEXIST)
        #expect(error?.code == .alreadyExists)
        #expect(registry.all.count == 4)
        #expect(try registry.ops(named: "direct").summary.contains("direct.c"))
    }

    @Test("An unknown name is ENOENT and names what is registered")
    func unknown() throws {
        let error = #expect(throws: DMAError.self) { try DMAOpsRegistry.builtIn().ops(named: "nope") }
        #expect(error?.errno == .ENOENT)
        #expect(error?.message.contains("direct, iommu, swiotlb, virt") == true)
    }

    @Test("Third-party ops plug in like the built-in ones, and a device finds its ops")
    func thirdParty() throws {
        let registry = DMAOpsRegistry.builtIn()
        try registry.register(IdentityTestOps())
        let machine = try Machine()
        let device = try DMADevice(name: "0000:05:00.0", memory: machine.memory, ops: try registry.ops(named: "identity-test"))
        #expect(try registry.ops(for: device).name == "identity-test")
        let page = try machine.discontiguousPages(1)[0]
        #expect(try device.mapPhys(page, direction: .toDevice) == DMAAddress(page.start.rawValue))
        let stranger = try DMADevice(name: "0000:06:00.0", memory: machine.memory, ops: IdentityTestOps())
        #expect(throws: DMAError.self) { try DMAOpsRegistry().ops(for: stranger) }
        #expect(throws: DMAError.self) { try DMADevice(name: "0000:07:00.0", memory: machine.memory, ops: IdentityTestOps(), maxSegmentSize: 0) }
        #expect(throws: DMAError.self) {
            try DMADevice(name: "0000:07:00.0", memory: machine.memory, ops: IdentityTestOps(), segmentBoundaryMask: 0x1234)
        }
    }
}

@Suite("Rules every built-in ops keeps")
struct CommonOpsRules {
    static let allOps: [any DMAOps] = [DirectDMAOps(), IOMMUDMAOps(), DirectDMAOps.swiotlb, VirtDMAOps()]

    /// [K] item 9: `DMA_NONE` is `BUG_ON(!valid_dma_direction(dir))` in every entry of
    /// `kernel/dma/mapping.c` (7.1): the kernel crashes, so the model's refusal carries its own
    /// code, not the `EINVAL` this test asserted before, and the ops never see the call.
    @Test("DMA_NONE is the kernel's BUG_ON: refused by the DMA API with kernel-bug before any ops, nothing mapped", arguments: allOps.map(\.name))
    func directionNone(name: String) throws {
        let machine = try Machine()
        let ops = try DMAOpsRegistry.builtIn().ops(named: name)
        let counter = CallCounter(wrapping: ops)
        let device = try machine.device(counter, pool: true, iommu: try IOMMUDomain())
        let pages = try machine.discontiguousPages(2)
        let single = #expect(throws: DMAError.self) { try device.mapPhys(pages[0], direction: .none) }
        #expect(single?.errno == .ENOTRECOVERABLE && single?.code == .kernelBug)
        #expect(single?.message.contains("BUG_ON") == true)
        let list = #expect(throws: DMAError.self) { try device.mapScatterList(try ScatterList.host(pages), direction: .none) }
        #expect(list?.code == .kernelBug)
        let table = try device.mapScatterList(try ScatterList.host(pages), direction: .toDevice)
        let reached = counter.calls
        #expect(throws: DMAError.self) { try device.syncForDevice(table, direction: .none) }
        #expect(throws: DMAError.self) { try device.unmapScatterList(table, direction: .none) }
        #expect(counter.calls == reached, "the ops were reached with DMA_NONE")
        try device.unmapScatterList(table, direction: .toDevice)
        #expect(device.debug.liveEntries.isEmpty)
        #expect(device.iommu?.mappedPages == 0)
        #expect(device.swiotlb?.usage.used == 0)
    }

    @Test(
        "A P2P list reaches only P2P-capable ops; the others refuse it with EREMOTEIO and map nothing",
        arguments: allOps.map(\.name))
    func p2pOnlyWhenSupported(name: String) throws {
        let machine = try Machine()
        let ops = try DMAOpsRegistry.builtIn().ops(named: name)
        let device = try machine.device(ops, pool: true, iommu: try IOMMUDomain())
        let list = try ScatterList.peerToPeer([try machine.vramRange(offset: 0, length: 0x2000)], provider: machine.vram)
        if ops.p2pSupported {
            let table = try device.mapScatterList(list, direction: .toDevice)
            #expect(table.segments.allSatisfy { $0.isBusAddress })
            #expect(table.segments.map(\.address) == [machine.vram.busAddress(of: machine.vram.cpuRange.start)])
            try device.unmapScatterList(table, direction: .toDevice)
        } else {
            let error = #expect(throws: DMAError.self) { try device.mapScatterList(list, direction: .toDevice) }
            #expect(error?.errno == .EREMOTEIO)
            #expect(error?.code == .peerToPeerNotSupported)
            // Handed the list directly, the ops refuse it the same way.
            let direct = #expect(throws: DMAError.self) { try ops.mapScatterList(list, direction: .toDevice, attributes: [], device: device) }
            #expect(direct?.errno == .EREMOTEIO)
        }
        #expect(device.debug.liveEntries.isEmpty)
        #expect(device.debug.reports.isEmpty)
    }

    @Test(
        "A topology that says not-supported, or no topology, makes any P2P map fail with EREMOTEIO",
        arguments: ["direct", "iommu", "swiotlb"])
    func p2pNotReachable(name: String) throws {
        let machine = try Machine()
        let ops = try DMAOpsRegistry.builtIn().ops(named: name)
        let list = try ScatterList.peerToPeer([try machine.vramRange(offset: 0, length: 0x1000)], provider: machine.vram)
        let blocked = try machine.device(ops, pool: true, iommu: try IOMMUDomain(), topology: .notSupported)
        #expect(throws: DMAError.self) { try blocked.mapScatterList(list, direction: .toDevice) }
        let alone = try DMADevice(name: "0000:08:00.0", memory: machine.memory, ops: ops, iommu: try IOMMUDomain())
        let error = #expect(throws: DMAError.self) { try alone.mapScatterList(list, direction: .toDevice) }
        #expect(error?.errno == .EREMOTEIO)
    }

    @Test("A BAR mapped as if it were RAM is refused (EINVAL): MMIO needs DMA_ATTR_MMIO", arguments: allOps.map(\.name))
    func mmioNeedsAttribute(name: String) throws {
        let machine = try Machine()
        let device = try machine.device(try DMAOpsRegistry.builtIn().ops(named: name), pool: true, iommu: try IOMMUDomain())
        let bar = try machine.vramRange(offset: 0, length: 0x1000)
        #expect(throws: DMAError.self) { try device.mapPhys(bar, direction: .toDevice) }
        #expect(throws: DMAError.self) { try device.mapScatterList(try ScatterList.host([bar]), direction: .toDevice) }
        let unbacked = try PhysicalRange(start: 0x7_0000_0000, length: 0x1000)
        #expect(throws: DMAError.self) { try device.mapPhys(unbacked, direction: .toDevice) }
        #expect(device.debug.liveEntries.isEmpty)
    }
}

/// Counts every call that reaches the wrapped ops.
struct CallCounter: DMAOps {
    let wrapped: any DMAOps
    private let count = Counter()
    init(wrapping ops: any DMAOps) { wrapped = ops }
    var calls: Int { count.value }
    var name: String { wrapped.name }
    var p2pSupported: Bool { wrapped.p2pSupported }
    var addressesAreCPUVirtual: Bool { wrapped.addressesAreCPUVirtual }
    func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) -> DMAAddress {
        count.bump()
        return try wrapped.mapPhys(range, direction: direction, attributes: attributes, device: device)
    }
    func unmapPhys(_ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) {
        count.bump()
        try wrapped.unmapPhys(address, length: length, direction: direction, attributes: attributes, device: device)
    }
    func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) -> DMAScatterTable {
        count.bump()
        return try wrapped.mapScatterList(list, direction: direction, attributes: attributes, device: device)
    }
    func unmapScatterList(_ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes, device: DMADevice) throws(DMAError) {
        count.bump()
        try wrapped.unmapScatterList(table, direction: direction, attributes: attributes, device: device)
    }
    func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {
        count.bump()
        try wrapped.syncForCPU(address, length: length, direction: direction, device: device)
    }
    func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {
        count.bump()
        try wrapped.syncForDevice(address, length: length, direction: direction, device: device)
    }
    func syncScatterListForCPU(_ table: DMAScatterTable, direction: DMADirection, device: DMADevice) throws(DMAError) {
        count.bump()
        try wrapped.syncScatterListForCPU(table, direction: direction, device: device)
    }
    func syncScatterListForDevice(_ table: DMAScatterTable, direction: DMADirection, device: DMADevice) throws(DMAError) {
        count.bump()
        try wrapped.syncScatterListForDevice(table, direction: direction, device: device)
    }
    func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress {
        try wrapped.translate(address, access: access, device: device)
    }
}

final class Counter: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func bump() { count.withLock { $0 += 1 } }
}

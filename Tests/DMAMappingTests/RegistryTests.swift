import DMACore
import DMAMapping
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
        let stranger = try DMADevice(name: "x", memory: machine.memory, ops: IdentityTestOps())
        #expect(throws: DMAError.self) { try DMAOpsRegistry().ops(for: stranger) }
        #expect(throws: DMAError.self) { try DMADevice(name: "y", memory: machine.memory, ops: IdentityTestOps(), maxSegmentSize: 0) }
        #expect(throws: DMAError.self) {
            try DMADevice(name: "y", memory: machine.memory, ops: IdentityTestOps(), segmentBoundaryMask: 0x1234)
        }
    }
}

@Suite("Rules every built-in ops keeps")
struct CommonOpsRules {
    static let allOps: [any DMAOps] = [DirectDMAOps(), IOMMUDMAOps(), DirectDMAOps.swiotlb, VirtDMAOps()]

    @Test("DMA_NONE is refused with EINVAL and maps nothing (valid_dma_direction)", arguments: allOps.map(\.name))
    func directionNone(name: String) throws {
        let machine = try Machine()
        let ops = try DMAOpsRegistry.builtIn().ops(named: name)
        let device = try machine.device(ops, pool: true, iommu: try IOMMUDomain())
        let pages = try machine.discontiguousPages(2)
        let single = #expect(throws: DMAError.self) { try device.mapPhys(pages[0], direction: .none) }
        #expect(single?.errno == .EINVAL && single?.code == .invalidDirection)
        let list = #expect(throws: DMAError.self) { try device.mapScatterList(try ScatterList.host(pages), direction: .none) }
        #expect(list?.errno == .EINVAL)
        // Even called directly, bypassing the API wrapper, the ops refuse it.
        #expect(throws: DMAError.self) { try ops.mapPhys(pages[0], direction: .none, attributes: [], device: device) }
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
        let alone = try DMADevice(name: "lonely", memory: machine.memory, ops: ops, iommu: try IOMMUDomain())
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

/// The owner of peer-to-peer memory: one memory BAR of one PCI function, without `struct page`
/// (`struct p2pdma_provider { owner, bus_offset }`, `include/linux/pci-p2pdma.h`, 6.19; one
/// provider per BAR as `pcim_p2pdma_init` sets up, in `drivers/pci/p2pdma.c`).
///
/// The provider knows where its BAR sits for the CPU and on the bus; the difference is its bus
/// offset, so a bus-address mapping is `dma = phys + (bus address of the BAR − CPU address of the
/// BAR)` (`pci_p2pdma_bus_addr_map`). The offset is kept as a wrapping 64-bit number, as the
/// kernel keeps `u64 bus_offset`.
public struct P2PProvider: Hashable, Sendable, CustomStringConvertible {
    /// The PCI function that owns the BAR (`0000:03:00.0`).
    public let owner: PCIAddress
    /// The BAR index, 0…5.
    public let barIndex: Int
    /// Where the BAR sits in the CPU's physical address map (`pci_resource_start`, `resource`).
    public let cpuRange: PhysicalRange
    /// `bus address − CPU address`, wrapping (`pci_bus_address(pdev, bar) - pci_resource_start`).
    public let busOffset: UInt64

    /// Makes a provider for BAR `barIndex` of `owner`.
    /// - Note: About the arguments:
    ///   - busAddress: the BAR's address on the PCI bus (the BAR register); equal to the CPU
    ///     address on most x86 machines.
    /// - Throws: `EINVAL` for a BAR index outside 0…5, or when the bus window would wrap.
    public init(owner: PCIAddress, barIndex: Int, cpuRange: PhysicalRange, busAddress: DMAAddress) throws(DMAError) {
        guard (0...5).contains(barIndex) else {
            throw DMAError(.invalidArgument, .EINVAL, "BAR index \(barIndex) of \(owner) is outside 0…5")
        }
        let (_, overflow) = busAddress.rawValue.addingReportingOverflow(cpuRange.length - 1)
        if overflow {
            throw DMAError(.addressOverflow, .EOVERFLOW, "BAR \(barIndex) of \(owner) at bus \(busAddress) wraps past 2^64")
        }
        self.owner = owner
        self.barIndex = barIndex
        self.cpuRange = cpuRange
        self.busOffset = busAddress.rawValue &- cpuRange.start.rawValue
    }

    /// The bus address of the BAR's first byte.
    public var busStart: DMAAddress { DMAAddress(cpuRange.start.rawValue &+ busOffset) }

    /// The bus address of a physical address inside the BAR (`pci_p2pdma_bus_addr_map`).
    /// - Precondition: `address` lies in ``cpuRange``.
    @inlinable
    public func busAddress(of address: PhysicalAddress) -> DMAAddress {
        DMAAddress(address.rawValue &+ busOffset)
    }

    /// The physical address behind a bus address of this BAR, or `nil` if it is outside the BAR.
    public func physicalAddress(ofBus address: DMAAddress) -> PhysicalAddress? {
        let phys = PhysicalAddress(address.rawValue &- busOffset)
        return cpuRange.contains(phys) ? phys : nil
    }

    public var description: String { "\(owner) BAR\(barIndex) \(cpuRange)" }
}

/// How a peer-to-peer transfer between a provider and a client travels
/// (`enum pci_p2pdma_map_type`, `include/linux/pci-p2pdma.h`).
public enum P2PMapType: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// `PCI_P2PDMA_MAP_NOT_SUPPORTED`: the two cannot talk; a mapping fails with `EREMOTEIO`.
    case notSupported = "not-supported"
    /// `PCI_P2PDMA_MAP_BUS_ADDR`: a common upstream bridge routes it; the client uses the bus
    /// address and no IOMMU is involved.
    case busAddress = "bus-address"
    /// `PCI_P2PDMA_MAP_THRU_HOST_BRIDGE`: the host bridge routes it; the client's DMA ops map the
    /// physical address as MMIO, through the IOMMU if there is one.
    case throughHostBridge = "through-host-bridge"

    public var description: String { rawValue }
}

/// Whatever answers "how does `client` reach `provider`?": the PCI topology in the full package,
/// a fixed answer in small tests. It is the only thing the mapping layer asks of the topology
/// (`pci_p2pdma_map_type` in `drivers/pci/p2pdma.c`), so the layers stay one-way.
public protocol P2PTopology: Sendable {
    /// The map type between a provider and a client device at a PCI address.
    func mapType(provider: P2PProvider, client: PCIAddress) -> P2PMapType
}

/// A topology that gives every pair the same answer: for small tests and the first demo.
public struct UniformP2PTopology: P2PTopology {
    /// The answer for every pair.
    public let answer: P2PMapType
    /// Creates it.
    public init(_ answer: P2PMapType) { self.answer = answer }
    public func mapType(provider: P2PProvider, client: PCIAddress) -> P2PMapType {
        provider.owner == client ? .busAddress : answer
    }
}

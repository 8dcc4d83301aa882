import DMACore

/// A device that does DMA (`struct device` as the DMA-mapping API sees it): its mask, its bus
/// offset, its bounce pool and IOMMU domain, the ops that map for it, and the machine it sits in.
///
/// A reference type because a device has identity: mappings, debug entries and faults belong to
/// one device. Everything is fixed at creation (the kernel sets it at probe: `dma_set_mask`,
/// `set_dma_ops`, `iommu_setup_dma_ops`), so a device is immutable and `Sendable`.
public final class DMADevice: Sendable, Hashable, CustomStringConvertible {
    /// The device's name, a BDF such as `0000:03:00.0` for PCI devices.
    public let name: String
    /// The physical memory of the machine it sits in.
    public let memory: SimulatedMemory
    /// The addresses it can drive (`dma_set_mask`).
    public let mask: DMAMask
    /// Added to a physical address to give the bus address for direct mapping (`phys_to_dma` with
    /// a constant `dma_range_map` offset; 0 on most x86 machines).
    public let dmaOffset: UInt64
    /// Low address bits a bounce buffer must keep from the original (`dma_get_min_align_mask`,
    /// NVMe sets 4 KiB − 1).
    public let minAlignMask: UInt64
    /// The largest segment a scatter-list map may produce (`dma_get_max_seg_size`; 64 KiB unless
    /// the driver sets `dma_parms`).
    public let maxSegmentSize: UInt64
    /// A segment may not cross a multiple of this mask + 1 (`dma_get_seg_boundary`; 4 GiB − 1 by
    /// default).
    public let segmentBoundaryMask: UInt64
    /// The IOMMU domain that translates its addresses, if it sits behind an IOMMU.
    public let iommu: IOMMUDomain?
    /// The software bounce pool it may use (`dev->dma_io_tlb_mem`), if any.
    public let swiotlb: SwiotlbPool?
    /// Who answers "how do I reach that P2P provider?"; without one, P2P is never possible.
    public let topology: (any P2PTopology)?
    /// The ops that map for it (`get_dma_ops`).
    public let ops: any DMAOps
    /// The rules of the kernel the device's machine runs: the mapping and debug rules that changed
    /// between releases ask it (`KernelRules.newest`, 7.1, unless given).
    public let kernel: KernelRules

    /// Creates a device.
    /// - Note: About the arguments:
    ///   - ops: the ops that map for it; look them up in a ``DMAOpsRegistry``.
    ///   - maxSegmentSize: 64 KiB by default, as the kernel's default `dma_parms`.
    ///   - kernel: the release whose mapping rules apply (7.1 unless given).
    /// - Throws: `EINVAL` for a zero maximum segment size or a segment boundary mask that is not
    ///   of the form 2^n − 1.
    public init(
        name: String, memory: SimulatedMemory, ops: any DMAOps, mask: DMAMask = .bits64, dmaOffset: UInt64 = 0,
        minAlignMask: UInt64 = 0, maxSegmentSize: UInt64 = 65536, segmentBoundaryMask: UInt64 = 0xffff_ffff,
        iommu: IOMMUDomain? = nil, swiotlb: SwiotlbPool? = nil, topology: (any P2PTopology)? = nil,
        kernel: KernelRules = .newest
    ) throws(DMAError) {
        guard maxSegmentSize > 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "device \(name): maximum segment size 0")
        }
        guard segmentBoundaryMask & (segmentBoundaryMask &+ 1) == 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "device \(name): segment boundary mask \(hex(segmentBoundaryMask)) is not 2^n − 1")
        }
        self.name = name
        self.memory = memory
        self.ops = ops
        self.mask = mask
        self.dmaOffset = dmaOffset
        self.minAlignMask = minAlignMask
        self.maxSegmentSize = maxSegmentSize
        self.segmentBoundaryMask = segmentBoundaryMask
        self.iommu = iommu
        self.swiotlb = swiotlb
        self.topology = topology
        self.kernel = kernel
    }

    /// The P2P map type from this device to `provider` (`pci_p2pdma_map_type`,
    /// `drivers/pci/p2pdma.c`): the topology's answer alone, not supported without a topology.
    ///
    /// The kernel's function looks only at the provider and the client's place in the PCI tree
    /// (the cached verdict of `calc_map_type_and_dist`); it never asks the client's DMA ops. Ops
    /// that cannot carry P2P (no `DMA_F_PCI_P2PDMA_SUPPORTED`) refuse when a P2P list reaches
    /// them at map time (``DMAOps/checkScatterList(_:direction:device:)``), not here.
    public func p2pMapType(to provider: P2PProvider) -> P2PMapType {
        guard let topology else { return .notSupported }
        return topology.mapType(provider: provider, client: name)
    }

    public static func == (a: DMADevice, b: DMADevice) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
    public var description: String { name }
}

import DMACore

/// A device that does DMA (`struct device` as the DMA-mapping API sees it): its mask, its bus
/// offset, its bounce pool and IOMMU domain, the ops that map for it, and the machine it sits in.
///
/// A reference type because a device has identity: mappings, debug entries and faults belong to
/// one device. Everything the DMA API reads is fixed at creation (the kernel sets it at probe:
/// `dma_set_mask`, `set_dma_ops`, `iommu_setup_dma_ops`); the one thing that changes is the state
/// its ops keep for it (``opsState(_:make:)``), behind a lock, so a device is `Sendable`.
public final class DMADevice: Sendable, Hashable, CustomStringConvertible {
    /// The PCI function the device is (`to_pci_dev(dev)`): who it is to the topology and to a
    /// P2P provider it owns.
    public let pciAddress: PCIAddress
    /// The device's name, `dev_name`: its PCI address, `0000:03:00.0`.
    public var name: String { pciAddress.description }
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
    /// between releases ask it (`KernelRules.newest`, 7.3, unless given).
    public let kernel: KernelRules

    /// Creates the device of the PCI function at `pciAddress`.
    /// - Note: About the arguments:
    ///   - ops: the ops that map for it; look them up in a ``DMAOpsRegistry``.
    ///   - maxSegmentSize: 64 KiB by default, as the kernel's default `dma_parms`.
    ///   - kernel: the release whose mapping rules apply (the newest, 7.3, unless given).
    /// - Throws: `EINVAL` for a zero maximum segment size or a segment boundary mask that is not
    ///   of the form 2^n − 1.
    public init(
        pciAddress: PCIAddress, memory: SimulatedMemory, ops: any DMAOps, mask: DMAMask = .bits64, dmaOffset: UInt64 = 0,
        minAlignMask: UInt64 = 0, maxSegmentSize: UInt64 = 65536, segmentBoundaryMask: UInt64 = 0xffff_ffff,
        iommu: IOMMUDomain? = nil, swiotlb: SwiotlbPool? = nil, topology: (any P2PTopology)? = nil,
        kernel: KernelRules = .newest
    ) throws(DMAError) {
        guard maxSegmentSize > 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "device \(pciAddress): maximum segment size 0")
        }
        guard segmentBoundaryMask & (segmentBoundaryMask &+ 1) == 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "device \(pciAddress): segment boundary mask \(hex(segmentBoundaryMask)) is not 2^n − 1")
        }
        self.pciAddress = pciAddress
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

    /// Creates the device named `name`, its PCI address (`0000:03:00.0` or `03:00.0`), parsed
    /// once here: a name that is not a PCI address is refused now, not judged "not supported" at
    /// every later P2P question.
    /// - Note: About the arguments:
    ///   - name: the device's PCI address as text.
    ///   - ops: the ops that map for it; look them up in a ``DMAOpsRegistry``.
    ///   - maxSegmentSize: 64 KiB by default, as the kernel's default `dma_parms`.
    ///   - kernel: the release whose mapping rules apply (the newest, 7.3, unless given).
    /// - Throws: `EINVAL` for a name that is not a PCI address, a zero maximum segment size or a
    ///   segment boundary mask that is not of the form 2^n − 1.
    public convenience init(
        name: String, memory: SimulatedMemory, ops: any DMAOps, mask: DMAMask = .bits64, dmaOffset: UInt64 = 0,
        minAlignMask: UInt64 = 0, maxSegmentSize: UInt64 = 65536, segmentBoundaryMask: UInt64 = 0xffff_ffff,
        iommu: IOMMUDomain? = nil, swiotlb: SwiotlbPool? = nil, topology: (any P2PTopology)? = nil,
        kernel: KernelRules = .newest
    ) throws(DMAError) {
        try self.init(
            pciAddress: try PCIAddress(parsing: name), memory: memory, ops: ops, mask: mask, dmaOffset: dmaOffset,
            minAlignMask: minAlignMask, maxSegmentSize: maxSegmentSize, segmentBoundaryMask: segmentBoundaryMask,
            iommu: iommu, swiotlb: swiotlb, topology: topology, kernel: kernel)
    }

    /// The state ops keep for this device, by type, and whether the device went away.
    private struct OpsStates {
        var states: [ObjectIdentifier: any DMAOpsDeviceState] = [:]
        var released = false
    }
    private let opsStates = ModelMutex(OpsStates())

    /// The state of type `State` that ops keep for this device, made by `make` on first use: the
    /// home for what the kernel's ops hang off `struct device` (`dev_iommu_priv_set`,
    /// `dev->dma_io_tlb_mem`), such as a vendor's per-device translation table. One value per
    /// type and device, shared by every thread; `make` runs outside the device's lock and, when
    /// two threads race, the first value stored wins. The value is told when the device goes
    /// away (``DMAOpsDeviceState/deviceReleased(_:)``).
    /// - Throws: `DMAError/Code/noDevice` (`ENODEV`) after ``release()``: the device is gone and
    ///   its ops may not map for it; whatever `make` throws.
    public func opsState<State: DMAOpsDeviceState>(_ type: State.Type = State.self, make: () throws(DMAError) -> State)
        throws(DMAError) -> State
    {
        let key = ObjectIdentifier(type)
        let found: (state: State?, released: Bool) = opsStates.withLock { ($0.states[key] as? State, $0.released) }
        guard !found.released else { throw gone() }
        if let state = found.state { return state }
        let made = try make()
        let stored: State? = opsStates.withLock { all in
            guard !all.released else { return nil }
            if let earlier = all.states[key] as? State { return earlier }
            all.states[key] = made
            return made
        }
        guard let stored else { throw gone() }
        return stored
    }

    private func gone() -> DMAError {
        DMAError(.noDevice, .ENODEV, "\(name) went away (released); its ops keep no state for it any more")
    }

    /// The device goes away (`device_del`: the bus notifier's `BUS_NOTIFY_REMOVED_DEVICE` makes
    /// the IOMMU core call `iommu_ops.release_device`, which frees what it kept per device). Every
    /// ops state of the device is told once, with ``DMAOpsDeviceState/deviceReleased(_:)``, and
    /// dropped; later ``opsState(_:make:)`` calls throw `ENODEV`. Calling it again does nothing.
    /// A device that is never released tells its states when its last reference goes.
    public func release() {
        let states = opsStates.withLock { all in
            let states = all.released ? [] : Array(all.states.values)
            all.states = [:]
            all.released = true
            return states
        }
        for state in states { state.deviceReleased(name) }
    }

    /// Whether ``release()`` was called.
    public var isReleased: Bool { opsStates.withLock { $0.released } }

    deinit {
        let states = opsStates.withLock { $0.released ? [] : Array($0.states.values) }
        for state in states { state.deviceReleased(name) }
    }

    /// The P2P map type from this device to `provider` (`pci_p2pdma_map_type`,
    /// `drivers/pci/p2pdma.c`): the topology's answer alone, not supported without a topology.
    ///
    /// The kernel's function looks only at the provider and the client's place in the PCI tree
    /// (the cached verdict of `calc_map_type_and_dist`); it never asks the client's DMA ops. Ops
    /// that cannot carry P2P (no `DMA_F_PCI_P2PDMA_SUPPORTED`) refuse when a P2P list reaches
    /// them at map time (``DMAOps/checkScatterList(_:device:)``), not here.
    public func p2pMapType(to provider: P2PProvider) -> P2PMapType {
        guard let topology else { return .notSupported }
        return topology.mapType(provider: provider, client: pciAddress)
    }

    public static func == (a: DMADevice, b: DMADevice) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
    public var description: String { name }
}

/// What an ops keeps for one device, stored on the device with ``DMADevice/opsState(_:make:)``: a
/// reference type (one value shared by every call for the device) that is told when the device
/// goes away, as `iommu_ops.release_device` is (`drivers/iommu/iommu.c`).
public protocol DMAOpsDeviceState: AnyObject, Sendable {
    /// The device named `device` went away (``DMADevice/release()``, or its last reference went):
    /// free what is held for it and report what a driver left mapped. Called once, after which the
    /// device no longer holds this value. The default does nothing.
    func deviceReleased(_ device: String)
}

extension DMAOpsDeviceState {
    public func deviceReleased(_ device: String) {}
}

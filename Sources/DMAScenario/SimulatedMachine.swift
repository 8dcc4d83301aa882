import DMABuf
import DMACore
import DMADevices
import DMAMapping
import PCI
import Synchronization

/// A whole simulated machine: a PCI topology, physical memory holding RAM and every memory BAR of
/// the topology, the DMA ops registry, and one DMA-API debug state that checks every importer.
///
/// RAM is 2 GiB below 4 GiB and 8 GiB above; allocations come from the top, so a device with a
/// 32-bit mask meets memory it must bounce, as on a large server.
public final class SimulatedMachine: Sendable {
    /// The topology.
    public let topology: PCITopology
    /// The memory.
    public let memory: SimulatedMemory
    /// The ops registry (the built-in ops unless one is given).
    public let registry: DMAOpsRegistry
    /// The debug state every importer device is checked by.
    public let debug: DMADebug
    /// The rules of the kernel the machine runs (`KernelRules.newest` unless given).
    public let rules: KernelRules
    private let heaps = ModelMutex<[String: VRAMHeap]>([:])
    private let devices = ModelMutex<[DMADevice]>([])
    private let buffers = ModelMutex<[DMABuffer]>([])

    /// Builds the machine. Its topology judges P2P by the rules of `rules`' release
    /// (`PCITopology.following`), whatever release the topology was loaded for.
    /// - Throws: `EINVAL` when two BARs overlap RAM.
    public init(
        topology: PCITopology, registry: DMAOpsRegistry = .builtIn(), debug: DMADebug = DMADebug(), rules: KernelRules = .newest
    ) throws(DMAError) {
        self.rules = rules
        let memory = SimulatedMemory()
        try memory.addRAM(name: "RAM below 4 GiB", start: 0, length: 0x8000_0000)
        try memory.addRAM(name: "RAM above 4 GiB", start: 0x1_0000_0000, length: 0x2_0000_0000)
        for provider in topology.providers {
            try memory.addBAR(name: "\(provider.owner) BAR\(provider.barIndex)", provider: provider)
        }
        self.topology = topology.following(rules.version)
        self.memory = memory
        self.registry = registry
        self.debug = debug
    }

    /// The built-in machine of the stories (``BuiltInTopology``).
    public static func builtIn(rules: KernelRules = .newest) throws -> SimulatedMachine {
        try SimulatedMachine(topology: try BuiltInTopology.load(), rules: rules)
    }

    /// The PCI function at `bdf`.
    /// - Throws: `ENODEV` naming it.
    public func function(_ bdf: String) throws(DMAError) -> PCIFunction {
        try topology.require(try PCIAddress(parsing: bdf))
    }

    /// A memory BAR of a device as a provider: `bar`, or the largest one.
    /// - Throws: `ENODEV` for an unknown device; `EINVAL` when it has no such memory BAR.
    public func provider(_ bdf: String, bar: Int? = nil) throws(DMAError) -> P2PProvider {
        let function = try function(bdf)
        let providers = topology.providers(of: function.address)
        if let bar {
            guard let found = providers.first(where: { $0.barIndex == bar }) else {
                throw DMAError(.invalidArgument, .EINVAL, "\(function.address) has no memory BAR \(bar); it has \(providers.map { "BAR\($0.barIndex)" }.joined(separator: ", "))")
            }
            return found
        }
        guard let largest = providers.max(by: { $0.cpuRange.length < $1.cpuRange.length }) else {
            throw DMAError(.invalidArgument, .EINVAL, "\(function.address) has no memory BAR")
        }
        return largest
    }

    /// The VRAM heap of a GPU (its largest BAR unless `bar` is given), made on first use.
    public func vramHeap(_ gpu: String, bar: Int? = nil) throws(DMAError) -> VRAMHeap {
        let provider = try provider(gpu, bar: bar)
        return heaps.withLock { heaps in
            let key = "\(provider.owner)#\(provider.barIndex)"
            if let heap = heaps[key] { return heap }
            let heap = VRAMHeap(provider: provider)
            heaps[key] = heap
            return heap
        }
    }

    /// A GPU VRAM buffer.
    public func gpuBuffer(name: String, gpu: String, size: UInt64, bar: Int? = nil) throws(DMAError) -> GPUVRAMExporter {
        _ = try function(gpu)
        let exporter = try GPUVRAMExporter(name: name, gpu: gpu, heap: try vramHeap(gpu, bar: bar), memory: memory, size: size, rules: rules)
        buffers.withLock { $0.append(exporter.buffer) }
        return exporter
    }

    /// A VFIO BAR buffer of `device`'s region `bar`.
    public func vfioBuffer(name: String, device: String, bar: Int, ranges: [VFIOBARExporter.Range]) throws(DMAError) -> VFIOBARExporter {
        let function = try function(device)
        var bars: [Int: P2PProvider] = [:]
        for provider in topology.providers(of: function.address) { bars[provider.barIndex] = provider }
        let exporter = try VFIOBARExporter(name: name, regionIndex: bar, bars: bars, ranges: ranges, memory: memory, rules: rules)
        buffers.withLock { $0.append(exporter.buffer) }
        return exporter
    }

    /// A system dma-heap buffer.
    public func heapBuffer(name: String, size: UInt64) throws(DMAError) -> SystemHeapExporter {
        let exporter = try SystemHeapExporter(name: name, memory: memory, size: size)
        buffers.withLock { $0.append(exporter.buffer) }
        return exporter
    }

    /// The DMA device of PCI function `bdf` with the named ops (wrapped in the debug layer), its mask
    /// (default: the topology's, else 64 bits), an IOMMU domain for `iommu` ops, and a bounce pool
    /// when the mask is below 64 bits or the ops are `swiotlb`.
    /// - Throws: `ENODEV` for an unknown device; `ENOENT` for unknown ops; `EINVAL` for a bad mask.
    public func dmaDevice(_ bdf: String, ops opsName: String = "direct", maskBits: Int? = nil, swiotlbSlots: Int? = nil)
        throws(DMAError) -> DMADevice
    {
        let function = try function(bdf)
        let ops = try registry.ops(named: opsName)
        let mask = try DMAMask(bits: maskBits ?? function.dmaMaskBits ?? 64)
        let slots = swiotlbSlots ?? (mask.bits < 64 || opsName == "swiotlb" ? 1024 : 0)
        var domain: IOMMUDomain?
        if opsName == "iommu" {
            // iommu_dma_init_domain reserves the IOMMU's regions (MSI) and the host bridge's
            // windows; the model's windows are the BARs' bus ranges.
            let made = try IOMMUDomain(name: "\(bdf) domain")
            for provider in topology.providers {
                try made.reserve(
                    IOMMUDomain.ReservedRegion(
                        name: "PCI window \(provider.owner) BAR\(provider.barIndex)", start: provider.busAddress(of: provider.cpuRange.start),
                        length: provider.cpuRange.length))
            }
            domain = made
        }
        // The drivers of the model's devices raise dma_parms as theirs do (amdgpu and nvme
        // dma_set_max_seg_size(UINT_MAX), mlx5 2 GiB), and the model's exporters hand out entries
        // of any size (a kernel sg entry stops at 4 GiB − 1): the devices here declare no segment
        // limit, so the debug layer's check_sg_segment has nothing to say about them. The PCI
        // defaults (64 KiB, 4 GiB boundary) stay the default of DMADevice itself.
        let device = try DMADevice(
            pciAddress: function.address, memory: memory, ops: DMADebugOps(wrapping: ops, debug: debug), mask: mask,
            maxSegmentSize: .max, segmentBoundaryMask: .max, iommu: domain, swiotlb: slots > 0 ? try SwiotlbPool(memory: memory, slotCount: slots) : nil, topology: topology,
            kernel: rules)
        devices.withLock { $0.append(device) }
        return device
    }

    /// Releases every device made here from the debug layer, as driver unbind does, releases
    /// every buffer made here that has no attachment left (the last `dma_buf_put`), and returns
    /// every debug report (leaks included). Buffers still attached stay, as the leaks they are.
    public func finish() -> [DMADebugReport] {
        for device in devices.withLock({ $0 }) { debug.deviceReleased(device) }
        let left = buffers.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for buffer in left { try? buffer.release() }
        return debug.reports
    }
}

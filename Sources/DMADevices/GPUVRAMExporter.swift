import DMABuf
import DMACore
import DMAMapping
import Synchronization

/// A GPU's VRAM buffer exported as a dma-buf, modelled on amdgpu (`amdgpu_dma_buf.c`): a dynamic
/// exporter whose buffer lives in VRAM (its VRAM BAR, a P2P provider) or in system memory (the GTT
/// domain), and moves between them.
///
/// Negotiation (DESIGN.md §3), as `drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c` has it:
/// - `attach` keeps `peer2peer` only when the importer's device reaches the VRAM BAR by the PCI
///   topology alone (`pci_p2pdma_distance` ≥ 0); the importer's DMA ops are not asked, so ops that
///   cannot carry P2P fail later, when the VRAM is mapped for them;
/// - `pin` picks the domains: GTT only before 6.15 (`KernelRule.gpuPinsInVRAM`) and whenever
///   `CONFIG_DMABUF_MOVE_NOTIFY` is off; from 6.15 with it on, VRAM stays allowed when every
///   attachment has P2P. Pinning moves an unpinned buffer into an allowed domain; a buffer already
///   pinned in a domain the new pin does not allow is `EINVAL` (`amdgpu_bo_pin`);
/// - `map` of an unpinned buffer moves it to GTT unless the attachment has P2P (then VRAM may
///   stay), telling every dynamic importer; a pinned buffer does not move: a buffer pinned in VRAM
///   (6.15 on) is mapped as VRAM for whoever maps it, P2P or not (before 6.15 the kernel's map is
///   `EBUSY` for a buffer pinned outside GTT, which the model's GTT-only pins never leave);
/// - VRAM is mapped as `amdgpu_vram_mgr_alloc_sgt` does (`amdgpu_vram_mgr.c`): the CPU physical
///   address of each piece of at most 2 GiB through `dma_map_resource` (`dma_map_phys` with
///   `DMA_ATTR_MMIO` from 6.18), so the device gets an IOVA behind an IOMMU and the physical
///   address without one, never a P2PDMA bus address; a failed map is `ENOMEM` (`dma_mapping_error`);
/// - ``evict(in:)`` moves an unpinned VRAM buffer to system memory and tells every dynamic importer
///   (`amdgpu_bo_move_notify` → `dma_buf_invalidate_mappings`).
/// Bytes are copied for real on every move.
public final class GPUVRAMExporter: DMABufExporter {
    private enum Backing {
        case vram(PhysicalRange)
        case system([PhysicalRange])
        /// After ``release()``: the memory went back to its heap, and nothing here points at it.
        case released
    }

    private struct State {
        var backing: Backing
        var pins = 0
        var migratedBytes: UInt64 = 0
        /// Bytes a `pin` moved for the map that follows it (a pin on map), by attachment, so the
        /// mapping says what it cost.
        var migratedByPin: [ObjectIdentifier: UInt64] = [:]
    }

    /// The GPU's name (a BDF).
    public let gpu: String
    /// The VRAM heap the buffer came from.
    public let heap: VRAMHeap
    /// The machine's memory.
    public let memory: SimulatedMemory
    /// The buffer's size.
    public let size: UInt64
    public let exporterName: String
    private let state: ModelMutex<State>
    private let held = ExportedBuffer(whenReleased: "the buffer was released; its VRAM went back to the heap")
    private let book = MMIOMappingBook()

    /// The largest scatter-list entry `amdgpu_vram_mgr_alloc_sgt` makes (`AMDGPU_MAX_SG_SEGMENT_SIZE`).
    public static let maxVRAMSegment: UInt64 = 2 << 30

    /// Allocates `size` bytes of VRAM and exports them, under the rules of `rules`' kernel.
    /// - Returns: the exporter; its ``buffer`` is the dma-buf.
    /// - Throws: `EINVAL` for a size that is not a positive page multiple; `ENOMEM` when VRAM is full.
    public init(name: String, gpu: String, heap: VRAMHeap, memory: SimulatedMemory, size: UInt64, exporterName: String = "amdgpu",
        rules: KernelRules = .newest
    ) throws(DMAError)
    {
        guard size > 0, size % pageSize == 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "GPU buffer '\(name)': size \(size) is not a positive multiple of \(pageSize)")
        }
        let range = try heap.allocate(size)
        self.gpu = gpu
        self.heap = heap
        self.memory = memory
        self.size = size
        self.exporterName = exporterName
        self.state = ModelMutex(State(backing: .vram(range)))
        do {
            let buffer = try DMABuffer(name: name, size: size, exporter: self, rules: rules)
            held.hold(buffer)
        } catch {
            heap.release(range)
            throw error
        }
    }

    /// The dma-buf.
    /// - Precondition: the buffer has not been released (``release()``).
    public var buffer: DMABuffer { held.buffer }

    public var isDynamic: Bool { true }

    public var placement: DMABufPlacement {
        state.withLock {
            switch $0.backing {
            case .vram: .vram
            case .system: .system
            case .released: .released
            }
        }
    }

    /// Bytes moved from VRAM to system memory so far.
    public var migratedBytes: UInt64 { state.withLock { $0.migratedBytes } }

    /// Whether the buffer is pinned.
    public var isPinned: Bool { state.withLock { $0.pins > 0 } }

    /// - Throws: `ENODEV` after ``release()``: the memory is no longer the buffer's.
    public func cpuRanges() throws(DMAError) -> [PhysicalRange] {
        switch state.withLock({ $0.backing }) {
        case .vram(let range): [range]
        case .system(let pages): pages
        case .released: throw DMAError(.noDevice, .ENODEV, "\(exporterName) buffer on \(gpu) was released; its memory is gone")
        }
    }

    public func attach(_ attachment: DMABufAttachment) throws(DMAError) {
        // amdgpu_dma_buf_attach: pci_p2pdma_distance alone decides.
        if attachment.peerToPeer && topologyMapType(attachment.device, to: heap.provider) == .notSupported {
            attachment.disablePeerToPeer()
        }
    }

    /// Whether the rules and the attachments allow a pin in VRAM (`amdgpu_dma_buf_pin`).
    private func mayPinInVRAM(_ buffer: DMABuffer, _ attachment: DMABufAttachment) -> Bool {
        buffer.rules.has(.gpuPinsInVRAM) && buffer.rules.gpuMayPinInVRAM
            && buffer.attachments.allSatisfy(\.peerToPeer) && attachment.peerToPeer
    }

    public func pin(_ attachment: DMABufAttachment, in context: ReservationContext) throws(DMAError) {
        let buffer = attachment.buffer
        _ = try cpuRanges()  // ENODEV once released
        if !mayPinInVRAM(buffer, attachment), placement == .vram {
            // amdgpu_bo_pin: pinned already, in a domain this pin does not allow.
            guard !isPinned else {
                throw DMAError(
                    .invalidArgument, .EINVAL,
                    "\(buffer.name) is pinned in VRAM and this pin allows GTT only (\(attachment.device.name) cannot reach VRAM peer-to-peer): amdgpu_bo_pin refuses")
            }
            let moved = try migrateToSystem(notifyIn: context).bytes
            state.withLock { $0.migratedByPin[ObjectIdentifier(attachment), default: 0] += moved }
        }
        state.withLock { $0.pins += 1 }
    }

    public func unpin(_ attachment: DMABufAttachment) {
        state.withLock {
            $0.pins = max(0, $0.pins - 1)
            $0.migratedByPin[ObjectIdentifier(attachment)] = nil
        }
    }

    public func map(_ attachment: DMABufAttachment, direction: DMADirection, in context: ReservationContext) throws(DMAError)
        -> DMABufMapping
    {
        var migrated = state.withLock { $0.migratedByPin.removeValue(forKey: ObjectIdentifier(attachment)) ?? 0 }
        if case .vram(let range) = state.withLock({ $0.backing }) {
            // From 6.15 a buffer pinned in VRAM is mapped as VRAM, whoever maps it. (Before, the
            // kernel's map refuses a buffer pinned outside GTT with EBUSY, which only a vmap pin
            // reaches: the model's pins before 6.15 always leave the buffer in system memory.)
            if isPinned || attachment.peerToPeer { return try mapVRAM(range, attachment, direction) }
            migrated += try migrateToSystem(notifyIn: context).bytes
        }
        let pages = try cpuRanges()
        return try mapForDevice(try ScatterList.host(pages), attachment, direction, placement: .system, migratedBytes: migrated)
    }

    /// `amdgpu_vram_mgr_alloc_sgt`: each piece of at most 2 GiB of the VRAM's CPU physical range
    /// through `dma_map_resource` (`dma_map_phys(DMA_ATTR_MMIO)` from 6.18) with
    /// `DMA_ATTR_SKIP_CPU_SYNC`; a failure unmaps the pieces before it and is `ENOMEM`.
    private func mapVRAM(_ range: PhysicalRange, _ attachment: DMABufAttachment, _ direction: DMADirection) throws(DMAError)
        -> DMABufMapping
    {
        let device = attachment.device
        let attributes: DMAAttributes = [.mmio, .skipCPUSync]
        var pieces: [(DMAAddress, UInt64)] = []
        var segments: [DMASegment] = []
        var done: UInt64 = 0
        while done < range.length {
            let length = min(Self.maxVRAMSegment, range.length - done)
            do throws(DMAError) {
                let piece = try PhysicalRange(start: PhysicalAddress(range.start.rawValue + done), length: length)
                let address = try device.mapPhys(piece, direction: direction, attributes: attributes)
                guard !dmaMappingError(address, device) else {
                    throw DMAError(.resourceExhausted, .ENOMEM, "\(piece) for \(device.name): DMA_MAPPING_ERROR")
                }
                pieces.append((address, length))
                segments.append(DMASegment(address: address, length: length))
            } catch {
                try? MMIOMappingBook.undo(.perPiece(pieces, attributes: attributes), device: device, direction: direction)
                throw DMAError(
                    .mapFailed, .ENOMEM,
                    "amdgpu_vram_mgr_alloc_sgt: \(attachment.buffer.rules.mmioMapCall) of VRAM for \(device.name) failed: \(error.message)",
                    cause: error)
            }
            done += length
        }
        let list = try ScatterList.peerToPeer([range], provider: heap.provider)
        // The route the device's requests take: the topology's, unless the DMA API handed out an
        // address that is not the VRAM's bus address (an IOVA), which goes up to the IOMMU in the
        // root complex, through the host bridge.
        let route = topologyMapType(device, to: heap.provider)
        let atBusAddress = segments.indices.allSatisfy {
            segments[$0].address == heap.provider.busAddress(of: PhysicalAddress(range.start.rawValue + UInt64($0) * Self.maxVRAMSegment))
        }
        let type: P2PMapType = route == .busAddress && !atBusAddress ? .throughHostBridge : route
        let table = DMAScatterTable(list: list, segments: segments, p2pMapType: type)
        book.record(attachment, table, .perPiece(pieces, attributes: attributes))
        return DMABufMapping(table: table, placement: .vram, mmioMapCall: attachment.buffer.rules.mmioMapCall)
    }

    /// `amdgpu_dma_buf_unmap`: VRAM pieces one by one (`amdgpu_vram_mgr_free_sgt`), system
    /// pages as a scatter-list.
    public func unmap(_ attachment: DMABufAttachment, _ mapping: DMABufMapping, direction: DMADirection) throws(DMAError) {
        if let how = book.take(attachment, mapping.table) {
            try MMIOMappingBook.undo(how, device: attachment.device, direction: direction)
            return
        }
        try attachment.device.unmapScatterList(mapping.table, direction: direction)
    }

    /// `release`: frees the VRAM or system pages, leaves the backing `DMABufPlacement.released`
    /// (so no later call reaches the freed memory) and drops the reference to the buffer.
    public func release() {
        let backing = state.withLock { state -> Backing in
            defer { state.backing = .released }
            return state.backing
        }
        switch backing {
        case .vram(let range): heap.release(range)
        case .system(let pages): for page in pages { try? memory.free(page) }
        case .released: break
        }
        held.drop()
    }

    /// Moves a VRAM buffer to system memory (TTM eviction, `amdgpu_bo_move_notify`). Like every
    /// exporter move in this package (``VFIOBARExporter/revoke(_:in:)`` too), the caller holds
    /// the reservation lock and passes its context, as TTM holds the BO's `dma_resv` across
    /// `ttm_bo_move`; every dynamic importer is told before the memory moves.
    /// - Returns: the importers told.
    /// - Throws: `ENODEV` after ``release()``; `DMAError/Code/lockNotHeld` when `context` does
    ///   not hold the lock; `EBUSY` when the buffer is pinned. Nothing moves then.
    @discardableResult
    public func evict(in context: ReservationContext) throws(DMAError) -> [DMABufAttachment] {
        let buffer = try held.live("evict")
        try buffer.resv.assertHeld("evict", by: context)
        guard !isPinned else {
            throw DMAError(.busy, .EBUSY, "\(buffer.name) is pinned: pinned memory cannot move")
        }
        guard placement == .vram else { return [] }
        return try migrateToSystem(notifyIn: context).told
    }

    /// Tells every dynamic importer (with the lock `context` holds), then copies VRAM to fresh
    /// system pages and frees the VRAM.
    @discardableResult
    private func migrateToSystem(notifyIn context: ReservationContext) throws(DMAError) -> (bytes: UInt64, told: [DMABufAttachment]) {
        guard case .vram(let range) = state.withLock({ $0.backing }) else { return (0, []) }
        let told = try held.live("migrate").invalidateMappings(in: context)
        let pages = try allocateSystemPages(memory, size: size)
        do {
            try copyRanges(memory, from: [range], to: pages)
        } catch {
            for page in pages { try? memory.free(page) }
            throw error
        }
        heap.release(range)
        state.withLock {
            $0.backing = .system(pages)
            $0.migratedBytes += size
        }
        return (size, told)
    }
}

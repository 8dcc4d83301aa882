import DMABuf
import DMACore
import DMAMapping
import Synchronization

/// A GPU's VRAM buffer exported as a dma-buf, modelled on amdgpu (`amdgpu_dma_buf.c`): a dynamic
/// exporter whose buffer lives in VRAM (its VRAM BAR, a P2P provider) or in system memory (the GTT
/// domain), and moves between them.
///
/// Negotiation (DESIGN.md §3):
/// - `attach` keeps `peer2peer` only when the importer's device reaches the VRAM BAR
///   (`pci_p2pdma_distance` ≥ 0 in amdgpu; here the topology's map type) and its DMA ops can carry
///   P2P;
/// - `pin` for an attachment without P2P first moves the buffer to system memory (a static
///   importer pins when it maps, so it gets system memory at that moment); pinned memory does not
///   move, and a buffer pinned in VRAM cannot be pinned for an importer that cannot reach it
///   (`EBUSY`). The kernel's rules (`DMABuffer.rules`) decide whether VRAM is allowed at all:
///   with `CONFIG_DMABUF_MOVE_NOTIFY` off (before 7.1) `amdgpu_dma_buf_pin` pins in GTT only
///   (`drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c`), and since every map pins then, no importer
///   ever gets VRAM P2P: the first map moves the buffer to system memory;
/// - `map` gives P2P segments of VRAM when the attachment has P2P; otherwise a buffer in VRAM is
///   moved to system memory first (the GTT fallback), every dynamic importer being told, and the
///   importer maps system pages (bounced if its mask needs it);
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
    private let bufferBox = ModelMutex<DMABuffer?>(nil)

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
            bufferBox.withLock { $0 = buffer }
        } catch {
            heap.release(range)
            throw error
        }
    }

    /// The dma-buf.
    /// - Precondition: the buffer has not been released (``release()``).
    public var buffer: DMABuffer {
        bufferBox.withLock { box in
            guard let buffer = box else { preconditionFailure("the exporter's buffer was used after its release") }
            return buffer
        }
    }

    /// The dma-buf for one of the exporter's own calls.
    /// - Throws: `ENODEV` after ``release()``.
    private func liveBuffer(_ call: String) throws(DMAError) -> DMABuffer {
        guard let buffer = bufferBox.withLock({ $0 }) else {
            throw DMAError(.noDevice, .ENODEV, "\(call): the buffer was released; its VRAM went back to the heap")
        }
        return buffer
    }

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
        // The map type is the topology's alone now ([K] item 6); this exporter still also asks the
        // importer's ops, as it did before, until [K] item 3 makes it pci_p2pdma_distance alone.
        if attachment.peerToPeer
            && (!attachment.device.ops.p2pSupported || attachment.device.p2pMapType(to: heap.provider) == .notSupported)
        {
            attachment.disablePeerToPeer()
        }
    }

    public func pin(_ attachment: DMABufAttachment, in context: ReservationContext) throws(DMAError) {
        // amdgpu_dma_buf_pin: VRAM stays allowed only when every attachment has P2P, and (before
        // 7.1) only when CONFIG_DMABUF_MOVE_NOTIFY is on; off, the VRAM domain is dropped.
        let buffer = attachment.buffer
        _ = try cpuRanges()  // ENODEV once released
        let everyoneP2P = buffer.attachments.allSatisfy(\.peerToPeer) && attachment.peerToPeer
        if !(everyoneP2P && buffer.rules.gpuMayPinInVRAM), placement == .vram {
            guard !isPinned else {
                throw DMAError(
                    .busy, .EBUSY,
                    "\(buffer.name) is pinned in VRAM and \(attachment.device.name) cannot reach VRAM peer-to-peer: it cannot be moved to system memory")
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
            if attachment.peerToPeer {
                let list = try ScatterList.peerToPeer([range], provider: heap.provider)
                return try mapForDevice(list, attachment, direction, placement: .vram)
            }
            guard !isPinned else {
                throw DMAError(
                    .busy, .EBUSY,
                    "\(attachment.buffer.name) is pinned in VRAM and \(attachment.device.name) cannot reach it peer-to-peer")
            }
            migrated += try migrateToSystem(notifyIn: context).bytes
        }
        let pages = try cpuRanges()
        return try mapForDevice(try ScatterList.host(pages), attachment, direction, placement: .system, migratedBytes: migrated)
    }

    public func unmap(_ attachment: DMABufAttachment, _ mapping: DMABufMapping, direction: DMADirection) throws(DMAError) {
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
        bufferBox.withLock { $0 = nil }
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
        let buffer = try liveBuffer("evict")
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
        let told = try liveBuffer("migrate").invalidateMappings(in: context)
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

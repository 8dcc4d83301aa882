import DMACore
import Synchronization

/// A software bounce-buffer pool (`struct io_tlb_pool`, `kernel/dma/swiotlb.c`): memory the device
/// can reach, into which data is copied when the original is out of its reach.
///
/// The rules modelled, each from `kernel/dma/swiotlb.c`:
/// - slots of 2 KiB (`IO_TLB_SIZE`, `IO_TLB_SHIFT` 11) in segments of 128 slots (`IO_TLB_SEGSIZE`);
///   an allocation never crosses a segment, so one mapping is at most 256 KiB less the device's
///   minimum alignment (`swiotlb_max_mapping_size`);
/// - the free-run counters (`slots[i].list`) and the rotating search cursor of
///   `swiotlb_search_pool_area`; allocations of a page or more are page-aligned when the device has
///   no minimum alignment; the bits of the original address under `min_align_mask` are kept
///   (`swiotlb_align_offset`);
/// - copies: map always copies original → bounce, whatever the direction and even with
///   `DMA_ATTR_SKIP_CPU_SYNC`, so a partial device write keeps the original bytes; sync for the
///   device copies in for `TO_DEVICE`/`BIDIRECTIONAL`; sync for the CPU and unmap (unless
///   `SKIP_CPU_SYNC`) copy back for `FROM_DEVICE`/`BIDIRECTIONAL`;
/// - an allocation never spans the device's segment boundary (`dma_get_seg_boundary`): a run of
///   slots whose DMA addresses would cross a multiple of the boundary is skipped
///   (`iommu_is_span_boundary` in `swiotlb_search_pool_area`, with `max_slots` from
///   `get_max_slots`);
/// - a pool with no room fails the mapping ("swiotlb buffer is full") and maps nothing.
public final class SwiotlbPool: Sendable {
    /// `IO_TLB_SIZE`: 2 KiB.
    public static let slotSize: UInt64 = 2048
    /// `IO_TLB_SEGSIZE`: 128 slots.
    public static let segmentSlots = 128

    private struct Slot {
        var list: Int  // free slots from here to the end of the segment (0 when used)
        var owner: Int?  // first slot of the allocation this slot belongs to
    }

    private struct Mapping {
        var original: PhysicalAddress
        var bounce: PhysicalAddress  // address handed out (slot start + offset)
        var size: UInt64  // mapping size
        var slots: Int
    }

    private struct State {
        var slots: [Slot]
        // first slot → its mapping, as the kernel keeps orig_addr and alloc_size in each
        // io_tlb_slot (kernel/dma/swiotlb.c): an array index, not a hash lookup, per bounce
        var mappings: [Mapping?]
        var live = 0
        var cursor = 0
        var used = 0
        var highWater = 0
    }

    /// The physical memory the pool lives in and copies through.
    public let memory: SimulatedMemory
    /// The pool's first byte (slot 0).
    public let start: PhysicalAddress
    /// The number of slots.
    public let slotCount: Int
    private let state: ModelMutex<State>

    /// Reserves `slotCount` slots of RAM in `memory` for a pool, below `limit` (4 GiB by default,
    /// where the kernel places the default pool so 32-bit devices can reach it).
    /// - Throws: `EINVAL` when `slotCount` is not a positive multiple of 128; `ENOMEM` when the
    ///   RAM cannot be found.
    public init(memory: SimulatedMemory, slotCount: Int = 1024, below limit: UInt64? = 0xffff_ffff) throws(DMAError) {
        guard slotCount > 0, slotCount % Self.segmentSlots == 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "a swiotlb pool needs a positive multiple of 128 slots, not \(slotCount)")
        }
        let range = try memory.allocate(
            length: UInt64(slotCount) * Self.slotSize, alignment: Self.slotSize * UInt64(Self.segmentSlots), below: limit)
        self.memory = memory
        self.start = range.start
        self.slotCount = slotCount
        var slots: [Slot] = []
        slots.reserveCapacity(slotCount)
        for i in 0..<slotCount { slots.append(Slot(list: Self.segmentSlots - i % Self.segmentSlots, owner: nil)) }
        self.state = ModelMutex(State(slots: slots, mappings: Array(repeating: nil, count: slotCount)))
    }

    /// The largest mapping the pool accepts for a device (`swiotlb_max_mapping_size`).
    public func maxMappingSize(minAlignMask: UInt64) -> UInt64 {
        let minAlign = minAlignMask == 0 ? 0 : (minAlignMask + Self.slotSize) / Self.slotSize * Self.slotSize
        return Self.slotSize * UInt64(Self.segmentSlots) - minAlign
    }

    /// Whether `address` lies in the pool (`swiotlb_find_pool`).
    public func contains(_ address: PhysicalAddress) -> Bool {
        address >= start && address.rawValue - start.rawValue < UInt64(slotCount) * Self.slotSize
    }

    /// Slots in use now, and the most ever in use.
    public var usage: (used: Int, highWater: Int) { state.withLock { ($0.used, $0.highWater) } }
    /// The number of live bounce mappings.
    public var liveMappings: Int { state.withLock { $0.live } }

    /// Takes slots for `size` bytes of `original` and copies the original in
    /// (`swiotlb_tbl_map_single`).
    /// - Note: About the arguments:
    ///   - minAlignMask: the device's `min_align_mask`.
    ///   - segmentBoundaryMask: the device's segment boundary (`dma_get_seg_boundary`): the slots
    ///     taken never cross a multiple of it + 1 in the device's address space. No boundary
    ///     unless given.
    ///   - dmaOffset: the device's bus offset, which places the pool in its address space
    ///     (`phys_to_dma_unencrypted` of the pool's start).
    /// - Returns: the bounce buffer's physical address.
    /// - Throws: `DMAError/Code/resourceExhausted` (`ENOMEM`) when the pool is full, when no run
    ///   of free slots fits inside the boundary, or the size is beyond
    ///   ``maxMappingSize(minAlignMask:)``; nothing is taken then.
    public func map(_ original: PhysicalRange, minAlignMask: UInt64, segmentBoundaryMask: UInt64 = .max, dmaOffset: UInt64 = 0)
        throws(DMAError) -> PhysicalAddress
    {
        let slotSize = Self.slotSize
        let offset = original.start.rawValue & minAlignMask & (slotSize - 1)  // swiotlb_align_offset
        let allocSize = original.length + offset
        let nslots = Int((allocSize + slotSize - 1) / slotSize)
        var iotlbAlignMask = minAlignMask
        var allocAlignMask: UInt64 = 0
        if iotlbAlignMask == 0 && allocSize >= pageSize { allocAlignMask = pageSize - 1 }
        allocAlignMask |= slotSize - 1
        iotlbAlignMask &= ~allocAlignMask
        let stride = Int(max(allocAlignMask, iotlbAlignMask) >> 11) + 1
        // The boundary in slots (get_max_slots) and where slot 0 sits under it (tbl_dma_addr,
        // the pool's DMA address masked by the boundary), as swiotlb_search_pool_area has them.
        let maxSlots = (segmentBoundaryMask >> 11) + 1
        let tableAddress = (start.rawValue &+ dmaOffset) & segmentBoundaryMask
        let tableSlots = tableAddress / slotSize + (tableAddress % slotSize == 0 ? 0 : 1)  // nr_slots rounds up
        func spansBoundary(_ index: Int) -> Bool {
            // iommu_is_span_boundary: the run's first slot, counted from the last boundary, plus
            // the run's length passes the boundary.
            let offset = (tableSlots &+ UInt64(index)) & (maxSlots &- 1)
            return offset + UInt64(nslots) > maxSlots
        }

        let bounce = try state.withLock { (state) throws(DMAError) -> PhysicalAddress in
            guard nslots <= Self.segmentSlots else {
                throw DMAError(
                    .resourceExhausted, .ENOMEM,
                    "swiotlb: a mapping of \(formatBytes(original.length)) needs \(nslots) slots; at most \(Self.segmentSlots) (swiotlb_max_mapping_size \(formatBytes(maxMappingSize(minAlignMask: minAlignMask))))"
                )
            }
            guard nslots <= slotCount - state.used else { throw self.full(original.length, state) }
            var index = state.cursor
            var checked = 0
            while checked < slotCount {
                let slotAddress = start.rawValue + UInt64(index) * slotSize
                if slotAddress & allocAlignMask != 0
                    || (slotAddress & iotlbAlignMask) != (original.start.rawValue & iotlbAlignMask)
                {
                    index = (index + 1) % slotCount
                    checked += 1
                    continue
                }
                if !spansBoundary(index), state.slots[index].list >= nslots {
                    // found: the run lies inside one segment because `list` never counts past it
                    for i in index..<(index + nslots) {
                        state.slots[i].list = 0
                        state.slots[i].owner = index
                    }
                    var count = 0
                    var i = index - 1
                    while i >= 0, i % Self.segmentSlots != Self.segmentSlots - 1, state.slots[i].list != 0 {
                        count += 1
                        state.slots[i].list = count
                        i -= 1
                    }
                    state.cursor = (index + nslots) % slotCount
                    state.used += nslots
                    state.highWater = max(state.highWater, state.used)
                    let bounce = PhysicalAddress(slotAddress + offset)
                    state.mappings[index] = Mapping(original: original.start, bounce: bounce, size: original.length, slots: nslots)
                    state.live += 1
                    return bounce
                }
                index = (index + stride) % slotCount
                checked += stride
            }
            throw self.full(original.length, state)
        }
        // The map always bounces original → buffer, whatever the direction (swiotlb_tbl_map_single).
        do {
            try memory.copy(from: original.start, to: bounce, count: Int(original.length))
        } catch {
            release(bounce)
            throw error
        }
        return bounce
    }

    private func full(_ size: UInt64, _ state: State) -> DMAError {
        DMAError(
            .resourceExhausted, .ENOMEM,
            "swiotlb buffer is full (sz: \(size) bytes), total \(slotCount) (slots), used \(state.used) (slots)")
    }

    /// Copies between the original and the bounce buffer for `length` bytes at `bounce`
    /// (`swiotlb_bounce`); `toDevice` copies original → bounce.
    private func bounce(_ address: PhysicalAddress, length: UInt64, toDevice: Bool) throws(DMAError) {
        let (original, count) = try state.withLock { (state) throws(DMAError) -> (PhysicalAddress, UInt64) in
            guard let (_, mapping) = Self.mapping(containing: address, state, start, slotCount) else {
                throw DMAError(.notMapped, .EINVAL, "swiotlb: \(address) is not a live bounce buffer")
            }
            let into = address.rawValue - mapping.bounce.rawValue
            // swiotlb_bounce clamps to what is left of the allocation ("Buffer overflow detected")
            return (PhysicalAddress(mapping.original.rawValue + into), min(length, mapping.size - into))
        }
        guard count > 0 else { return }
        if toDevice {
            try memory.copy(from: original, to: address, count: Int(count))
        } else {
            try memory.copy(from: address, to: original, count: Int(count))
        }
    }

    private static func mapping(containing address: PhysicalAddress, _ state: State, _ start: PhysicalAddress, _ slotCount: Int)
        -> (Int, Mapping)?
    {
        guard address >= start else { return nil }
        let slot = Int((address.rawValue - start.rawValue) / slotSize)
        guard slot < slotCount, let owner = state.slots[slot].owner, let mapping = state.mappings[owner],
            address >= mapping.bounce, address.rawValue - mapping.bounce.rawValue < mapping.size
        else { return nil }
        return (owner, mapping)
    }

    /// The original address behind a bounce address, if it is live.
    public func original(of address: PhysicalAddress) -> PhysicalAddress? {
        state.withLock { state in
            Self.mapping(containing: address, state, start, slotCount).map {
                PhysicalAddress($0.1.original.rawValue + (address.rawValue - $0.1.bounce.rawValue))
            }
        }
    }

    /// `swiotlb_sync_single_for_device`: copies original → bounce for `TO_DEVICE` and
    /// `BIDIRECTIONAL`; nothing for `FROM_DEVICE`.
    /// - Throws: `EINVAL` when `address` is not a live bounce buffer.
    public func syncForDevice(_ address: PhysicalAddress, length: UInt64, direction: DMADirection) throws(DMAError) {
        guard direction == .toDevice || direction == .bidirectional else {
            _ = try checkLive(address)
            return
        }
        try bounce(address, length: length, toDevice: true)
    }

    /// `swiotlb_sync_single_for_cpu`: copies bounce → original for `FROM_DEVICE` and
    /// `BIDIRECTIONAL`; nothing for `TO_DEVICE`.
    /// - Throws: `EINVAL` when `address` is not a live bounce buffer.
    public func syncForCPU(_ address: PhysicalAddress, length: UInt64, direction: DMADirection) throws(DMAError) {
        guard direction == .fromDevice || direction == .bidirectional else {
            _ = try checkLive(address)
            return
        }
        try bounce(address, length: length, toDevice: false)
    }

    /// `swiotlb_tbl_unmap_single`: copies back for `FROM_DEVICE`/`BIDIRECTIONAL` unless
    /// `SKIP_CPU_SYNC`, then frees the slots.
    /// - Throws: `EINVAL` when `address` is not the start of a live bounce buffer (nothing freed).
    public func unmap(_ address: PhysicalAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes)
        throws(DMAError)
    {
        let mapping = try checkLive(address)
        guard mapping.bounce == address else {
            throw DMAError(.notMapped, .EINVAL, "swiotlb: \(address) is inside a bounce buffer that starts at \(mapping.bounce)")
        }
        if !attributes.contains(.skipCPUSync), direction == .fromDevice || direction == .bidirectional {
            try bounce(address, length: length, toDevice: false)
        }
        release(address)
    }

    private func checkLive(_ address: PhysicalAddress) throws(DMAError) -> Mapping {
        guard let found = state.withLock({ Self.mapping(containing: address, $0, start, slotCount) }) else {
            throw DMAError(.notMapped, .EINVAL, "swiotlb: \(address) is not a live bounce buffer")
        }
        return found.1
    }

    /// Frees the slots of the mapping at `address` (`swiotlb_release_slots`).
    private func release(_ address: PhysicalAddress) {
        state.withLock { state in
            guard let (index, mapping) = Self.mapping(containing: address, state, start, slotCount) else { return }
            let end = index + mapping.slots
            var count = end < slotCount && end % Self.segmentSlots != 0 ? state.slots[end].list : 0
            for i in stride(from: end - 1, through: index, by: -1) {
                count += 1
                state.slots[i].list = count
                state.slots[i].owner = nil
            }
            var i = index - 1
            while i >= 0, i % Self.segmentSlots != Self.segmentSlots - 1, state.slots[i].list != 0 {
                count += 1
                state.slots[i].list = count
                i -= 1
            }
            state.mappings[index] = nil
            state.live -= 1
            state.used -= mapping.slots
        }
    }
}

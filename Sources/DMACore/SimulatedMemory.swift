import Synchronization

/// What backs a region of the simulated physical address space.
public enum MemoryRegionKind: Hashable, Sendable, CustomStringConvertible {
    /// System RAM.
    case ram
    /// Device memory behind a PCI BAR (GPU VRAM, a VFIO BAR, an NVMe CMB), owned by a provider.
    case bar(P2PProvider)

    public var description: String {
        switch self {
        case .ram: "RAM"
        case .bar(let provider): "BAR \(provider.owner)#\(provider.barIndex)"
        }
    }
}

/// One region of the simulated physical address space.
public struct MemoryRegion: Hashable, Sendable, CustomStringConvertible {
    /// A name for traces ("RAM high", "gpu0 VRAM").
    public let name: String
    /// What backs it.
    public let kind: MemoryRegionKind
    /// Where it sits.
    public let range: PhysicalRange

    public var description: String { "\(name): \(kind) \(range)" }
}

/// A sparse byte store standing for the machine's physical memory: RAM and device BARs, addressed
/// by CPU physical address, so every rule of the model is checked with real bytes.
///
/// Pages are materialised (zero-filled) on first write, in chunks of 64 KiB so that a copy is one
/// `memcpy` per chunk; reading a page never written gives zeros.
/// An access to an address that no region backs is a bus error, as a master abort would be.
/// RAM regions also carry a simple allocator so that exporters, bounce pools and tests can take
/// pages. It is a reference type because it has identity: every device of one machine sees the same
/// memory. All state is behind one `Mutex`, so it is safe to use from many tasks.
public final class SimulatedMemory: Sendable {
    private struct State {
        var regions: [MemoryRegion] = []  // sorted by start, never overlapping
        var spans: [Span] = []  // regions[i].range as plain bounds, for the search of every access
        let store = ByteStore()
        var free: [PhysicalAddress: [PhysicalRange]] = [:]  // RAM region start → free extents, sorted
        var disabled: Set<PhysicalAddress> = []  // BAR regions whose memory decoding is off
    }

    private let state = ModelMutex(State())

    /// A region's first and last byte, plain integers (no overflow checks to recompute `last`).
    private struct Span {
        var start: UInt64
        var last: UInt64
    }

    /// Creates an empty physical address space; add regions with ``addRegion(name:kind:range:)``.
    public init() {}

    /// Adds a region.
    /// - Throws: `EINVAL` when it overlaps an existing region; `EINVAL` when a BAR region's range
    ///   is not its provider's CPU range; `EINVAL` when a RAM region is not page-aligned.
    public func addRegion(name: String, kind: MemoryRegionKind, range: PhysicalRange) throws(DMAError) {
        if case .bar(let provider) = kind, provider.cpuRange != range {
            throw DMAError(.invalidArgument, .EINVAL, "region \(name): \(range) is not the provider's BAR \(provider.cpuRange)")
        }
        if kind == .ram, !range.start.isPageAligned || range.length % pageSize != 0 {
            throw DMAError(.invalidArgument, .EINVAL, "RAM region \(name) \(range) is not page-aligned")
        }
        try state.withLock { (state) throws(DMAError) in
            if let clash = state.regions.first(where: { $0.range.overlaps(range) }) {
                throw DMAError(.invalidArgument, .EINVAL, "region \(name) \(range) overlaps \(clash)")
            }
            let region = MemoryRegion(name: name, kind: kind, range: range)
            let index = state.regions.firstIndex { $0.range.start > range.start } ?? state.regions.endIndex
            state.regions.insert(region, at: index)
            state.spans.insert(Span(start: range.start.rawValue, last: range.last.rawValue), at: index)
            if kind == .ram { state.free[range.start] = [range] }
        }
    }

    /// Adds RAM at `start` of `length` bytes. See ``addRegion(name:kind:range:)``.
    public func addRAM(name: String, start: PhysicalAddress, length: UInt64) throws(DMAError) {
        try addRegion(name: name, kind: .ram, range: try PhysicalRange(start: start, length: length))
    }

    /// Adds the BAR of a provider as device memory. See ``addRegion(name:kind:range:)``.
    public func addBAR(name: String, provider: P2PProvider) throws(DMAError) {
        try addRegion(name: name, kind: .bar(provider), range: provider.cpuRange)
    }

    /// Turns a BAR's memory decoding on or off (`PCI_COMMAND_MEMORY` of its function): while off,
    /// every access to it is a bus error, as a device reset, a cleared memory-enable bit or a
    /// low-power state makes it on hardware.
    /// - Throws: `EINVAL` when `provider`'s BAR is not a region of this memory.
    public func setDecoding(_ provider: P2PProvider, enabled: Bool) throws(DMAError) {
        try state.withLock { (state) throws(DMAError) in
            guard let region = Self.find(provider.cpuRange.start, in: state.regions), region.kind == .bar(provider) else {
                throw DMAError(.invalidArgument, .EINVAL, "\(provider) is not a BAR region of this memory")
            }
            if enabled { state.disabled.remove(region.range.start) } else { state.disabled.insert(region.range.start) }
        }
    }

    /// Whether a BAR decodes (see ``setDecoding(_:enabled:)``).
    public func isDecoding(_ provider: P2PProvider) -> Bool {
        state.withLock { !$0.disabled.contains(provider.cpuRange.start) }
    }

    /// Every region, sorted by address.
    public var regions: [MemoryRegion] { state.withLock { $0.regions } }

    /// The region that holds `address`, if any.
    /// - Complexity: O(log n) in the number of regions.
    public func region(containing address: PhysicalAddress) -> MemoryRegion? {
        state.withLock { Self.find(address, in: $0.regions) }
    }

    /// The BAR region whose bus window holds `address`, if any: where a device's bus-address
    /// peer-to-peer access lands.
    /// - Complexity: O(n) in the number of regions.
    public func barRegion(containingBusAddress address: DMAAddress) -> MemoryRegion? {
        state.withLock { state in
            state.regions.first { region in
                if case .bar(let provider) = region.kind { return provider.physicalAddress(ofBus: address) != nil }
                return false
            }
        }
    }

    /// Whether every byte of `range` is backed by one region of the given kind (`nil`: any kind).
    public func isBacked(_ range: PhysicalRange, ram: Bool? = nil) -> Bool {
        state.withLock { state in
            guard let region = Self.find(range.start, in: state.regions), region.range.contains(range) else { return false }
            guard let ram else { return true }
            return (region.kind == .ram) == ram
        }
    }

    private static func find(_ address: PhysicalAddress, in regions: [MemoryRegion]) -> MemoryRegion? {
        let low = regions.partitioningIndex { $0.range.last >= address }
        return low < regions.count && regions[low].range.contains(address) ? regions[low] : nil
    }

    /// The index of the region holding `address`, searching the plain `spans` (no region copied):
    /// a scan for the few regions of a machine, a binary search beyond eight.
    private static func findIndex(_ address: UInt64, in spans: [Span]) -> Int? {
        if spans.count <= 8 {
            for index in spans.indices where spans[index].start <= address && address <= spans[index].last { return index }
            return nil
        }
        let low = spans.partitioningIndex { $0.last >= address }
        return low < spans.count && spans[low].start <= address ? low : nil
    }

    private static func checkBacked(_ state: State, _ address: PhysicalAddress, _ count: Int) throws(DMAError) {
        guard count > 0 else { return }
        let (last, wraps) = address.rawValue.addingReportingOverflow(UInt64(count) - 1)
        if wraps { _ = try PhysicalRange(start: address, length: UInt64(count)) }  // throws its EOVERFLOW
        var cursor = address.rawValue
        while true {
            guard let index = findIndex(cursor, in: state.spans) else {
                throw DMAError(.busError, .EIO, "physical address \(PhysicalAddress(cursor)) is not backed by RAM or a BAR")
            }
            let span = state.spans[index]
            if !state.disabled.isEmpty && state.disabled.contains(PhysicalAddress(span.start)) {
                throw DMAError(
                    .busError, .EIO,
                    "\(state.regions[index].name) at \(PhysicalAddress(cursor)) does not decode: memory decoding of its BAR is off (revoked, reset or in low power)")
            }
            if span.last >= last { return }
            cursor = span.last + 1
        }
    }

    /// Reads `count` bytes at `address` (as the CPU, or as a device once its address is resolved).
    /// - Throws: ``DMAError/Code/busError`` (`EIO`) when any byte is not backed; `EOVERFLOW` when
    ///   the range wraps.
    public func read(_ address: PhysicalAddress, count: Int) throws(DMAError) -> [UInt8] {
        try state.withLock { (state) throws(DMAError) -> [UInt8] in
            try Self.checkBacked(state, address, count)
            return Self.read(state, address.rawValue, count)
        }
    }

    /// Writes `bytes` at `address`.
    /// - Throws: as ``read(_:count:)``; nothing is written when it throws.
    public func write(_ bytes: [UInt8], at address: PhysicalAddress) throws(DMAError) {
        try state.withLock { (state) throws(DMAError) in
            try Self.checkBacked(state, address, bytes.count)
            Self.write(&state, bytes[...], address.rawValue)
        }
    }

    /// Copies `count` bytes from `source` to `destination` (a bounce copy, a migration).
    /// - Throws: as ``read(_:count:)`` for either side; nothing is written when it throws.
    public func copy(from source: PhysicalAddress, to destination: PhysicalAddress, count: Int) throws(DMAError) {
        try state.withLock { (state) throws(DMAError) in
            try Self.checkBacked(state, source, count)
            try Self.checkBacked(state, destination, count)
            let (low, high) = source < destination ? (source.rawValue, destination.rawValue) : (destination.rawValue, source.rawValue)
            if high - low < UInt64(count) {
                // Overlapping: read everything first, as a copy through a buffer does.
                let bytes = Self.read(state, source.rawValue, count)
                Self.write(&state, bytes[...], destination.rawValue)
            } else {
                // One memcpy per 64 KiB chunk piece, straight from store to store.
                state.store.copy(from: source.rawValue, to: destination.rawValue, count: count)
            }
        }
    }

    /// Fills `count` bytes at `address` with `byte`.
    /// - Throws: as ``write(_:at:)``.
    public func fill(_ address: PhysicalAddress, count: Int, with byte: UInt8) throws(DMAError) {
        try fill(address, count: count, with: .byte(byte), patternOffset: 0)
    }

    /// Makes `count` bytes at `address` hold `pattern` from `patternOffset` on (the offset of the
    /// first byte in the buffer the pattern fills). Whole pages keep the pattern, not its bytes:
    /// they are generated when read, compared without being generated
    /// (``firstMismatch(_:count:with:patternOffset:)``), and stored only once written to.
    /// - Throws: as ``write(_:at:)``; nothing is written when it throws.
    /// - Complexity: O(pages) in time; O(1) host memory per whole page.
    public func fill(_ address: PhysicalAddress, count: Int, with pattern: BytePattern, patternOffset: UInt64) throws(DMAError) {
        try state.withLock { (state) throws(DMAError) in
            try Self.checkBacked(state, address, count)
            guard count > 0 else { return }
            state.store.fill(address.rawValue, count, with: pattern, patternOffset: patternOffset)
        }
    }

    /// Compares `count` bytes at `address` with `pattern` from `patternOffset` on, piece by piece
    /// (a read of any size holds at most a page of host memory): the index of the first byte that
    /// differs and the byte found there, or nil when every byte matches.
    /// - Throws: as ``read(_:count:)``.
    /// - Complexity: O(pages); a page never written, or filled with the same pattern at the same
    ///   offset, is compared without generating its bytes.
    public func firstMismatch(_ address: PhysicalAddress, count: Int, with pattern: BytePattern, patternOffset: UInt64)
        throws(DMAError) -> (index: Int, found: UInt8)?
    {
        try state.withLock { (state) throws(DMAError) -> (index: Int, found: UInt8)? in
            try Self.checkBacked(state, address, count)
            guard count > 0 else { return nil }
            return state.store.firstMismatch(address.rawValue, count, with: pattern, patternOffset: patternOffset)
        }
    }

    /// Checks that every byte of `count` bytes at `address` is backed and decoding, as a read
    /// would, without moving a byte (a read whose data nobody looks at).
    /// - Throws: as ``read(_:count:)``.
    public func checkReadable(_ address: PhysicalAddress, count: Int) throws(DMAError) {
        try state.withLock { (state) throws(DMAError) in try Self.checkBacked(state, address, count) }
    }

    /// Bytes of RAM not allocated, in every RAM region.
    public var freeRAM: UInt64 {
        state.withLock { state in
            state.free.values.reduce(0) { total, extents in total + extents.reduce(0) { $0 + $1.length } }
        }
    }

    private static func read(_ state: State, _ address: UInt64, _ count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            state.store.read(address, count, into: buffer.baseAddress!)
            initialized = count
        }
    }

    private static func write(_ state: inout State, _ bytes: ArraySlice<UInt8>, _ address: UInt64) {
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { state.store.write(address, $0.count, from: $0.baseAddress!) }
    }

    /// The number of 4 KiB pages that hold bytes (for leak and footprint checks).
    public var materialisedPages: Int { state.withLock { $0.store.pageCount } }
    /// The host memory the byte store holds: 64 KiB per chunk that has a materialised page (a
    /// chunk is given back when its last page is freed).
    public var storeBytes: Int { state.withLock { $0.store.chunkTotal * ByteStore.chunkSize } }

    // MARK: RAM allocation

    /// Takes `length` bytes of contiguous RAM, aligned to `alignment`, wholly below `limit` when one
    /// is given (for a device's DMA mask), preferring the highest free address (so that narrow-mask
    /// devices meet memory they must bounce, as on a large machine).
    /// - Throws: `EINVAL` for a zero length or an alignment that is not a power of two of at least a
    ///   page; ``DMAError/Code/resourceExhausted`` (`ENOMEM`) when no free extent fits.
    /// - Complexity: O(regions + free extents).
    public func allocate(length: UInt64, alignment: UInt64 = pageSize, below limit: UInt64? = nil) throws(DMAError)
        -> PhysicalRange
    {
        guard length > 0, alignment >= pageSize, alignment & (alignment - 1) == 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "cannot allocate \(length) bytes aligned to \(alignment)")
        }
        let size = (length + pageSize - 1) / pageSize * pageSize
        return try state.withLock { (state) throws(DMAError) -> PhysicalRange in
            for region in state.regions.reversed() where region.kind == .ram {
                guard var extents = state.free[region.range.start] else { continue }
                for index in extents.indices.reversed() {
                    let extent = extents[index]
                    var top = extent.last.rawValue
                    if let limit { top = min(top, limit) }
                    guard top >= extent.start.rawValue, top - extent.start.rawValue + 1 >= size else { continue }
                    let start = (top + 1 - size) / alignment * alignment
                    guard start >= extent.start.rawValue else { continue }
                    let taken = try PhysicalRange(start: PhysicalAddress(start), length: size)
                    extents.remove(at: index)
                    if start > extent.start.rawValue {
                        extents.append(try PhysicalRange(start: extent.start, length: start - extent.start.rawValue))
                    }
                    if taken.last < extent.last {
                        extents.append(
                            try PhysicalRange(
                                start: PhysicalAddress(taken.last.rawValue + 1),
                                length: extent.last.rawValue - taken.last.rawValue))
                    }
                    extents.sort { $0.start < $1.start }
                    state.free[region.range.start] = extents
                    return taken
                }
            }
            throw DMAError(
                .resourceExhausted, .ENOMEM,
                "no free RAM for \(formatBytes(size))" + (limit.map { " below \(hex($0))" } ?? ""))
        }
    }

    /// Gives RAM back. Its bytes are dropped (a later allocation reads zeros).
    /// - Throws: `EINVAL` when the range is not allocated RAM (a double free, or a BAR).
    public func free(_ range: PhysicalRange) throws(DMAError) {
        try state.withLock { (state) throws(DMAError) in
            guard let region = Self.find(range.start, in: state.regions), region.kind == .ram,
                region.range.contains(range), var extents = state.free[region.range.start]
            else {
                throw DMAError(.invalidArgument, .EINVAL, "\(range) is not allocated RAM")
            }
            if extents.contains(where: { $0.overlaps(range) }) {
                throw DMAError(.invalidArgument, .EINVAL, "\(range) is already free (double free)")
            }
            extents.append(range)
            extents.sort { $0.start < $1.start }
            state.free[region.range.start] = extents.mergingAdjacent()
            state.store.drop(pages: range.start.pfn, through: range.last.pfn)
        }
    }

    /// Bytes of RAM currently allocated (for leak checks).
    public var allocatedRAM: UInt64 {
        state.withLock { state in
            var total: UInt64 = 0
            for region in state.regions where region.kind == .ram {
                let free = state.free[region.range.start]?.reduce(0) { $0 + $1.length } ?? 0
                total += region.range.length - free
            }
            return total
        }
    }
}

import DMACore
import Synchronization

/// A simple allocator of a GPU's VRAM: contiguous ranges of its VRAM BAR, first fit.
public final class VRAMHeap: Sendable {
    /// The VRAM BAR.
    public let provider: P2PProvider
    private let free: ModelMutex<[PhysicalRange]>

    /// A heap over the whole BAR.
    public init(provider: P2PProvider) {
        self.provider = provider
        self.free = ModelMutex([provider.cpuRange])
    }

    /// Takes `size` bytes (page-aligned).
    /// - Throws: `ENOMEM` when no free range is large enough.
    public func allocate(_ size: UInt64) throws(DMAError) -> PhysicalRange {
        try free.withLock { (free) throws(DMAError) -> PhysicalRange in
            guard let index = free.firstIndex(where: { $0.length >= size }) else {
                throw DMAError(.resourceExhausted, .ENOMEM, "VRAM of \(provider.owner) has no free \(formatBytes(size))")
            }
            let range = free[index]
            let taken = try PhysicalRange(start: range.start, length: size)
            if range.length == size {
                free.remove(at: index)
            } else {
                free[index] = try PhysicalRange(start: PhysicalAddress(range.start.rawValue + size), length: range.length - size)
            }
            return taken
        }
    }

    /// Gives a range back.
    public func release(_ range: PhysicalRange) {
        free.withLock { free in
            free.append(range)
            free.sort { $0.start < $1.start }
            free = free.mergingAdjacent()
        }
    }

    /// Free bytes.
    public var freeBytes: UInt64 { free.withLock { $0.reduce(0) { $0 + $1.length } } }
}

import DMABuf
import DMACore
import DMAMapping
import Synchronization

/// Maps a list for an attachment's device and builds the mapping record, counting bounce copies.
func mapForDevice(
    _ list: ScatterList, _ attachment: DMABufAttachment, _ direction: DMADirection, placement: DMABufPlacement,
    migratedBytes: UInt64 = 0
) throws(DMAError) -> DMABufMapping {
    let device = attachment.device
    let table = try device.mapScatterList(list, direction: direction)
    var bounced: UInt64 = 0
    if let pool = device.swiotlb {
        for segment in table.segments where !segment.isBusAddress
            && pool.contains(PhysicalAddress(segment.address.rawValue &- device.dmaOffset))
        {
            bounced += segment.length
        }
    }
    let mmio = table.p2pMapType == .throughHostBridge ? attachment.buffer.rules.mmioMapCall : nil
    return DMABufMapping(table: table, placement: placement, bouncedBytes: bounced, migratedBytes: migratedBytes, mmioMapCall: mmio)
}

/// Takes `size` bytes of RAM as single pages (scattered, as the system heap and a GPU's GTT
/// placement get them), all or nothing.
func allocateSystemPages(_ memory: SimulatedMemory, size: UInt64) throws(DMAError) -> [PhysicalRange] {
    // Refused before a page is taken (or a list of 2^28 entries reserved for a 1 TiB request).
    let free = memory.freeRAM
    guard size <= free else {
        throw DMAError(
            .resourceExhausted, .ENOMEM, "cannot allocate \(formatBytes(size)) of system pages: \(formatBytes(free)) of RAM is free")
    }
    var pages: [PhysicalRange] = []
    let count = Int(size / pageSize)
    pages.reserveCapacity(count)
    do {
        for _ in 0..<count { pages.append(try memory.allocate(length: pageSize)) }
    } catch {
        for page in pages { try? memory.free(page) }
        throw error
    }
    return pages
}

/// Copies the bytes of `from` ranges into `to` ranges of the same total length, in order.
func copyRanges(_ memory: SimulatedMemory, from: [PhysicalRange], to: [PhysicalRange]) throws(DMAError) {
    var source = from.makeIterator()
    var current = source.next()
    var offsetInCurrent: UInt64 = 0
    for destination in to {
        var done: UInt64 = 0
        while done < destination.length, let range = current {
            let chunk = min(destination.length - done, range.length - offsetInCurrent)
            try memory.copy(
                from: PhysicalAddress(range.start.rawValue + offsetInCurrent),
                to: PhysicalAddress(destination.start.rawValue + done), count: Int(chunk))
            done += chunk
            offsetInCurrent += chunk
            if offsetInCurrent == range.length {
                current = source.next()
                offsetInCurrent = 0
            }
        }
    }
}

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
            var merged: [PhysicalRange] = []
            for r in free {
                if let last = merged.last, last.last.rawValue + 1 == r.start.rawValue,
                    let joined = try? PhysicalRange(start: last.start, length: last.length + r.length)
                {
                    merged[merged.count - 1] = joined
                } else {
                    merged.append(r)
                }
            }
            free = merged
        }
    }

    /// Free bytes.
    public var freeBytes: UInt64 { free.withLock { $0.reduce(0) { $0 + $1.length } } }
}

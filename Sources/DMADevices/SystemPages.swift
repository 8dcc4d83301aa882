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

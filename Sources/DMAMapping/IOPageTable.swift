import DMACore

/// The page table of an ``IOMMUDomain``, kept the way the kernel's IOMMU page tables are
/// (`drivers/iommu/io-pgtable-arm.c`, the second-level tables of `drivers/iommu/intel/`): a radix
/// tree whose last level is a table of 512 page entries, one 4 KiB table covering 2 MiB of IOVA.
///
/// The upper levels are one dictionary from the 2 MiB index to its last-level table, so a page
/// costs an array store, not a hash insert, and a scatter-list is mapped table by table. A
/// last-level table is freed when its last entry is cleared (as `io-pgtable` frees empty tables on
/// unmap). Not thread-safe: the domain keeps it behind its lock.
struct IOPageTable {
    /// Entries per last-level table (`ARM_LPAE_PTES_PER_TABLE` for 4 KiB granules).
    static let entriesPerTable = 512

    /// One page-table entry: the physical page address in bits 12…63, and the flags below it.
    struct Entry: Equatable {
        var rawValue: UInt64

        static let present: UInt64 = 1 << 0
        static let synced: UInt64 = 1 << 4
        /// `Protection` sits in bits 1…3.
        static let protectionShift: UInt64 = 1

        init(rawValue: UInt64) { self.rawValue = rawValue }

        init(physicalPage: UInt64, protection: IOMMUDomain.Protection, synced: Bool) {
            rawValue = physicalPage | Self.present | UInt64(protection.rawValue) << Self.protectionShift
                | (synced ? Self.synced : 0)
        }

        var isPresent: Bool { rawValue & Self.present != 0 }
        var isSynced: Bool { rawValue & Self.synced != 0 }
        var physicalPage: UInt64 { rawValue & ~(IOMMUDomain.granule - 1) }
        var protection: IOMMUDomain.Protection {
            IOMMUDomain.Protection(rawValue: UInt8(truncatingIfNeeded: (rawValue >> Self.protectionShift) & 0x7))
        }
    }

    /// A last-level table: 512 entries, and how many of them are present.
    final class LeafTable {
        let entries: UnsafeMutablePointer<UInt64>
        var present = 0

        init() {
            entries = .allocate(capacity: IOPageTable.entriesPerTable)
            entries.initialize(repeating: 0, count: IOPageTable.entriesPerTable)
        }

        deinit { entries.deallocate() }
    }

    private var tables: [UInt64: LeafTable] = [:]  // IOVA pfn / 512 → its last-level table
    /// The number of last-level tables.
    var tableCount: Int { tables.count }
    /// The number of present entries.
    private(set) var presentCount = 0

    /// The entry for IOVA page `pfn`, if present.
    func entry(_ pfn: UInt64) -> Entry? {
        guard let table = tables[pfn / UInt64(Self.entriesPerTable)] else { return nil }
        let entry = Entry(rawValue: table.entries[Int(pfn % UInt64(Self.entriesPerTable))])
        return entry.isPresent ? entry : nil
    }

    /// Calls `body` with each last-level table piece of `count` pages from `first`: the table (nil
    /// when absent and `create` is false), the index of the first entry, the number of entries,
    /// and how many pages came before the piece. Stops when `body` returns false.
    private mutating func forEachPiece(
        _ first: UInt64, _ count: UInt64, create: Bool, _ body: (LeafTable?, Int, Int, UInt64) -> Bool
    ) {
        var done: UInt64 = 0
        let perTable = UInt64(Self.entriesPerTable)
        while done < count {
            let pfn = first + done
            let index = Int(pfn % perTable)
            let n = Int(min(count - done, perTable - UInt64(index)))
            var table = tables[pfn / perTable]
            if table == nil && create {
                let created = LeafTable()
                tables[pfn / perTable] = created
                table = created
            }
            guard body(table, index, n, done) else { return }
            done += UInt64(n)
        }
    }

    /// The first page in `count` pages from `first` that is present, if any.
    mutating func firstPresent(_ first: UInt64, count: UInt64) -> UInt64? {
        var found: UInt64?
        forEachPiece(first, count, create: false) { table, index, n, before in
            guard let table else { return true }
            for i in 0..<n where table.entries[index + i] & Entry.present != 0 {
                found = first + before + UInt64(i)
                return false
            }
            return true
        }
        return found
    }

    /// Sets `count` entries from IOVA page `first` to consecutive physical pages from
    /// `physicalPage`. The entries must be absent (checked by the caller with ``firstPresent``).
    mutating func set(_ first: UInt64, count: UInt64, physicalPage: UInt64, protection: IOMMUDomain.Protection, synced: Bool) {
        let flags = Entry(physicalPage: 0, protection: protection, synced: synced).rawValue
        let granule = IOMMUDomain.granule
        forEachPiece(first, count, create: true) { table, index, n, before in
            let table = table!
            var page = physicalPage + before * granule
            for i in index..<(index + n) {
                table.entries[i] = page | flags
                page += granule
            }
            table.present += n
            return true
        }
        presentCount += Int(count)
    }

    /// Clears the present entries among `count` pages from `first`, freeing tables that become
    /// empty. Returns how many were present.
    @discardableResult
    mutating func clear(_ first: UInt64, count: UInt64) -> Int {
        var cleared = 0
        var emptied: [UInt64] = []
        let perTable = UInt64(Self.entriesPerTable)
        forEachPiece(first, count, create: false) { table, index, n, before in
            guard let table else { return true }
            var here = 0
            for i in index..<(index + n) where table.entries[i] & Entry.present != 0 {
                table.entries[i] = 0
                here += 1
            }
            table.present -= here
            cleared += here
            if table.present == 0 { emptied.append((first + before) / perTable) }
            return true
        }
        for key in emptied { tables[key] = nil }
        presentCount -= cleared
        return cleared
    }

    /// Marks the present entries among `count` pages from `first` synced.
    mutating func markSynced(_ first: UInt64, count: UInt64) {
        forEachPiece(first, count, create: false) { table, index, n, _ in
            guard let table else { return true }
            for i in index..<(index + n) where table.entries[i] & Entry.present != 0 {
                table.entries[i] |= Entry.synced
            }
            return true
        }
    }
}

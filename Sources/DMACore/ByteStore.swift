/// The bytes behind a ``SimulatedMemory``: a sparse store of 64 KiB chunks, each allocated
/// (zero-filled) on the first write into it, with a bit per 4 KiB page saying whether the page has
/// been written since it was last freed.
///
/// Chunks of 16 pages rather than single pages keep a bounce copy or a DMA transfer to one
/// `memcpy` per 64 KiB (a copy of a page costs one lookup per side, not one per page). Bytes of a
/// chunk never written, and of a page freed, read as zeros. Not thread-safe: the memory keeps it
/// behind its lock. Ranges passed in are known to be backed and not to wrap.
final class ByteStore {
    static let chunkSize = 64 * 1024
    static let pagesPerChunk = chunkSize / Int(pageSize)

    // The chunks, in an open-addressing hash table with linear probing keyed by chunk index
    // (address / 64 KiB). A bounce copy looks a chunk up on each side, so the lookup is a
    // multiplicative hash and a probe, not a Dictionary's SipHash; empty slots hold `emptyKey`
    // (no chunk index reaches it: addresses are 64-bit, chunk indices at most 48-bit).
    private static let emptyKey = UInt64.max
    private var capacity = 64  // a power of two
    private var shift: UInt64 = 64 - 6  // 64 - log2(capacity)
    private var keys: UnsafeMutablePointer<UInt64>
    private var chunkBytes: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private var chunkPages: UnsafeMutablePointer<UInt16>  // bit i: page i of the chunk holds bytes
    private var chunkCount = 0
    /// Pages that hold bytes.
    private(set) var pageCount = 0

    init() {
        (keys, chunkBytes, chunkPages) = Self.emptyTable(capacity)
    }

    /// The three arrays of an empty table of `capacity` slots.
    private static func emptyTable(_ capacity: Int) -> (
        UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<UnsafeMutableRawPointer?>, UnsafeMutablePointer<UInt16>
    ) {
        let keys = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity)
        keys.initialize(repeating: emptyKey, count: capacity)
        let bytes = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: capacity)
        bytes.initialize(repeating: nil, count: capacity)
        let pages = UnsafeMutablePointer<UInt16>.allocate(capacity: capacity)
        pages.initialize(repeating: 0, count: capacity)
        return (keys, bytes, pages)
    }

    deinit {
        for slot in 0..<capacity { chunkBytes[slot]?.deallocate() }
        keys.deallocate()
        chunkBytes.deallocate()
        chunkPages.deallocate()
    }

    /// Fibonacci hashing: the top bits of the key times 2^64 / φ.
    @inline(__always)
    static func home(_ key: UInt64, shift: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9e37_79b9_7f4a_7c15) >> shift) }

    @inline(__always)
    private func home(_ key: UInt64) -> Int { Self.home(key, shift: shift) }

    /// The table slot of chunk `key`, if the chunk exists.
    @inline(__always)
    private func slot(of key: UInt64) -> Int? {
        var slot = home(key)
        while true {
            let found = keys[slot]
            if found == key { return slot }
            if found == Self.emptyKey { return nil }
            slot = (slot + 1) & (capacity - 1)
        }
    }

    /// The bytes of chunk `key`, if it exists.
    private func chunk(_ key: UInt64) -> UnsafeMutableRawPointer? { slot(of: key).flatMap { chunkBytes[$0] } }

    /// Adds chunk `key` (absent) with `bytes` and `pages`, growing the table at 3/4 full.
    private func insert(_ key: UInt64, bytes: UnsafeMutableRawPointer, pages: UInt16) {
        if (chunkCount + 1) * 4 > capacity * 3 { grow() }
        var slot = home(key)
        while keys[slot] != Self.emptyKey { slot = (slot + 1) & (capacity - 1) }
        keys[slot] = key
        chunkBytes[slot] = bytes
        chunkPages[slot] = pages
        chunkCount += 1
    }

    private func grow() {
        let (oldCapacity, oldKeys, oldBytes, oldPages) = (capacity, keys, chunkBytes, chunkPages)
        capacity *= 2
        shift -= 1
        (keys, chunkBytes, chunkPages) = Self.emptyTable(capacity)
        chunkCount = 0
        for slot in 0..<oldCapacity where oldKeys[slot] != Self.emptyKey {
            insert(oldKeys[slot], bytes: oldBytes[slot]!, pages: oldPages[slot])
        }
        oldKeys.deallocate()
        oldBytes.deallocate()
        oldPages.deallocate()
    }

    /// Removes the chunk in `slot` (its bytes already freed), shifting later entries of the probe
    /// run back so that every key stays reachable from its home slot.
    private func remove(at slot: Int) {
        var hole = slot
        var next = slot
        while true {
            next = (next + 1) & (capacity - 1)
            let key = keys[next]
            if key == Self.emptyKey { break }
            let home = home(key)
            // The entry at `next` may fill the hole unless its home lies cyclically in (hole, next].
            let staysPut = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next)
            if staysPut { continue }
            keys[hole] = key
            chunkBytes[hole] = chunkBytes[next]
            chunkPages[hole] = chunkPages[next]
            hole = next
        }
        keys[hole] = Self.emptyKey
        chunkBytes[hole] = nil
        chunkPages[hole] = 0
        chunkCount -= 1
    }

    /// The number of chunks allocated.
    var chunkTotal: Int { chunkCount }

    /// Calls `body` for each piece of `count` bytes at `address` that lies in one chunk: the chunk
    /// index, the offset in the chunk, the piece's length and the bytes done before it.
    private static func pieces(_ address: UInt64, _ count: Int, _ body: (UInt64, Int, Int, Int) -> Void) {
        var done = 0
        while done < count {
            let at = address + UInt64(done)
            let offset = Int(at % UInt64(chunkSize))
            let n = min(count - done, chunkSize - offset)
            body(at / UInt64(chunkSize), offset, n, done)
            done += n
        }
    }

    /// The page bits of `n` bytes at `offset` in a chunk.
    private static func pageBits(_ offset: Int, _ n: Int) -> UInt16 {
        let first = offset / Int(pageSize)
        let last = (offset + n - 1) / Int(pageSize)
        return UInt16(truncatingIfNeeded: ((1 << (last - first + 1)) - 1) << first)
    }

    /// The chunk at `index`, allocated if absent, with the pages of `n` bytes at `offset` marked.
    private func writable(_ index: UInt64, _ offset: Int, _ n: Int) -> UnsafeMutableRawPointer {
        let bits = Self.pageBits(offset, n)
        if let slot = slot(of: index) {
            let added = bits & ~chunkPages[slot]
            if added != 0 {
                chunkPages[slot] |= added
                pageCount += added.nonzeroBitCount
            }
            return chunkBytes[slot]!
        }
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: Self.chunkSize, alignment: Int(pageSize))
        bytes.initializeMemory(as: UInt8.self, repeating: 0, count: Self.chunkSize)
        insert(index, bytes: bytes, pages: bits)
        pageCount += bits.nonzeroBitCount
        return bytes
    }

    /// Copies `count` bytes at `address` into `destination`.
    func read(_ address: UInt64, _ count: Int, into destination: UnsafeMutableRawPointer) {
        Self.pieces(address, count) { index, offset, n, done in
            if let chunk = chunk(index) {
                (destination + done).copyMemory(from: chunk + offset, byteCount: n)
            } else {
                (destination + done).initializeMemory(as: UInt8.self, repeating: 0, count: n)
            }
        }
    }

    /// Copies `count` bytes from `source` to `address`.
    func write(_ address: UInt64, _ count: Int, from source: UnsafeRawPointer) {
        Self.pieces(address, count) { index, offset, n, done in
            (writable(index, offset, n) + offset).copyMemory(from: source + done, byteCount: n)
        }
    }

    /// Copies `count` bytes from `source` to `destination`, one `memcpy` per piece that lies in
    /// one chunk on both sides. The ranges must not overlap.
    func copy(from source: UInt64, to destination: UInt64, count: Int) {
        var done = 0
        let size = UInt64(Self.chunkSize)
        while done < count {
            let from = source + UInt64(done)
            let to = destination + UInt64(done)
            let fromOffset = Int(from % size)
            let toOffset = Int(to % size)
            let n = min(count - done, Self.chunkSize - fromOffset, Self.chunkSize - toOffset)
            let target = writable(to / size, toOffset, n) + toOffset
            if let chunk = chunk(from / size) {
                target.copyMemory(from: chunk + fromOffset, byteCount: n)
            } else {
                target.initializeMemory(as: UInt8.self, repeating: 0, count: n)
            }
            done += n
        }
    }

    /// Drops the bytes of every page from `firstPage` to `lastPage` (page frame numbers): they read
    /// as zeros again, and a chunk with no page left is freed.
    func drop(pages firstPage: UInt64, through lastPage: UInt64) {
        guard firstPage <= lastPage else { return }
        let perChunk = UInt64(Self.pagesPerChunk)
        var pfn = firstPage
        while pfn <= lastPage {
            let index = pfn / perChunk
            let first = Int(pfn % perChunk)
            let last = Int(min(lastPage - index * perChunk, perChunk - 1))
            pfn = (index + 1) * perChunk
            guard let slot = slot(of: index), let bytes = chunkBytes[slot] else { continue }
            for page in first...last where chunkPages[slot] & (1 << page) != 0 {
                (bytes + page * Int(pageSize)).initializeMemory(as: UInt8.self, repeating: 0, count: Int(pageSize))
                chunkPages[slot] &= ~(1 << page)
                pageCount -= 1
            }
            if chunkPages[slot] == 0 {
                bytes.deallocate()
                remove(at: slot)
            }
        }
    }
}

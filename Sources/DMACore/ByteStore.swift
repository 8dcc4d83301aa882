#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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

    /// What a generated page holds: a pattern, and the pattern offset of the page's first byte.
    struct Generated: Hashable {
        var pattern: BytePattern
        var offset: UInt64
    }

    /// Pages whose bytes are generated, not stored: filled with a pattern and not written since.
    /// A page that holds bytes (its bit set in its chunk) takes precedence; writing into a
    /// generated page first materialises it from its pattern. Single pages (a heap's scattered
    /// pages) are kept by page frame number, longer fills as runs.
    private var generated: [UInt64: Generated] = [:]

    /// Pages `first` through `last` (page frame numbers) generated from `start` (the pattern and
    /// the pattern offset of page `first`).
    struct Run {
        var first: UInt64
        var last: UInt64
        var start: Generated
    }

    /// Runs of 16 pages or more, sorted by page, not overlapping each other or `generated`.
    private var runs: [Run] = []

    /// Whether any page is generated.
    private var hasGenerated: Bool { !generated.isEmpty || !runs.isEmpty }

    /// The index of the first run that ends at or after `pfn`.
    private func runLowerBound(_ pfn: UInt64) -> Int { runs.partitioningIndex { $0.last >= pfn } }

    /// What page `pfn` is generated from, if it is, and how many pages from it on the same run
    /// covers.
    private func generatedPage(_ pfn: UInt64) -> (Generated, pages: UInt64)? {
        if let g = generated[pfn] { return (g, 1) }
        guard !runs.isEmpty else { return nil }
        let index = runLowerBound(pfn)
        guard index < runs.count, runs[index].first <= pfn else { return nil }
        let run = runs[index]
        return (Generated(pattern: run.start.pattern, offset: run.start.offset &+ (pfn - run.first) * pageSize), run.last - pfn + 1)
    }

    /// Pages `first` through `last` are no longer generated (runs that reach past are cut).
    private func removeGenerated(_ first: UInt64, _ last: UInt64) {
        if !generated.isEmpty {
            if last - first < UInt64(generated.count) {
                for pfn in first...last { generated.removeValue(forKey: pfn) }
            } else {
                generated = generated.filter { $0.key < first || $0.key > last }
            }
        }
        guard !runs.isEmpty else { return }
        let low = runLowerBound(first)
        var high = low
        while high < runs.count && runs[high].first <= last { high += 1 }
        guard low < high else { return }
        var kept: [Run] = []
        let a = runs[low]
        if a.first < first { kept.append(Run(first: a.first, last: first - 1, start: a.start)) }
        let b = runs[high - 1]
        if b.last > last {
            kept.append(
                Run(first: last + 1, last: b.last, start: Generated(pattern: b.start.pattern, offset: b.start.offset &+ (last + 1 - b.first) * pageSize)))
        }
        runs.replaceSubrange(low..<high, with: kept)
    }

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
                materialise(added, of: index, in: chunkBytes[slot]!)
            }
            return chunkBytes[slot]!
        }
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: Self.chunkSize, alignment: Int(pageSize))
        bytes.initializeMemory(as: UInt8.self, repeating: 0, count: Self.chunkSize)
        insert(index, bytes: bytes, pages: bits)
        pageCount += bits.nonzeroBitCount
        materialise(bits, of: index, in: bytes)
        return bytes
    }

    /// Writes the pattern of each generated page among `pages` of chunk `index` into its bytes
    /// (the page is about to be written: from now on it holds bytes).
    private func materialise(_ pages: UInt16, of index: UInt64, in bytes: UnsafeMutableRawPointer) {
        guard hasGenerated else { return }
        for page in 0..<Self.pagesPerChunk where pages & (1 << page) != 0 {
            let pfn = index * UInt64(Self.pagesPerChunk) + UInt64(page)
            if let (g, _) = generatedPage(pfn) {
                g.pattern.generate(offset: g.offset, count: Int(pageSize), into: bytes + page * Int(pageSize))
                removeGenerated(pfn, pfn)
            }
        }
    }

    /// The bytes of page `pfn` if it holds bytes (its chunk exists and its bit is set).
    private func storedPage(_ pfn: UInt64) -> UnsafeMutableRawPointer? {
        let perChunk = UInt64(Self.pagesPerChunk)
        guard let slot = slot(of: pfn / perChunk), chunkPages[slot] & (1 << (pfn % perChunk)) != 0 else { return nil }
        return chunkBytes[slot]! + Int(pfn % perChunk) * Int(pageSize)
    }

    /// Calls `body` for each piece of `count` bytes at `address` that lies in one page: the page
    /// frame number, the offset in the page, the piece's length and the bytes done before it.
    private static func pagePieces(_ address: UInt64, _ count: Int, _ body: (UInt64, Int, Int, Int) throws -> Void) rethrows {
        var done = 0
        while done < count {
            let at = address + UInt64(done)
            let offset = Int(at % pageSize)
            let n = min(count - done, Int(pageSize) - offset)
            try body(at / pageSize, offset, n, done)
            done += n
        }
    }

    /// Copies `n` bytes at `offset` of page `pfn`, whatever holds them (stored bytes, a pattern or
    /// nothing: zeros), into `destination`.
    private func readPage(_ pfn: UInt64, _ offset: Int, _ n: Int, into destination: UnsafeMutableRawPointer) {
        if let page = storedPage(pfn) {
            destination.copyMemory(from: page + offset, byteCount: n)
        } else if let (g, _) = generatedPage(pfn) {
            g.pattern.generate(offset: g.offset &+ UInt64(offset), count: n, into: destination)
        } else {
            destination.initializeMemory(as: UInt8.self, repeating: 0, count: n)
        }
    }

    /// Makes `count` bytes at `address` read as `pattern` from `patternOffset` on: each whole
    /// page is recorded as generated (its stored bytes dropped), each partial page written.
    /// - Complexity: O(pages) in time, O(1) host memory per page (no byte of a whole page stored).
    func fill(_ address: UInt64, _ count: Int, with pattern: BytePattern, patternOffset: UInt64) {
        func partial(_ at: UInt64, _ n: Int, _ done: Int) {
            guard n > 0 else { return }
            let chunk = UInt64(Self.chunkSize)
            let target = writable(at / chunk, Int(at % chunk), n) + Int(at % chunk)
            pattern.generate(offset: patternOffset &+ UInt64(done), count: n, into: target)
        }
        let head = min(count, Int((pageSize - address % pageSize) % pageSize))
        partial(address, head, 0)
        let whole = (count - head) / Int(pageSize)
        if whole > 0 {
            let first = (address + UInt64(head)) / pageSize
            let last = first + UInt64(whole) - 1
            drop(pages: first, through: last)
            if pattern != .byte(0) {
                let start = Generated(pattern: pattern, offset: patternOffset &+ UInt64(head))
                if whole < Self.pagesPerChunk {
                    for i in 0..<UInt64(whole) { generated[first + i] = Generated(pattern: pattern, offset: start.offset &+ i * pageSize) }
                } else {
                    runs.insert(Run(first: first, last: last, start: start), at: runLowerBound(first))
                }
            }
        }
        let tail = head + whole * Int(pageSize)
        partial(address + UInt64(tail), count - tail, tail)
    }

    /// The first of `count` bytes at `address` that differs from `pattern` (from `patternOffset`
    /// on): its index and the byte found; nil when all match. A generated page compared with the
    /// same pattern at the same offset, and a page never written compared with zeros, are equal
    /// without generating a byte.
    func firstMismatch(_ address: UInt64, _ count: Int, with pattern: BytePattern, patternOffset: UInt64) -> (index: Int, found: UInt8)? {
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 2 * Int(pageSize), alignment: 16)
        defer { scratch.deallocate() }
        let found = scratch.assumingMemoryBound(to: UInt8.self)
        let expected = found + Int(pageSize)
        let perChunk = UInt64(Self.pagesPerChunk)
        var done = 0
        while done < count {
            let address = address + UInt64(done)
            let (pfn, offset) = (address / pageSize, Int(address % pageSize))
            let n = min(count - done, Int(pageSize) - offset)
            let at = patternOffset &+ UInt64(done)
            if storedPage(pfn) == nil {
                if let (g, pages) = generatedPage(pfn) {
                    if g.pattern == pattern && g.offset &+ UInt64(offset) == at {
                        // The same pattern at the same offset: equal. Pages on of the same run in
                        // a chunk that stores nothing are equal too.
                        var skip = n
                        if offset == 0, slot(of: pfn / perChunk) == nil {
                            let more = min(pages, perChunk - pfn % perChunk, UInt64((count - done) / Int(pageSize)))
                            skip = max(n, Int(more) * Int(pageSize))
                        }
                        done += skip
                        continue
                    }
                } else if pattern == .byte(0) {
                    done += n
                    continue
                }
            }
            readPage(pfn, offset, n, into: UnsafeMutableRawPointer(found))
            pattern.generate(offset: at, count: n, into: UnsafeMutableRawPointer(expected))
            if memcmp(found, expected, n) != 0 {
                for i in 0..<n where found[i] != expected[i] { return (done + i, found[i]) }
            }
            done += n
        }
        return nil
    }

    /// Copies `count` bytes at `address` into `destination`.
    func read(_ address: UInt64, _ count: Int, into destination: UnsafeMutableRawPointer) {
        if hasGenerated {
            Self.pagePieces(address, count) { pfn, offset, n, done in readPage(pfn, offset, n, into: destination + done) }
            return
        }
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
        if hasGenerated {
            // Page by page: a whole page that holds no bytes is copied as what it is (a pattern
            // or zeros), without generating a byte; other pieces are copied as bytes.
            var done = 0
            while done < count {
                let from = source + UInt64(done)
                let to = destination + UInt64(done)
                let n = min(count - done, Int(pageSize - from % pageSize), Int(pageSize - to % pageSize))
                if n == Int(pageSize), storedPage(from / pageSize) == nil {
                    let g = generatedPage(from / pageSize)
                    drop(pages: to / pageSize, through: to / pageSize)
                    if let (g, _) = g { generated[to / pageSize] = g }
                } else {
                    let chunk = UInt64(Self.chunkSize)
                    let target = writable(to / chunk, Int(to % chunk), n) + Int(to % chunk)
                    readPage(from / pageSize, Int(from % pageSize), n, into: target)
                }
                done += n
            }
            return
        }
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
        if hasGenerated { removeGenerated(firstPage, lastPage) }
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

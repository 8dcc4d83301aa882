@testable import DMACore
import Testing

/// The chunk table of the simulated memory's byte store (an open-addressing hash table with
/// linear probing): keys that collide must stay reachable after any removal.
@Suite("ByteStore: chunks stay reachable through collisions, growth and removals")
struct ByteStoreTests {
    /// Chunk indices that all hash to slot 0 of the first 64-slot table, and then as many that do not.
    static func collidingKeys(_ count: Int) -> [UInt64] {
        var same: [UInt64] = []
        var other: [UInt64] = []
        var key: UInt64 = 1
        while same.count < count || other.count < count {
            if ByteStore.home(key, shift: 58) == 0 {
                if same.count < count { same.append(key) }
            } else if other.count < count && key % 7 == 0 {
                other.append(key)
            }
            key += 1
        }
        return zip(same, other).flatMap { [$0, $1] }
    }

    @Test("40 chunks, half on one home slot, removed in three different orders", arguments: [0, 1, 2])
    func collisions(_ order: Int) {
        let store = ByteStore()
        let keys = Self.collidingKeys(20)
        for key in keys { store.write(key * UInt64(ByteStore.chunkSize), 8, from: [UInt8](repeating: UInt8(key % 251), count: 8)) }
        #expect(store.chunkTotal == 40 && store.pageCount == 40)
        var rng = SplitMix64(seed: UInt64(order))
        var left = keys
        switch order {
        case 0: break
        case 1: left.reverse()
        default: left.shuffle(using: &rng)
        }
        while let key = left.popLast() {
            store.drop(pages: key * UInt64(ByteStore.pagesPerChunk), through: key * UInt64(ByteStore.pagesPerChunk))
            var out = [UInt8](repeating: 0xff, count: 8)
            out.withUnsafeMutableBytes { store.read(key * UInt64(ByteStore.chunkSize), 8, into: $0.baseAddress!) }
            #expect(out == [UInt8](repeating: 0, count: 8), "a dropped chunk reads as zeros")
            for other in left {
                var bytes = [UInt8](repeating: 0, count: 8)
                bytes.withUnsafeMutableBytes { store.read(other * UInt64(ByteStore.chunkSize), 8, into: $0.baseAddress!) }
                #expect(bytes == [UInt8](repeating: UInt8(other % 251), count: 8), "chunk \(other) lost after removing \(key)")
            }
        }
        #expect(store.chunkTotal == 0 && store.pageCount == 0)
    }

    @Test("growth past 3/4 full keeps every chunk (1,000 chunks through four doublings)")
    func growth() {
        let store = ByteStore()
        for key in UInt64(0)..<1000 { store.write(key * 3 * UInt64(ByteStore.chunkSize) + 5, 1, from: [UInt8(key % 256)]) }
        #expect(store.chunkTotal == 1000)
        for key in UInt64(0)..<1000 {
            var byte: [UInt8] = [0]
            byte.withUnsafeMutableBytes { store.read(key * 3 * UInt64(ByteStore.chunkSize) + 5, 1, into: $0.baseAddress!) }
            #expect(byte == [UInt8(key % 256)])
        }
    }
}

import DMACore
import Testing

/// `SimulatedMemory.copy` copies page piece by page piece when the two ranges do not overlap (the
/// swiotlb bounce path, Benchmarks/ row 3): these tests hold it to the byte-by-byte result.
@Suite("SimulatedMemory.copy: the page-wise path gives the same bytes as a buffered copy")
struct SimulatedMemoryCopyTests {
    func memory() throws -> SimulatedMemory {
        let memory = SimulatedMemory()
        try memory.addRAM(name: "ram", start: 0x10_0000, length: 1 << 20)
        return memory
    }

    func pattern(_ count: Int, seed: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) } }

    @Test("unaligned source and destination across several pages", arguments: [
        (0x10_0000 as UInt64, 0x18_0000 as UInt64, 4096), (0x10_0123, 0x18_0f01, 3 * 4096 + 77), (0x10_0fff, 0x18_0001, 2),
        (0x10_0800, 0x10_3000, 4096 * 4),
    ])
    func unaligned(_ source: UInt64, _ destination: UInt64, _ count: Int) throws {
        let memory = try memory()
        let bytes = pattern(count, seed: Int(source & 0xff))
        try memory.write(bytes, at: PhysicalAddress(source))
        try memory.copy(from: PhysicalAddress(source), to: PhysicalAddress(destination), count: count)
        #expect(try memory.read(PhysicalAddress(destination), count: count) == bytes)
        #expect(try memory.read(PhysicalAddress(source), count: count) == bytes)
    }

    @Test("a source never written copies zeros over what was there")
    func zeroSource() throws {
        let memory = try memory()
        try memory.fill(0x18_0000, count: 3 * 4096, with: 0xa5)
        try memory.copy(from: 0x10_0100, to: 0x18_0080, count: 2 * 4096)
        let after = try memory.read(0x18_0000, count: 3 * 4096)
        #expect(after[0..<0x80].allSatisfy { $0 == 0xa5 })
        #expect(after[0x80..<(0x80 + 2 * 4096)].allSatisfy { $0 == 0 })
        #expect(after[(0x80 + 2 * 4096)...].allSatisfy { $0 == 0xa5 })
    }

    @Test("overlapping ranges copy as if through a buffer", arguments: [(0x10_0000 as UInt64, 0x10_0010 as UInt64), (0x10_0010, 0x10_0000)])
    func overlapping(_ source: UInt64, _ destination: UInt64) throws {
        let memory = try memory()
        let bytes = pattern(5000, seed: 3)
        try memory.write(bytes, at: PhysicalAddress(source))
        try memory.copy(from: PhysicalAddress(source), to: PhysicalAddress(destination), count: bytes.count)
        #expect(try memory.read(PhysicalAddress(destination), count: bytes.count) == bytes)
    }

    @Test("an unbacked destination is a bus error and nothing is written")
    func unbacked() throws {
        let memory = try memory()
        try memory.fill(0x10_0000, count: 4096, with: 1)
        #expect(throws: DMAError.self) { try memory.copy(from: 0x10_0000, to: 0x1f_f800, count: 4096) }
        #expect(try memory.read(0x1f_f800, count: 2048).allSatisfy { $0 == 0 })
    }

    @Test("copies across 64 KiB chunk boundaries on both sides, at every relative offset", arguments: [
        (0x10_fff0 as UInt64, 0x17_0008 as UInt64, 3 * 65536 + 40), (0x11_0000, 0x12_ffff, 65536 + 1), (0x14_8000, 0x16_8001, 2 * 65536),
    ])
    func chunkBoundaries(_ source: UInt64, _ destination: UInt64, _ count: Int) throws {
        let memory = try memory()
        let bytes = pattern(count, seed: 9)
        try memory.write(bytes, at: PhysicalAddress(source))
        try memory.copy(from: PhysicalAddress(source), to: PhysicalAddress(destination), count: count)
        #expect(try memory.read(PhysicalAddress(destination), count: count) == bytes)
        // The bytes just outside the destination were never written.
        #expect(try memory.read(PhysicalAddress(destination - 1), count: 1) == [0])
        #expect(try memory.read(PhysicalAddress(destination + UInt64(count)), count: 1) == [0])
    }

    @Test("materialised pages count what was written; freeing a page zeroes it and keeps its neighbours in the same chunk")
    func materialisedAndFree() throws {
        let memory = SimulatedMemory()
        try memory.addRAM(name: "ram", start: 0x10_0000, length: 1 << 20)
        let range = try memory.allocate(length: 3 * pageSize)
        #expect(memory.materialisedPages == 0)
        try memory.write([1], at: range.start)
        #expect(memory.materialisedPages == 1)
        try memory.write([UInt8](repeating: 2, count: Int(pageSize) + 2), at: PhysicalAddress(range.start.rawValue + pageSize - 1))
        #expect(memory.materialisedPages == 3)  // the write touched pages 0, 1 and 2
        let middle = try PhysicalRange(start: PhysicalAddress(range.start.rawValue + pageSize), length: pageSize)
        let rest = try memory.allocate(length: pageSize)  // so that freeing the middle page does not merge into a larger extent
        try memory.free(range)
        let again = try memory.allocate(length: 3 * pageSize)
        #expect(again == range)
        #expect(try memory.read(middle.start, count: Int(pageSize)).allSatisfy { $0 == 0 }, "a freed page reads as zeros")
        #expect(memory.materialisedPages == 0)
        try memory.write([7], at: rest.start)
        try memory.free(again)
        #expect(memory.materialisedPages == 1)
        #expect(try memory.read(rest.start, count: 1) == [7])
    }

    @Test("random writes, copies and frees over 128 chunks read back as a byte-by-byte model says", arguments: [1, 2, 3])
    func randomAgainstModel(_ seed: UInt64) throws {
        let memory = SimulatedMemory()
        let base: UInt64 = 0x1000_0000
        let size: UInt64 = 128 * 65536
        try memory.addRAM(name: "ram", start: PhysicalAddress(base), length: size)
        var model = [UInt8](repeating: 0, count: Int(size))
        var allocated: [PhysicalRange] = []
        var rng = SplitMix64(seed: seed)
        for step in 0..<400 {
            switch rng.next() % 4 {
            case 0, 1:  // a write somewhere, up to 3 chunks long
                let at = rng.next() % (size - 140_000)
                let bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: step), count: Int(rng.next() % 140_000 + 1))
                try memory.write(bytes, at: PhysicalAddress(base + at))
                model.withUnsafeMutableBytes { model in
                    bytes.withUnsafeBytes { (model.baseAddress! + Int(at)).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                }
            case 2:  // a copy between two ranges that do not overlap
                let count = Int(rng.next() % 70_000 + 1)
                let from = rng.next() % (size / 2 - UInt64(count))
                let to = size / 2 + rng.next() % (size / 2 - UInt64(count))
                try memory.copy(from: PhysicalAddress(base + from), to: PhysicalAddress(base + to), count: count)
                model.withUnsafeMutableBytes { (($0.baseAddress! + Int(to))).copyMemory(from: $0.baseAddress! + Int(from), byteCount: count) }
            default:  // allocate and free pages: freed pages read as zeros
                if let range = try? memory.allocate(length: (rng.next() % 40 + 1) * pageSize) { allocated.append(range) }
                if !allocated.isEmpty {
                    let range = allocated.remove(at: Int(rng.next() % UInt64(allocated.count)))
                    try memory.free(range)
                    let start = Int(range.start.rawValue - base)
                    _ = model.withUnsafeMutableBytes { ($0.baseAddress! + start).initializeMemory(as: UInt8.self, repeating: 0, count: Int(range.length)) }
                }
            }
        }
        let read = try memory.read(PhysicalAddress(base), count: Int(size))
        let same = read.withUnsafeBytes { read in model.withUnsafeBytes { read.elementsEqual($0) } }
        #expect(same, "the store differs from the model")
        for range in allocated { try memory.free(range) }
        let freedAll = try memory.allocate(length: size)
        try memory.free(freedAll)
        #expect(memory.materialisedPages == 0 && memory.storeBytes == 0, "freeing everything gives every chunk back")
    }

    @Test("with more regions than the scan covers (binary search): every region reached, every gap a bus error", arguments: [3, 8, 9, 40])
    func manyRegions(_ count: Int) throws {
        let memory = SimulatedMemory()
        for i in 0..<count {  // 64 KiB regions with 64 KiB holes between them, added out of order
            let index = (i * 7) % count
            try memory.addRAM(name: "ram\(index)", start: PhysicalAddress(0x100_0000 + UInt64(index) * 0x2_0000), length: 0x1_0000)
        }
        for index in 0..<count {
            let start = PhysicalAddress(0x100_0000 + UInt64(index) * 0x2_0000)
            try memory.write([UInt8(index), 1, 2], at: PhysicalAddress(start.rawValue + 0xfffd))
            #expect(try memory.read(PhysicalAddress(start.rawValue + 0xfffd), count: 3) == [UInt8(index), 1, 2])
            let error = #expect(throws: DMAError.self) { try memory.read(PhysicalAddress(start.rawValue + 0xfffe), count: 3) }
            #expect(error?.code == .busError, "the hole after region \(index)")
            #expect(throws: DMAError.self) { try memory.read(PhysicalAddress(start.rawValue + 0x1_8000), count: 1) }
        }
        #expect(throws: DMAError.self) { try memory.read(0xff_ffff, count: 1) }
    }
}

/// A small deterministic generator (SplitMix64) so that the random tests repeat exactly.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

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
}

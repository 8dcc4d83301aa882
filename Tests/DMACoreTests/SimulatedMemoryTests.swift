import DMACore
import Testing

@Suite("Simulated physical memory")
struct SimulatedMemoryTests {
    static func machine() throws -> SimulatedMemory {
        let memory = SimulatedMemory()
        try memory.addRAM(name: "low", start: 0, length: 0x10_0000)
        try memory.addRAM(name: "high", start: 0x1_0000_0000, length: 0x10_0000)
        return memory
    }

    @Test("Bytes written across pages read back; unwritten memory reads as zero")
    func roundTrip() throws {
        let memory = try Self.machine()
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0) }
        try memory.write(bytes, at: 0x0ff0)
        #expect(try memory.read(0x0ff0, count: bytes.count) == bytes)
        #expect(try memory.read(0x8000, count: 16) == [UInt8](repeating: 0, count: 16))
        try memory.copy(from: 0x0ff0, to: 0x1_0000_0000, count: 100)
        #expect(try memory.read(0x1_0000_0000, count: 100) == Array(bytes[0..<100]))
    }

    @Test("An access nothing backs is a bus error, and writes nothing")
    func busError() throws {
        let memory = try Self.machine()
        let error = #expect(throws: DMAError.self) { try memory.write([1, 2, 3], at: 0xf_ffff) }
        #expect(error?.code == .busError)
        #expect(error?.errno == .EIO)
        #expect(try memory.read(0xf_ffff, count: 1) == [0])
        #expect(memory.materialisedPages == 0)
    }

    @Test("Regions may not overlap; RAM must be page-aligned")
    func regions() throws {
        let memory = try Self.machine()
        #expect(throws: DMAError.self) { try memory.addRAM(name: "clash", start: 0x8_0000, length: 0x10_0000) }
        #expect(throws: DMAError.self) { try memory.addRAM(name: "odd", start: 0x20_0800, length: 0x1000) }
        #expect(memory.regions.count == 2)
        #expect(memory.region(containing: 0x1_0000_0010)?.name == "high")
        #expect(memory.region(containing: 0x2_0000_0000) == nil)
    }

    @Test("RAM allocation prefers high memory, honours a limit, refuses double frees, and runs out")
    func allocation() throws {
        let memory = try Self.machine()
        let high = try memory.allocate(length: 0x1000)
        #expect(high.start >= 0x1_0000_0000)
        let low = try memory.allocate(length: 0x2000, below: 0xffff_ffff)
        #expect(low.last.rawValue <= 0xffff_ffff)
        #expect(memory.allocatedRAM == 0x3000)
        try memory.free(high)
        let double = #expect(throws: DMAError.self) { try memory.free(high) }
        #expect(double?.errno == .EINVAL)
        let tooBig = #expect(throws: DMAError.self) { try memory.allocate(length: 0x20_0000) }
        #expect(tooBig?.code == .resourceExhausted)
        #expect(tooBig?.errno == .ENOMEM)
        let aligned = try memory.allocate(length: 0x1000, alignment: 0x10000)
        #expect(aligned.start.rawValue % 0x10000 == 0)
        #expect(throws: DMAError.self) { try memory.allocate(length: 0x1000, alignment: 0x3000) }
    }
}

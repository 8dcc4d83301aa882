import DMACore
import DMAScenario
import Testing

/// Issue [O] item 2: sizes the model cannot hold as bytes. A 6 GiB heap with a pattern, a 1 TiB
/// heap and a device read of a 32 GiB VRAM buffer aborted the process (whole buffers were built
/// as arrays); patterns are now generated, reads compared piece by piece, and memory the machine
/// cannot give is a typed ENOMEM. Each scenario here finishes in about a second.
@Suite("Sizes the model cannot hold: patterns generated, reads compared piece by piece, ENOMEM typed")
struct SizeTests {
    static func run(_ text: String) throws -> ScenarioResult {
        try ScenarioRunner.run(try Scenario.parse(text, file: "s.yaml"))
    }

    static func describe(_ result: ScenarioResult) -> String {
        result.steps.map { "\($0.op) \($0.ok) \($0.errno?.name ?? "") \($0.expectation?.text ?? "") \($0.message.prefix(200))" }.joined(separator: "\n")
    }

    @Test("a 6 GiB system-heap buffer with a pattern is created, read back whole by the CPU and a device, and checked")
    func sixGiBHeapWithPattern() throws {
        let result = try Self.run("""
            buffers:
              - {name: big, exporter: system-heap, size: 6GiB, pattern: 7}
            importers:
              - {name: nic, device: "0000:06:00.0", kind: device, ops: iommu}
            steps:
              - cpu-read: {buffer: big, expectPattern: 7}
              - cpu-write: {buffer: big, offset: 3GiB, length: 100, byte: 0x11}
              - cpu-read: {buffer: big, offset: 3GiB, length: 100, expectByte: 0x11}
              - cpu-read: {buffer: big, expectPattern: 7, expect: {ok: false, errno: EIO}}
              - attach: {importer: nic, buffer: big}
              - map: {importer: nic, buffer: big}
              - device-read: {importer: nic, buffer: big, offset: 5GiB, length: 64MiB, expectPattern: 7}
              - unmap: {importer: nic, buffer: big}
              - detach: {importer: nic, buffer: big}
            """)
        #expect(result.ok, "\(Self.describe(result))")
        // The mismatch is the first byte the CPU wrote, with the pattern's byte expected there.
        let miss = result.steps[5]
        #expect(miss.message.hasPrefix("byte \(3 << 30) is 0x11, expected "), "\(miss.message)")
    }

    @Test("a 1 TiB system-heap buffer is ENOMEM at once, naming what is free; the scenario goes on")
    func oneTiBHeap() throws {
        let result = try Self.run("""
            buffers:
              - {name: huge, exporter: system-heap, size: 1TiB, pattern: 3}
              - {name: small, exporter: system-heap, size: 64KiB, pattern: 3}
            steps:
              - cpu-read: {buffer: small, expectPattern: 3}
            """)
        #expect(result.steps[0].op == .createBuffer && result.steps[0].errno == .ENOMEM, "\(Self.describe(result))")
        #expect(result.steps[0].message.contains("1 TiB") || result.steps[0].message.contains("1024 GiB"), "\(result.steps[0].message)")
        #expect(result.steps[1].ok && result.steps[2].ok, "\(Self.describe(result))")
    }

    @Test("a device reads a 32 GiB VRAM buffer by bus address and checks every byte; a wrong pattern names the first byte")
    func thirtyTwoGiBVRAMRead() throws {
        let result = try Self.run("""
            buffers:
              - {name: vram, exporter: gpu-vram, device: "0000:03:00.0", size: 32GiB, pattern: 9}
            importers:
              - {name: near, device: "0000:04:00.0", kind: device, dynamic: true, allowPeerToPeer: true}
              - {name: mr, device: "0000:04:00.0", kind: rdma-dynamic}
            steps:
              - attach: {importer: near, buffer: vram}
              - map: {importer: near, buffer: vram, expect: {mapType: bus-address}}
              - device-read: {importer: near, buffer: vram, expectPattern: 9}
              - device-read: {importer: near, buffer: vram}
              - device-write: {importer: near, buffer: vram, offset: 20GiB, length: 8KiB, pattern: 4}
              - device-read: {importer: near, buffer: vram, expectPattern: 9, expect: {ok: false, errno: EIO}}
              - device-read: {importer: near, buffer: vram, offset: 20GiB, length: 8KiB, expectPattern: 4}
              - attach: {importer: mr, buffer: vram}
              - device-read: {importer: mr, buffer: vram, offset: 16GiB, length: 16GiB, expectPattern: 9, expect: {ok: false, errno: EIO}}
              - detach: {importer: mr, buffer: vram}
              - unmap: {importer: near, buffer: vram}
              - detach: {importer: near, buffer: vram}
            """)
        #expect(result.ok, "\(Self.describe(result))")
        let miss = result.steps[3 + 5]
        let expected = BytePattern.pattern(9).byte(at: 20 << 30)
        let found = BytePattern.pattern(4).byte(at: 20 << 30)
        if found != expected {
            #expect(miss.message.hasPrefix("byte \(20 << 30) is \(hex(UInt64(found))), expected \(hex(UInt64(expected)))"), "\(miss.message)")
        }
    }
}

/// The memory keeps a pattern as a pattern: whole pages generated on read, materialised on write,
/// copied as patterns, dropped when freed.
@Suite("SimulatedMemory: generated patterns")
struct GeneratedPatternTests {
    @Test("a filled range reads as the pattern, stores no page, and a partial write materialises only its page")
    func fillReadWrite() throws {
        let memory = SimulatedMemory()
        try memory.addRAM(name: "RAM", start: 0, length: 2 << 30)
        let pattern = BytePattern.pattern(5)
        try memory.fill(PhysicalAddress(0x1000), count: 512 << 20, with: pattern, patternOffset: 100)
        #expect(memory.materialisedPages == 0)
        #expect(try memory.read(PhysicalAddress(0x1000 + 4000), count: 300) == pattern.bytes(offset: 4100, count: 300))
        #expect(try memory.firstMismatch(PhysicalAddress(0x1000), count: 512 << 20, with: pattern, patternOffset: 100) == nil)
        try memory.write([1, 2, 3], at: PhysicalAddress(0x3000 + 10))
        #expect(memory.materialisedPages == 1)
        var expected = pattern.bytes(offset: 100 + 0x2000, count: 4096)
        expected.replaceSubrange(10..<13, with: [1, 2, 3])
        #expect(try memory.read(PhysicalAddress(0x3000), count: 4096) == expected)
        let miss = try memory.firstMismatch(PhysicalAddress(0x1000), count: 512 << 20, with: pattern, patternOffset: 100)
        #expect(miss?.index == 0x2000 + 10 && miss?.found == 1)
        // A copy of whole pages carries the pattern; a copy of part of a page carries its bytes.
        try memory.copy(from: PhysicalAddress(0x1000), to: PhysicalAddress(0x4000_0000), count: 64 << 20)
        #expect(try memory.firstMismatch(PhysicalAddress(0x4000_0000), count: 64 << 20, with: pattern, patternOffset: 100)?.index == 0x2000 + 10)
        #expect(try memory.read(PhysicalAddress(0x4000_0000 + 0x2000), count: 4096) == expected)
        // Byte 0 (zeros) needs no generated page; a page never written compares equal to zeros.
        try memory.fill(PhysicalAddress(0x1000), count: 8192, with: .byte(0), patternOffset: 0)
        #expect(try memory.firstMismatch(PhysicalAddress(0x1000), count: 8192, with: .byte(0), patternOffset: 0) == nil)
        #expect(try memory.firstMismatch(PhysicalAddress(0x3000_0000), count: 1 << 20, with: .byte(0), patternOffset: 0) == nil)
        #expect(try memory.firstMismatch(PhysicalAddress(0x3000_0000), count: 1 << 20, with: .byte(7), patternOffset: 0)?.index == 0)
    }

    @Test("freed RAM reads as zeros again, patterns included")
    func freeDropsPatterns() throws {
        let memory = SimulatedMemory()
        try memory.addRAM(name: "RAM", start: 0, length: 64 << 20)
        let range = try memory.allocate(length: 1 << 20)
        try memory.fill(range.start, count: 1 << 20, with: .pattern(2), patternOffset: 0)
        try memory.free(range)
        #expect(try memory.firstMismatch(range.start, count: 1 << 20, with: .byte(0), patternOffset: 0) == nil)
        #expect(memory.freeRAM == 64 << 20)
    }

    @Test("a fill past the backed memory is a bus error and fills nothing")
    func fillBusError() throws {
        let memory = SimulatedMemory()
        try memory.addRAM(name: "RAM", start: 0, length: 1 << 20)
        #expect(throws: DMAError.self) { try memory.fill(PhysicalAddress(0), count: 2 << 20, with: .pattern(1), patternOffset: 0) }
        #expect(try memory.firstMismatch(PhysicalAddress(0), count: 1 << 20, with: .byte(0), patternOffset: 0) == nil)
    }
}

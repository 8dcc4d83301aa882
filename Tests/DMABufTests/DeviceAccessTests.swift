import DMABuf
import DMACore
import DMADevices
import DMAMapping
import Testing

/// Issue [N] item 9: the one walk of a mapping's segments (`DMABufMapping+DeviceAccess.swift`)
/// that the device importer and the RDMA MR move their bytes with.
@Suite("A device moves bytes through a mapping's segments")
struct DeviceAccessTests {
    /// A system-heap buffer of four scattered pages, mapped by the near NIC (direct ops): one
    /// segment a page, none adjacent to the next.
    struct Mapped {
        let rig: Rig
        let heap: SystemHeapExporter
        let device: DMADevice
        let mapping: DMABufMapping

        init() throws {
            rig = try Rig()
            heap = try rig.machine.heapBuffer(name: "heap", size: 4 * pageSize)
            device = try rig.nearNIC()
            mapping = try heap.buffer.mapUnlocked(try heap.buffer.attach(device), direction: .bidirectional)
        }

        /// The buffer's bytes as the CPU sees them, in buffer order.
        func cpuBytes() throws -> [UInt8] {
            var out: [UInt8] = []
            for page in try heap.cpuRanges() { out += try rig.machine.memory.read(page.start, count: Int(page.length)) }
            return out
        }
    }

    @Test("locate cuts a transfer at each segment boundary, in buffer order")
    func locateAcrossSegments() throws {
        let m = try Mapped()
        let segments = m.mapping.table.segments
        try #require(segments.count == 4)
        let pieces = try m.mapping.locate(offset: pageSize - 10, length: pageSize + 20)
        #expect(pieces.map(\.length) == [10, Int(pageSize), 10])
        #expect(pieces.map(\.address) == [
            DMAAddress(segments[0].address.rawValue + pageSize - 10), segments[1].address, segments[2].address,
        ])
    }

    @Test("bytes written across segment boundaries land at those offsets of the buffer and read back")
    func writeAndRead() throws {
        let m = try Mapped()
        let bytes = (0..<(Int(pageSize) + 100)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
        let offset = 2 * pageSize - 50
        try m.mapping.write(bytes, offset: offset, by: m.device)
        let cpu = try m.cpuBytes()
        #expect(Array(cpu[Int(offset)..<(Int(offset) + bytes.count)]) == bytes)
        #expect(cpu[..<Int(offset)].allSatisfy { $0 == 0 })
        #expect(try m.mapping.read(offset: offset, count: bytes.count, by: m.device) == bytes)
    }

    @Test("a transfer that does not fit the mapping is EINVAL and writes nothing", arguments: [
        (3 * pageSize, Int(pageSize) + 1),  // runs one byte past the end
        (4 * pageSize, 1),  // starts at the end
        (0, 0),  // empty
    ])
    func doesNotFit(_ offset: UInt64, _ count: Int) throws {
        let m = try Mapped()
        let error = #expect(throws: DMAError.self) {
            try m.mapping.write([UInt8](repeating: 0xAA, count: count), offset: offset, by: m.device)
        }
        #expect(error?.errno == .EINVAL)
        #expect(try m.cpuBytes().allSatisfy { $0 == 0 }, "a byte was written before the refusal")
    }

    @Test("fill writes the pattern from patternOffset on; compare finds the first byte that differs, across segments")
    func fillAndCompare() throws {
        let m = try Mapped()
        let pattern = BytePattern.pattern(5)
        let offset = pageSize - 3
        let count = 2 * Int(pageSize)
        try m.mapping.fill(pattern, offset: offset, count: count, patternOffset: 1000, by: m.device)
        let cpu = try m.cpuBytes()
        #expect((0..<count).allSatisfy { cpu[Int(offset) + $0] == pattern.byte(at: 1000 + UInt64($0)) })
        #expect(try m.mapping.compare(offset: offset, count: count, with: pattern, patternOffset: 1000, by: m.device) == nil)
        // One byte changed in the third segment: its index in the transfer and the byte found.
        let wrong = Int(pageSize) + 7
        let expected = pattern.byte(at: 1000 + UInt64(wrong))
        try m.mapping.write([expected &+ 1], offset: offset + UInt64(wrong), by: m.device)
        let mismatch = try m.mapping.compare(offset: offset, count: count, with: pattern, patternOffset: 1000, by: m.device)
        #expect(mismatch?.index == wrong && mismatch?.found == expected &+ 1)
    }
}

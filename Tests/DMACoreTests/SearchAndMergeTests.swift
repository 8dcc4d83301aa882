import DMACore
import Testing

/// Issue [N] item 9: the package's one binary search (`partitioningIndex(where:)`) and one extent
/// merge (`mergingAdjacent()`), which the simulated memory, its byte store, the range list and the
/// topology's provider lookup now share.
@Suite("One binary search and one extent merge")
struct SearchAndMergeTests {
    @Test("the binary search finds the first element that belongs, as a scan does", arguments: [0, 1, 2, 7, 8, 9, 64, 1000])
    func search(_ count: Int) {
        var generator = SystemRandomNumberGenerator()
        let sorted = (0..<count).map { _ in Int.random(in: 0..<500, using: &generator) }.sorted()
        for probe in -1...501 {
            let expected = sorted.firstIndex { $0 >= probe } ?? sorted.endIndex
            #expect(sorted.partitioningIndex { $0 >= probe } == expected, "\(probe) in \(sorted)")
        }
        // On a slice, indices are the base collection's.
        let slice = sorted.dropFirst(count / 2)
        #expect(slice.partitioningIndex { _ in true } == slice.startIndex)
        #expect(slice.partitioningIndex { _ in false } == slice.endIndex)
    }

    /// The IOMMU domain's extent search was the last hand-written one (`IOMMUDomain.firstIndex`).
    @Test("no module keeps a binary search of its own: every one goes through partitioningIndex")
    func oneSearch() throws {
        let files = try PublicSurfaceTests.swiftFiles("Sources")
        #expect(files.count > 50)
        let ownSearch = try Regex(#"while\s+low\s*<\s*high|\(\s*low\s*\+\s*high\s*\)\s*/\s*2"#)
        for (path, text) in files {
            #expect(text.firstMatch(of: ownSearch) == nil, "\(path) keeps a binary search of its own")
        }
    }

    static func range(_ start: UInt64, _ length: UInt64) -> PhysicalRange {
        try! PhysicalRange(start: PhysicalAddress(start), length: length)
    }

    @Test("adjacent ranges merge, gaps and the order given are kept", arguments: [
        ([(0x1000, 0x1000), (0x2000, 0x1000), (0x4000, 0x1000)], [(0x1000, 0x2000), (0x4000, 0x1000)]),
        ([(0x4000, 0x1000), (0x3000, 0x1000)], [(0x4000, 0x1000), (0x3000, 0x1000)]),  // not sorted: no merge
        ([(0xffff_ffff_ffff_e000, 0x1000), (0xffff_ffff_ffff_f000, 0x1000)], [(0xffff_ffff_ffff_e000, 0x2000)]),
        ([], []),
    ] as [([(UInt64, UInt64)], [(UInt64, UInt64)])])
    func merge(_ given: [(UInt64, UInt64)], _ expected: [(UInt64, UInt64)]) {
        let merged = given.map { Self.range($0.0, $0.1) }.mergingAdjacent()
        #expect(merged == expected.map { Self.range($0.0, $0.1) })
    }

    @Test("freed RAM comes back whole: pages freed out of order merge into one free extent")
    func freeMerges() throws {
        let memory = SimulatedMemory()
        try memory.addRAM(name: "ram", start: PhysicalAddress(0x10_0000), length: 0x10_0000)
        let pages = try (0..<8).map { _ in try memory.allocate(length: 0x1000) }
        for page in pages.reversed() { try memory.free(page) }
        #expect(memory.allocatedRAM == 0)
        // The whole region can be allocated again in one piece only if the extents merged.
        let whole = try memory.allocate(length: 0x10_0000)
        #expect(whole.length == 0x10_0000)
    }
}

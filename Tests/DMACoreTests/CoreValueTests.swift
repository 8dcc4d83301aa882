import DMACore
import Testing

@Suite("Addresses, ranges, masks and directions")
struct CoreValueTests {
    @Test("Errno carries Linux numbers and names, including leaked kernel-internal ones")
    func errnoNames() {
        #expect(Errno.EREMOTEIO.rawValue == 121)
        #expect(Errno.ENOTSUPP.rawValue == 524)
        #expect(Errno.EINVAL.name == "EINVAL")
        #expect(Errno(name: "EOVERFLOW") == .EOVERFLOW)
        #expect(Errno(rawValue: 9999).name == "errno 9999")
        #expect(Errno(name: "ENOSUCH") == nil)
    }

    @Test("Address arithmetic refuses to wrap (EOVERFLOW)")
    func addressOverflow() throws {
        let top = PhysicalAddress(UInt64.max - 1)
        #expect(try top.advanced(by: 1) == PhysicalAddress(UInt64.max))
        let error = #expect(throws: DMAError.self) { try top.advanced(by: 2) }
        #expect(error?.errno == .EOVERFLOW)
        #expect(error?.code == .addressOverflow)
        #expect(throws: DMAError.self) { try DMAAddress(UInt64.max).advanced(by: 1) }
        #expect(DMAAddress.mappingError.isMappingError)
    }

    @Test("A physical range is never empty and never wraps (phys_vec)")
    func rangeValidation() throws {
        let zero = #expect(throws: DMAError.self) { try PhysicalRange(start: 0x1000, length: 0) }
        #expect(zero?.errno == .EINVAL)
        let wrap = #expect(throws: DMAError.self) { try PhysicalRange(start: PhysicalAddress(UInt64.max), length: 2) }
        #expect(wrap?.errno == .EOVERFLOW)
        let last = try PhysicalRange(start: PhysicalAddress(UInt64.max), length: 1)
        #expect(last.last == PhysicalAddress(UInt64.max))
        let range = try PhysicalRange(start: 0x1000, length: 0x2000)
        #expect(range.contains(PhysicalAddress(0x2fff)))
        #expect(!range.contains(PhysicalAddress(0x3000)))
        #expect(try range.subrange(offset: 0x1000, length: 0x1000).start == 0x2000)
        #expect(throws: DMAError.self) { try range.subrange(offset: 0x1000, length: 0x1001) }
    }

    @Test("Range lists refuse overlaps and totals past 2^64, and coalesce neighbours")
    func rangeLists() throws {
        let a = try PhysicalRange(start: 0x1000, length: 0x1000)
        let b = try PhysicalRange(start: 0x2000, length: 0x1000)
        let c = try PhysicalRange(start: 0x8000, length: 0x1000)
        let list = try PhysicalRangeList([a, b, c])
        #expect(list.totalLength == 0x3000)
        #expect(list.coalesced().ranges == [try PhysicalRange(start: 0x1000, length: 0x2000), c])
        let overlap = #expect(throws: DMAError.self) { try PhysicalRangeList([a, try PhysicalRange(start: 0x1800, length: 0x1000)]) }
        #expect(overlap?.errno == .EINVAL)
        let big = try PhysicalRange(start: 0, length: UInt64.max)
        let huge = #expect(throws: DMAError.self) {
            try PhysicalRangeList([big, try PhysicalRange(start: PhysicalAddress(UInt64.max), length: 1), a])
        }
        #expect(huge?.errno != nil)
    }

    @Test("DMA masks have 1…64 bits", arguments: [0, 65, -1, 128])
    func badMasks(bits: Int) {
        let error = #expect(throws: DMAError.self) { try DMAMask(bits: bits) }
        #expect(error?.code == .invalidMask)
        #expect(error?.errno == .EINVAL)
    }

    @Test(
        "dma_capable: addr + len - 1 <= mask (include/linux/dma-direct.h)",
        arguments: [
            (32, UInt64(0xffff_f000), UInt64(0x1000), true),
            (32, UInt64(0xffff_f000), UInt64(0x1001), false),
            (32, UInt64(0x1_0000_0000), UInt64(1), false),
            (64, UInt64.max, UInt64(1), true),
            (64, UInt64.max, UInt64(2), false),
            (1, UInt64(0), UInt64(2), true),
            (1, UInt64(1), UInt64(2), false),
        ])
    func capable(bits: Int, address: UInt64, length: UInt64, expected: Bool) throws {
        #expect(try DMAMask(bits: bits).isCapable(address, length: length) == expected)
    }

    @Test("valid_dma_direction: every direction but DMA_NONE, with the kernel's numbers")
    func directions() {
        #expect(DMADirection.allCases.filter(\.isValidForMapping) == [.bidirectional, .toDevice, .fromDevice])
        #expect(DMADirection.toDevice.rawValue == 1 && DMADirection.none.rawValue == 3)
        #expect(DMADirection(name: "DMA_FROM_DEVICE") == .fromDevice)
        #expect(DMAAttributes.mmio.rawValue == 1 << 10 && DMAAttributes.skipCPUSync.rawValue == 1 << 5)
        #expect(DMAAttributes([.mmio, .skipCPUSync]).description == "SKIP_CPU_SYNC|MMIO")
    }
}

@Suite("P2P providers and homogeneous scatter-lists")
struct ScatterListTests {
    static func provider() throws -> P2PProvider {
        try P2PProvider(
            owner: try PCIAddress(parsing: "0000:03:00.0"), barIndex: 2, cpuRange: try PhysicalRange(start: 0x38_0000_0000, length: 0x1000_0000),
            busAddress: 0x8000_0000)
    }

    @Test("Bus address = phys + (BAR bus address − BAR CPU address) (pci_p2pdma_bus_addr_map)")
    func busOffset() throws {
        let vram = try Self.provider()
        #expect(vram.busAddress(of: 0x38_0000_1234) == 0x8000_1234)
        #expect(vram.physicalAddress(ofBus: 0x8000_1234) == 0x38_0000_1234)
        #expect(vram.physicalAddress(ofBus: 0x7fff_ffff) == nil)
        #expect(throws: DMAError.self) {
            try P2PProvider(owner: try PCIAddress(parsing: "0000:03:00.0"), barIndex: 6, cpuRange: try PhysicalRange(start: 0, length: 1), busAddress: 0)
        }
    }

    @Test("A P2P list holds ranges of its one provider only; lists are never empty")
    func homogeneous() throws {
        let vram = try Self.provider()
        let inside = try PhysicalRange(start: 0x38_0000_0000, length: 0x2000)
        let ram = try PhysicalRange(start: 0x1000, length: 0x1000)
        let list = try ScatterList.peerToPeer([inside], provider: vram)
        #expect(list.isPeerToPeer && list.provider == vram)
        let mixed = #expect(throws: DMAError.self) { try ScatterList.peerToPeer([inside, ram], provider: vram) }
        #expect(mixed?.errno == .EINVAL)
        let straddle = try PhysicalRange(start: 0x38_0fff_f000, length: 0x2000)
        #expect(throws: DMAError.self) { try ScatterList.peerToPeer([straddle], provider: vram) }
        #expect(throws: DMAError.self) { try ScatterList.host([]) }
        #expect(throws: DMAError.self) { try ScatterList.peerToPeer([], provider: vram) }
        let host = try ScatterList.host([ram])
        #expect(!host.isPeerToPeer && host.provider == nil && host.totalLength == 0x1000)
    }
}

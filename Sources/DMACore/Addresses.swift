/// The size of a page in the model: 4 KiB, as on x86-64 and most arm64 kernels (`PAGE_SIZE`).
public let pageSize: UInt64 = 4096

/// A CPU physical address (`phys_addr_t`): where memory or a BAR sits in the CPU's physical map.
///
/// A distinct type from ``DMAAddress`` because the kernel keeps them apart: a device never sees a
/// physical address, only what the DMA-mapping API turned it into (`phys_to_dma`, an IOVA, a bus
/// address, a bounce slot). Arithmetic is overflow-checked and throws instead of wrapping.
@frozen
public struct PhysicalAddress: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible,
    ExpressibleByIntegerLiteral
{
    /// The address as a 64-bit number.
    public var rawValue: UInt64

    /// Wraps a 64-bit number.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Wraps a 64-bit number.
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    /// Allows `let a: PhysicalAddress = 0x1000`.
    @inlinable public init(integerLiteral value: UInt64) { self.rawValue = value }

    /// The address `bytes` further on.
    /// - Throws: ``DMAError/Code/addressOverflow`` (`EOVERFLOW`) when the sum passes 2^64 − 1.
    @inlinable
    public func advanced(by bytes: UInt64) throws(DMAError) -> PhysicalAddress {
        let (sum, overflow) = rawValue.addingReportingOverflow(bytes)
        if overflow { throw DMAError.overflow(rawValue, bytes) }
        return PhysicalAddress(sum)
    }

    /// The offset of this address inside its page.
    @inlinable public var pageOffset: UInt64 { rawValue & (pageSize - 1) }
    /// The page frame number (`PHYS_PFN`).
    @inlinable public var pfn: UInt64 { rawValue / pageSize }
    /// Whether the address is the start of a page.
    @inlinable public var isPageAligned: Bool { pageOffset == 0 }

    @inlinable public static func < (a: PhysicalAddress, b: PhysicalAddress) -> Bool { a.rawValue < b.rawValue }
    public var description: String { hex(rawValue) }
}

/// An address as a device puts it on the bus (`dma_addr_t`): an IOVA behind an IOMMU, a physical
/// address plus the bus offset for direct mapping, a bus address for peer-to-peer, a bounce slot,
/// or (for virt ops) a CPU virtual address. Overflow-checked like ``PhysicalAddress``.
@frozen
public struct DMAAddress: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible,
    ExpressibleByIntegerLiteral
{
    /// The address as a 64-bit number.
    public var rawValue: UInt64

    /// Wraps a 64-bit number.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Wraps a 64-bit number.
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    /// Allows `let a: DMAAddress = 0x1000`.
    @inlinable public init(integerLiteral value: UInt64) { self.rawValue = value }

    /// `DMA_MAPPING_ERROR` (`include/linux/dma-mapping.h`): all ones, the value a failed map
    /// returns in the kernel. The debug layer refuses to unmap it.
    public static let mappingError = DMAAddress(UInt64.max)

    /// Whether this is `DMA_MAPPING_ERROR` (what `dma_mapping_error()` tests).
    @inlinable public var isMappingError: Bool { rawValue == UInt64.max }

    /// The address `bytes` further on.
    /// - Throws: ``DMAError/Code/addressOverflow`` (`EOVERFLOW`) when the sum passes 2^64 − 1.
    @inlinable
    public func advanced(by bytes: UInt64) throws(DMAError) -> DMAAddress {
        let (sum, overflow) = rawValue.addingReportingOverflow(bytes)
        if overflow { throw DMAError.overflow(rawValue, bytes) }
        return DMAAddress(sum)
    }

    /// The number of bytes from `other` up to this address, or `nil` if `other` is above it.
    @inlinable
    public func distance(from other: DMAAddress) -> UInt64? {
        rawValue >= other.rawValue ? rawValue - other.rawValue : nil
    }

    @inlinable public static func < (a: DMAAddress, b: DMAAddress) -> Bool { a.rawValue < b.rawValue }
    public var description: String { hex(rawValue) }
}

extension DMAError {
    @usableFromInline
    static func overflow(_ base: UInt64, _ bytes: UInt64) -> DMAError {
        DMAError(.addressOverflow, .EOVERFLOW, "\(hex(base)) + \(hex(bytes)) passes the end of the 64-bit address space")
    }
}

/// Formats a number as `0x…` in lower-case hexadecimal, the way the kernel prints addresses.
package func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

/// Formats a byte count for people: `4096` → `"4 KiB"`, `1536` → `"1536 B"`.
package func formatBytes(_ bytes: UInt64) -> String {
    let units: [(UInt64, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
    for (scale, unit) in units where bytes >= scale && bytes % scale == 0 {
        return "\(bytes / scale) \(unit)"
    }
    return "\(bytes) B"
}

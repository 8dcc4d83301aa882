/// A range of CPU physical memory with no `struct page` behind it: the kernel's `struct phys_vec`
/// (`include/linux/types.h`, 7.0; earlier `dma_buf_phys_vec`), "phyr" in the seed discussions.
///
/// A range is never empty and never wraps: both are refused when it is made, so every range that
/// exists can be mapped without further checks of its own shape.
@frozen
public struct PhysicalRange: Hashable, Sendable, CustomStringConvertible {
    /// The first byte.
    public let start: PhysicalAddress
    /// The number of bytes, at least 1.
    public let length: UInt64

    /// Makes a range of `length` bytes at `start`.
    /// - Throws: ``DMAError/Code/invalidArgument`` (`EINVAL`) for a zero length;
    ///   ``DMAError/Code/addressOverflow`` (`EOVERFLOW`) when the last byte would pass 2^64 − 1.
    @inlinable
    public init(start: PhysicalAddress, length: UInt64) throws(DMAError) {
        guard length > 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "a physical range at \(start) has length 0")
        }
        let (_, overflow) = start.rawValue.addingReportingOverflow(length - 1)
        if overflow { throw DMAError.overflow(start.rawValue, length) }
        self.start = start
        self.length = length
    }

    /// The last byte of the range (inclusive, so it never overflows).
    @inlinable public var last: PhysicalAddress { PhysicalAddress(start.rawValue + (length - 1)) }

    /// Whether `address` lies inside the range.
    @inlinable
    public func contains(_ address: PhysicalAddress) -> Bool {
        address >= start && address <= last
    }

    /// Whether all of `other` lies inside this range.
    @inlinable
    public func contains(_ other: PhysicalRange) -> Bool {
        other.start >= start && other.last <= last
    }

    /// Whether the two ranges share at least one byte.
    @inlinable
    public func overlaps(_ other: PhysicalRange) -> Bool {
        start <= other.last && other.start <= last
    }

    /// The sub-range `offset ..< offset + length` of this range.
    /// - Throws: `EINVAL` when it is empty or does not fit inside this range.
    public func subrange(offset: UInt64, length: UInt64) throws(DMAError) -> PhysicalRange {
        guard offset < self.length, length > 0, length <= self.length - offset else {
            throw DMAError(
                .invalidArgument, .EINVAL,
                "sub-range at offset \(hex(offset)) of \(length) bytes does not fit in \(self)")
        }
        return try PhysicalRange(start: PhysicalAddress(start.rawValue + offset), length: length)
    }

    public var description: String { "[\(start)..\(last)] (\(formatBytes(length)))" }
}

/// An ordered list of physical ranges: the `phys_vec` array an exporter hands over.
///
/// The list checks what a single range cannot: that the ranges do not overlap one another and that
/// the total length fits in 64 bits. It may be empty (an empty list maps to nothing and is refused
/// by the scatter-list constructors).
public struct PhysicalRangeList: RandomAccessCollection, Hashable, Sendable {
    /// The ranges, in the order given.
    public private(set) var ranges: [PhysicalRange]
    /// The sum of the lengths.
    public private(set) var totalLength: UInt64

    /// Checks and wraps `ranges`.
    /// - Throws: `EINVAL` if two ranges overlap; `EOVERFLOW` if the total length passes 2^64 − 1.
    /// - Complexity: O(n log n).
    public init(_ ranges: [PhysicalRange]) throws(DMAError) {
        var total: UInt64 = 0
        for range in ranges {
            let (sum, overflow) = total.addingReportingOverflow(range.length)
            if overflow {
                throw DMAError(.addressOverflow, .EOVERFLOW, "the total length of \(ranges.count) ranges passes 2^64 − 1")
            }
            total = sum
        }
        let sorted = ranges.sorted { $0.start < $1.start }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.overlaps(b) {
            throw DMAError(.invalidArgument, .EINVAL, "physical ranges \(a) and \(b) overlap")
        }
        self.ranges = ranges
        self.totalLength = total
    }

    public var startIndex: Int { ranges.startIndex }
    public var endIndex: Int { ranges.endIndex }
    public subscript(position: Int) -> PhysicalRange { ranges[position] }

    /// The list with physically adjacent neighbours merged into one range (what an exporter does
    /// before handing a `phys_vec` array over).
    /// - Complexity: O(n).
    public func coalesced() -> PhysicalRangeList {
        var list = self
        list.ranges = ranges.mergingAdjacent()
        return list
    }
}

extension Sequence<PhysicalRange> {
    /// The package's one extent merge: the ranges in order, each one that starts right after the
    /// one before it (`last + 1 == start`) merged into it. Sort by start first to merge a set.
    /// Merging cannot overflow: the merged range ends where its last part did.
    /// - Complexity: O(n).
    package func mergingAdjacent() -> [PhysicalRange] {
        var out: [PhysicalRange] = []
        out.reserveCapacity(underestimatedCount)
        for range in self {
            if let previous = out.last, previous.last.rawValue &+ 1 == range.start.rawValue,
                let merged = try? PhysicalRange(start: previous.start, length: previous.length + range.length)
            {
                out[out.count - 1] = merged
            } else {
                out.append(range)
            }
        }
        return out
    }
}

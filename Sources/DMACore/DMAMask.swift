/// The addresses a device can drive on the bus: `DMA_BIT_MASK(n)` as set by `dma_set_mask`.
///
/// The kernel's capability rule (`dma_capable` in `include/linux/dma-direct.h`) is that a mapping of
/// `size` bytes at `addr` fits only if `addr + size - 1 <= mask` (and the sum does not wrap).
@frozen
public struct DMAMask: Hashable, Sendable, CustomStringConvertible {
    /// The number of address bits, 1…64.
    public let bits: Int

    /// A mask of `bits` address bits.
    /// - Throws: ``DMAError/Code/invalidMask`` (`EINVAL`) for 0 or more than 64 bits.
    public init(bits: Int) throws(DMAError) {
        guard (1...64).contains(bits) else {
            throw DMAError(.invalidMask, .EINVAL, "a DMA mask must have 1 to 64 bits, not \(bits)")
        }
        self.bits = bits
    }

    /// The full 64-bit mask.
    public static let bits64 = try! DMAMask(bits: 64)
    /// The 32-bit mask of a legacy device (`DMA_BIT_MASK(32)`).
    public static let bits32 = try! DMAMask(bits: 32)

    /// The mask value (`DMA_BIT_MASK(bits)`).
    @inlinable public var value: UInt64 { bits == 64 ? UInt64.max : (UInt64(1) << UInt64(bits)) - 1 }

    /// Whether `length` bytes at `address` are all reachable: `address + length - 1 <= mask`, with
    /// a zero length or a wrapping sum never capable.
    @inlinable
    public func isCapable(_ address: UInt64, length: UInt64) -> Bool {
        guard length > 0 else { return false }
        let (last, overflow) = address.addingReportingOverflow(length - 1)
        return !overflow && last <= value
    }

    /// Whether `length` bytes at a DMA address are reachable.
    @inlinable
    public func isCapable(_ address: DMAAddress, length: UInt64) -> Bool { isCapable(address.rawValue, length: length) }

    public var description: String { "\(bits)-bit (\(hex(value)))" }
}

/// Bytes that are generated, not stored: one byte repeated, or a deterministic pattern of a seed
/// that varies with the offset. ``SimulatedMemory`` keeps a range filled with a pattern as the
/// pattern (``SimulatedMemory/fill(_:count:with:patternOffset:)``) and compares reads against one
/// piece by piece (``SimulatedMemory/firstMismatch(_:count:with:patternOffset:)``), so a 6 GiB
/// buffer with a pattern costs what it touches, not 6 GiB of host memory.
public enum BytePattern: Sendable, Hashable {
    /// Every byte the same.
    case byte(UInt8)
    /// A deterministic pattern from a seed: the byte at offset `x` depends on `x` and the seed.
    case pattern(UInt8)

    /// The byte at `offset` (of the buffer the pattern fills).
    @inlinable
    public func byte(at offset: UInt64) -> UInt8 {
        switch self {
        case .byte(let b): return b
        case .pattern(let seed):
            return UInt8(truncatingIfNeeded: (offset &* 2_654_435_761) >> 13 ^ UInt64(seed) &* 97 ^ offset >> 12)
        }
    }

    /// Writes the `count` bytes at `offset` into `destination`.
    public func generate(offset: UInt64, count: Int, into destination: UnsafeMutableRawPointer) {
        switch self {
        case .byte(let b): destination.initializeMemory(as: UInt8.self, repeating: b, count: count)
        case .pattern:
            let out = destination.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { out[i] = byte(at: offset &+ UInt64(i)) }
        }
    }

    /// The `count` bytes at `offset`, as an array (for pieces: the whole buffer may be larger than
    /// the host can hold).
    public func bytes(offset: UInt64, count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            generate(offset: offset, count: count, into: UnsafeMutableRawPointer(buffer.baseAddress!))
            initialized = count
        }
    }
}

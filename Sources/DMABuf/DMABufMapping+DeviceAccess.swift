import DMACore
import DMAMapping

/// The importing device's side of a mapping: its simulated DMA engine moving bytes at offsets of
/// the buffer, through the mapped segments in order (the device sees the buffer as the segments of
/// its scatter-list laid end to end, as a driver walks `for_each_sgtable_dma_sg`). The package's one
/// walk of a mapping's segments: the device importer and the RDMA memory region both move their
/// bytes with it.
///
/// Every transfer is located whole before a byte moves, so one that does not fit the mapping is
/// `EINVAL` with nothing written; a fault of the engine part-way leaves the pieces before it done,
/// as on hardware.
extension DMABufMapping {
    /// The DMA address and length of each piece of `length` bytes at `offset` of the mapped buffer,
    /// in order: the device's view of the buffer through its segments.
    /// - Throws: `EINVAL` for a length of 0 or bytes past the end of the mapping.
    /// - Complexity: O(n) in the number of segments.
    package func locate(offset: UInt64, length: UInt64) throws(DMAError) -> [(address: DMAAddress, length: Int)] {
        var out: [(address: DMAAddress, length: Int)] = []
        var skip = offset
        var remaining = length
        for segment in table.segments where remaining > 0 {
            if skip >= segment.length {
                skip -= segment.length
                continue
            }
            let chunk = min(segment.length - skip, remaining)
            out.append((DMAAddress(segment.address.rawValue + skip), Int(chunk)))
            remaining -= chunk
            skip = 0
        }
        guard remaining == 0, length > 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "\(length) bytes at offset \(offset) do not fit the \(table.mappedLength)-byte mapping")
        }
        return out
    }

    /// `device` writes `bytes` at `offset` of the buffer through this mapping.
    /// - Throws: as ``locate(offset:length:)`` (nothing written); the engine's faults.
    package func write(_ bytes: [UInt8], offset: UInt64, by device: DMADevice) throws(DMAError) {
        try forEachPiece(offset: offset, count: bytes.count) { (address, length, done) throws(DMAError) in
            try device.dmaWrite(Array(bytes[done..<(done + length)]), at: address)
        }
    }

    /// `device` reads `count` bytes at `offset` of the buffer through this mapping.
    /// - Throws: as ``write(_:offset:by:)``.
    package func read(offset: UInt64, count: Int, by device: DMADevice) throws(DMAError) -> [UInt8] {
        var out: [UInt8] = []
        try forEachPiece(offset: offset, count: count) { (address, length, _) throws(DMAError) in
            out += try device.dmaRead(at: address, count: length)
        }
        return out
    }

    /// `device` writes `count` bytes of `pattern` at `offset` of the buffer through this mapping,
    /// generated piece by piece, never held whole; the first byte is the pattern's byte at
    /// `patternOffset` (the buffer's offset, for an importer whose view starts inside the buffer).
    /// - Throws: as ``write(_:offset:by:)``.
    package func fill(_ pattern: BytePattern, offset: UInt64, count: Int, patternOffset: UInt64, by device: DMADevice) throws(DMAError) {
        try forEachPiece(offset: offset, count: count) { (address, length, done) throws(DMAError) in
            try device.dmaFill(at: address, count: length, with: pattern, patternOffset: patternOffset + UInt64(done))
        }
    }

    /// `device` reads `count` bytes at `offset` of the buffer through this mapping and compares
    /// them with `pattern` (from `patternOffset` on) piece by piece: the index of the first byte
    /// that differs and the byte read there, or nil. With no pattern the read is only checked;
    /// every piece is read, also after a mismatch.
    /// - Throws: as ``write(_:offset:by:)``.
    package func compare(offset: UInt64, count: Int, with pattern: BytePattern?, patternOffset: UInt64, by device: DMADevice)
        throws(DMAError) -> (index: Int, found: UInt8)?
    {
        var mismatch: (index: Int, found: UInt8)?
        try forEachPiece(offset: offset, count: count) { (address, length, done) throws(DMAError) in
            let expected = mismatch == nil ? pattern : nil
            if let found = try device.dmaCompare(at: address, count: length, with: expected, patternOffset: patternOffset + UInt64(done)) {
                mismatch = (done + found.index, found.found)
            }
        }
        return mismatch
    }

    /// Locates `count` bytes at `offset` whole, then hands each piece to `body` with its DMA
    /// address, its length and the bytes of the transfer before it.
    private func forEachPiece(offset: UInt64, count: Int, _ body: (DMAAddress, Int, Int) throws(DMAError) -> Void) throws(DMAError) {
        var done = 0
        for (address, length) in try locate(offset: offset, length: UInt64(count)) {
            try body(address, length, done)
            done += length
        }
    }
}

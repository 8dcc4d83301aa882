import DMABuf
import DMACore

/// The CPU's access to a buffer in a run (`cpu-write`, `cpu-read`, a buffer's `fill:`): inside
/// begin/end CPU access, through the exporter's CPU ranges, piece by piece.
extension Execution {
    func cpuFill(_ exported: Exported, offset: UInt64, count: Int, _ pattern: BytePattern) throws(DMAError) {
        let buffer = exported.buffer
        try buffer.beginCPUAccess(direction: .toDevice)
        try forEachCPUChunk(exported, offset: offset, count: count) { (address, start, length) throws(DMAError) in
            try machine.memory.fill(address, count: length, with: pattern, patternOffset: offset + UInt64(start))
        }
        try buffer.endCPUAccess(direction: .toDevice)
    }

    /// The CPU reads `count` bytes at `offset` and compares them with `pattern` piece by piece
    /// (no pattern: the read is only checked): the first byte that differs, or nil.
    func cpuCompare(_ exported: Exported, offset: UInt64, count: Int, with pattern: BytePattern?) throws(DMAError)
        -> (index: Int, found: UInt8)?
    {
        let buffer = exported.buffer
        try buffer.beginCPUAccess(direction: .fromDevice)
        var mismatch: (index: Int, found: UInt8)?
        try forEachCPUChunk(exported, offset: offset, count: count) { (address, start, length) throws(DMAError) in
            if let pattern, mismatch == nil {
                if let found = try machine.memory.firstMismatch(address, count: length, with: pattern, patternOffset: offset + UInt64(start)) {
                    mismatch = (start + found.index, found.found)
                }
            } else {
                try machine.memory.checkReadable(address, count: length)
            }
        }
        try buffer.endCPUAccess(direction: .fromDevice)
        return mismatch
    }

    func forEachCPUChunk(
        _ exported: Exported, offset: UInt64, count: Int, _ body: (PhysicalAddress, Int, Int) throws(DMAError) -> Void
    ) throws(DMAError) {
        var skip = offset
        var done = 0
        for range in try exported.buffer.exporter.cpuRanges() where done < count {
            if skip >= range.length {
                skip -= range.length
                continue
            }
            let chunk = min(Int(range.length - skip), count - done)
            try body(PhysicalAddress(range.start.rawValue + skip), done, chunk)
            done += chunk
            skip = 0
        }
    }
}

/// The parsed `/proc/PID/fdinfo/FD` of an open file, as `fs/proc/fd.c` (`seq_show`) and, for a
/// dma-buf, `drivers/dma-buf/dma-buf.c` (`dma_buf_show_fdinfo`) print it.
///
/// The generic part is `pos`, `flags` (octal), `mnt_id` and `ino`; a dma-buf adds `size`, `count`
/// (references to its file), `exp_name` (the exporter: `drm` for vgem, `virtio_gpu`, `udmabuf`,
/// `system`, `nv_dmabuf`) and `name` when one was set with `DMA_BUF_SET_NAME`. Lines this parser
/// does not know are kept in ``otherFields``, in order.
public struct FDInfo: Sendable, Hashable, Codable {
    /// One `key:\tvalue` line.
    public struct Field: Sendable, Hashable, Codable {
        /// The text before the first colon.
        public var key: String
        /// The text after it, with leading blanks removed.
        public var value: String

        /// Creates a field.
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    /// `pos`: the file position.
    public var position: Int64?
    /// `flags`: the file's open flags (printed in octal).
    public var flags: UInt32?
    /// `mnt_id`: the mount the file belongs to (the dma-buf pseudo file system for a dma-buf).
    public var mountID: Int?
    /// `ino`: the inode, which identifies the dma-buf across processes and re-exports.
    public var inode: UInt64?
    /// `size`: the dma-buf's size in bytes.
    public var size: Int?
    /// `count`: the references held on the dma-buf's file.
    public var count: Int?
    /// `exp_name`: the exporter's name.
    public var exporter: String?
    /// `name`: the name set by `DMA_BUF_SET_NAME`, if any.
    public var name: String?
    /// Lines this parser does not know (driver-specific ones such as `drm-` keys), in order.
    public var otherFields: [Field]

    /// Whether this is a dma-buf's fdinfo (it has an `exp_name` line).
    public var isDMABuf: Bool { exporter != nil }

    /// Parses the text of an fdinfo file. Malformed numbers are kept as other fields.
    ///
    /// - Complexity: O(n) in the length of the text.
    public init(parsing text: String) {
        self.init(bytes: Array(text.utf8))
    }

    /// Parses the bytes of an fdinfo file, as read.
    public init(bytes: [UInt8]) {
        self = bytes.withUnsafeBufferPointer { FDInfo(buffer: $0) }
    }

    /// Parses the bytes of an fdinfo file where they lie (the census reads a hundred thousand of
    /// them into a stack buffer): lines and keys are found on bytes, numbers are read from bytes,
    /// and a `String` is made only for the values kept. Lines end at `\n`; a key is the bytes
    /// before the first `:`.
    package init(buffer bytes: UnsafeBufferPointer<UInt8>) {
        otherFields = []
        let colon = UInt8(ascii: ":"), newline = UInt8(ascii: "\n"), space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")
        func text(_ slice: Slice<UnsafeBufferPointer<UInt8>>) -> String { String(decoding: slice, as: UTF8.self) }
        func equals(_ slice: Slice<UnsafeBufferPointer<UInt8>>, _ key: StaticString) -> Bool {
            guard slice.count == key.utf8CodeUnitCount else { return false }
            let start = key.utf8Start
            var index = slice.startIndex
            for offset in 0..<slice.count {
                if bytes[index] != start[offset] { return false }
                index += 1
            }
            return true
        }
        // A whole-number value in `radix` (10 or 8), as the kernel prints it: digits only, at most
        // `UInt64.max`; anything else (a sign, a blank, an overflow) is not a number.
        func number(_ slice: Slice<UnsafeBufferPointer<UInt8>>, radix: UInt64 = 10) -> UInt64? {
            guard !slice.isEmpty else { return nil }
            var value: UInt64 = 0
            for byte in slice {
                let digit = UInt64(byte &- UInt8(ascii: "0"))
                guard byte >= UInt8(ascii: "0"), digit < radix else { return nil }
                let (shifted, overflow1) = value.multipliedReportingOverflow(by: radix)
                let (sum, overflow2) = shifted.addingReportingOverflow(digit)
                if overflow1 || overflow2 { return nil }
                value = sum
            }
            return value
        }
        var lineStart = bytes.startIndex
        while lineStart < bytes.endIndex {
            var lineEnd = lineStart
            while lineEnd < bytes.endIndex && bytes[lineEnd] != newline { lineEnd += 1 }
            defer { lineStart = lineEnd + 1 }
            guard lineEnd > lineStart else { continue }
            let line = bytes[lineStart..<lineEnd]
            guard let at = line.firstIndex(of: colon) else {
                otherFields.append(Field(key: text(line), value: ""))
                continue
            }
            var valueStart = at + 1
            while valueStart < lineEnd && (bytes[valueStart] == space || bytes[valueStart] == tab) { valueStart += 1 }
            let key = bytes[lineStart..<at]
            let value = bytes[valueStart..<lineEnd]
            var known = true
            switch key.count {
            case 3 where equals(key, "pos"): if let v = number(value), v <= UInt64(Int64.max) { position = Int64(v) } else { known = false }
            case 5 where equals(key, "flags"): if let v = number(value, radix: 8), v <= UInt64(UInt32.max) { flags = UInt32(v) } else { known = false }
            case 6 where equals(key, "mnt_id"): if let v = number(value), v <= UInt64(Int.max) { mountID = Int(v) } else { known = false }
            case 3 where equals(key, "ino"): if let v = number(value) { inode = v } else { known = false }
            case 4 where equals(key, "size"): if let v = number(value), v <= UInt64(Int.max) { size = Int(v) } else { known = false }
            case 5 where equals(key, "count"): if let v = number(value), v <= UInt64(Int.max) { count = Int(v) } else { known = false }
            case 8 where equals(key, "exp_name"): exporter = text(value)
            case 4 where equals(key, "name"): name = text(value)
            default: known = false
            }
            if !known { otherFields.append(Field(key: text(key), value: text(value))) }
        }
    }
}

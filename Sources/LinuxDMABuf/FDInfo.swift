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
        otherFields = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let colon = line.firstIndex(of: ":") else {
                otherFields.append(Field(key: String(line), value: ""))
                continue
            }
            let key = String(line[..<colon])
            let value = String(line[line.index(after: colon)...].drop(while: { $0 == " " || $0 == "\t" }))
            var known = true
            switch key {
            case "pos": if let v = Int64(value) { position = v } else { known = false }
            case "flags": if let v = UInt32(value, radix: 8) { flags = v } else { known = false }
            case "mnt_id": if let v = Int(value) { mountID = v } else { known = false }
            case "ino": if let v = UInt64(value) { inode = v } else { known = false }
            case "size": if let v = Int(value), v >= 0 { size = v } else { known = false }
            case "count": if let v = Int(value) { count = v } else { known = false }
            case "exp_name": exporter = value
            case "name": name = value
            default: known = false
            }
            if !known { otherFields.append(Field(key: key, value: value)) }
        }
    }
}

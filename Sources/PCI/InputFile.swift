#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import DMACore

/// A file a person names (`--file`, a scenario, a scenario's topology file), read whole: a regular
/// file, or a pipe such as `/dev/stdin`, whose size is not known ahead; never more than a limit,
/// so that `/dev/zero` or a file of gigabytes is an error instead of a hang.
public enum InputFile {
    /// The most bytes an input file may have: 64 MiB, far above the largest topology or
    /// scenario (10,000 devices are about 3 MiB of YAML).
    public static let defaultLimit = 64 << 20

    /// The text of the file at `path`, decoded as UTF-8.
    /// - Note: `what` names the file in errors ("the topology file").
    /// - Throws: ``InputFileError`` naming the file, with the errno: the open or read failed
    ///   (`ENOENT`, `EACCES`), a folder (`EISDIR`), more than `limit` bytes (`EFBIG`).
    /// - Complexity: O(min(size, `limit`)).
    public static func read(_ path: String, what: String, limit: Int = defaultLimit) throws(InputFileError) -> String {
        func failure(_ errno: Errno, _ reason: String) -> InputFileError {
            InputFileError(file: path, errno: errno, "cannot read \(what): \(reason)")
        }
        let fd: Int32
        switch SystemCalls.open(path, O_RDONLY) {
        case .success(let value): fd = value
        case .failure(let errno): throw failure(errno, String(cString: strerror(errno.rawValue)))
        }
        defer { _ = SystemCalls.close(fd) }
        if case .success(let status) = SystemCalls.fstat(fd) {
            if status.st_mode & S_IFMT == S_IFDIR { throw failure(.EISDIR, "it is a folder") }
            if status.st_mode & S_IFMT == S_IFREG && status.st_size > limit {
                throw failure(.EFBIG, "\(status.st_size) bytes, more than \(limit)")
            }
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let asked = min(chunk.count, limit + 1 - bytes.count)
            let count: Int
            switch chunk.withUnsafeMutableBytes({ SystemCalls.read(fd, UnsafeMutableRawBufferPointer(rebasing: $0[..<asked])) }) {
            case .success(let value): count = value
            case .failure(let errno): throw failure(errno, String(cString: strerror(errno.rawValue)))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > limit { throw failure(.EFBIG, "more than \(limit) bytes (a device or a file that never ends?)") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

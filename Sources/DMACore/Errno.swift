/// A Linux error number, as the kernel returns it negated and user space reads it from `errno`.
///
/// This is an extensible struct, not an enum (the swift-system way): any value can be carried,
/// including kernel-internal numbers that leak to user space such as `ENOTSUPP` (524), which
/// `nv_dmabuf` returns from `mmap`. The numbers are Linux's (`include/uapi/asm-generic/errno-base.h`,
/// `errno.h`, and `include/linux/errno.h` for the kernel-internal ones), whatever machine runs the
/// model, because the model is of Linux.
///
/// The name is swift-system's (`SystemPackage.Errno`) on purpose, and kept: it is the same idea
/// in the same shape (a raw `Int32`, constants named as the C macros), so a reader who knows one
/// reads the other; on Linux the numbers are the same, so `SystemPackage.Errno(rawValue:
/// e.rawValue)` converts. This package does not depend on swift-system; a program that imports
/// both names this one `DMACore.Errno` where the two meet.
@frozen
public struct Errno: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The positive error number.
    public var rawValue: Int32

    /// Wraps a positive error number.
    @inlinable
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// Operation not permitted.
    public static let EPERM = Errno(rawValue: 1)
    /// No such file or directory (also: no such registered name).
    public static let ENOENT = Errno(rawValue: 2)
    /// No such process.
    public static let ESRCH = Errno(rawValue: 3)
    /// Interrupted system call.
    public static let EINTR = Errno(rawValue: 4)
    /// I/O error; `dma_map_sgtable` returns it when a segment cannot be mapped.
    public static let EIO = Errno(rawValue: 5)
    /// Argument list too long.
    public static let E2BIG = Errno(rawValue: 7)
    /// Bad file descriptor.
    public static let EBADF = Errno(rawValue: 9)
    /// Try again.
    public static let EAGAIN = Errno(rawValue: 11)
    /// Out of memory, or out of a resource such as IOVA space.
    public static let ENOMEM = Errno(rawValue: 12)
    /// Permission denied (a `/proc/PID` folder of another user, a DRM ioctl without the rights).
    public static let EACCES = Errno(rawValue: 13)
    /// Bad address; the model's IOMMU faults carry it.
    public static let EFAULT = Errno(rawValue: 14)
    /// Device or resource busy.
    public static let EBUSY = Errno(rawValue: 16)
    /// File exists (a duplicate registration).
    public static let EEXIST = Errno(rawValue: 17)
    /// Invalid cross-device link; `openat2` with `RESOLVE_BENEATH` gives it for a path that leaves
    /// the folder it must stay beneath (a sysfs link out of the tree being read).
    public static let EXDEV = Errno(rawValue: 18)
    /// No such device (a revoked or absent device).
    public static let ENODEV = Errno(rawValue: 19)
    /// Not a directory: a file where a folder was expected.
    public static let ENOTDIR = Errno(rawValue: 20)
    /// Is a directory: a folder where a file was expected.
    public static let EISDIR = Errno(rawValue: 21)
    /// Invalid argument.
    public static let EINVAL = Errno(rawValue: 22)
    /// Inappropriate ioctl for device: the request is not one the file's driver knows.
    public static let ENOTTY = Errno(rawValue: 25)
    /// File too large: more bytes than the file can hold (a sysfs attribute longer than a page).
    public static let EFBIG = Errno(rawValue: 27)
    /// No space left on device.
    public static let ENOSPC = Errno(rawValue: 28)
    /// Result out of range.
    public static let ERANGE = Errno(rawValue: 34)
    /// Resource deadlock avoided: a `ww_mutex` such as the reservation lock taken again in the same
    /// context (`dma_resv_lock`), or a buffer re-entered from its own `invalidate_mappings`.
    public static let EDEADLK = Errno(rawValue: 35)
    /// Too many levels of symbolic links, or a link where `O_NOFOLLOW` asked for none.
    public static let ELOOP = Errno(rawValue: 40)
    /// Value too large for the type (an address that wraps past 2^64).
    public static let EOVERFLOW = Errno(rawValue: 75)
    /// File descriptor in bad state: `udmabuf` gives it for an fd that is not a memfd.
    public static let EBADFD = Errno(rawValue: 77)
    /// Operation not supported.
    public static let EOPNOTSUPP = Errno(rawValue: 95)
    /// Connection timed out: the model's answer for a wait that would never end.
    public static let ETIMEDOUT = Errno(rawValue: 110)
    /// Remote I/O error: the kernel's answer when a peer-to-peer mapping is impossible.
    public static let EREMOTEIO = Errno(rawValue: 121)
    /// State not recoverable: the model's errno for a call the kernel answers with `BUG()`, which
    /// returns no errno at all (the calling task is killed in an oops).
    public static let ENOTRECOVERABLE = Errno(rawValue: 131)
    /// Kernel-internal "operation is not supported" (`include/linux/errno.h`), which some drivers
    /// leak to user space; `nv_dmabuf`'s `mmap` does.
    public static let ENOTSUPP = Errno(rawValue: 524)

    private static let names: [Int32: (String, String)] = [
        1: ("EPERM", "operation not permitted"),
        2: ("ENOENT", "no such file, device or name"),
        3: ("ESRCH", "no such process"),
        4: ("EINTR", "interrupted system call"),
        5: ("EIO", "input/output error"),
        7: ("E2BIG", "argument list too long"),
        9: ("EBADF", "bad file descriptor"),
        11: ("EAGAIN", "resource temporarily unavailable"),
        12: ("ENOMEM", "out of memory or address space"),
        13: ("EACCES", "permission denied"),
        14: ("EFAULT", "bad address"),
        16: ("EBUSY", "device or resource busy"),
        17: ("EEXIST", "already exists"),
        18: ("EXDEV", "the path leaves the tree it must stay in"),
        19: ("ENODEV", "no such device"),
        20: ("ENOTDIR", "not a folder"),
        21: ("EISDIR", "is a folder"),
        22: ("EINVAL", "invalid argument"),
        25: ("ENOTTY", "inappropriate ioctl for this file"),
        27: ("EFBIG", "file too large"),
        28: ("ENOSPC", "no space left"),
        34: ("ERANGE", "result out of range"),
        35: ("EDEADLK", "resource deadlock avoided"),
        40: ("ELOOP", "a symbolic link where none may be, or a loop of them"),
        75: ("EOVERFLOW", "value too large"),
        77: ("EBADFD", "file descriptor in bad state"),
        95: ("EOPNOTSUPP", "operation not supported"),
        110: ("ETIMEDOUT", "timed out"),
        121: ("EREMOTEIO", "remote I/O error (peer-to-peer not possible)"),
        131: ("ENOTRECOVERABLE", "state not recoverable (the kernel would BUG() here and kill the caller)"),
        524: ("ENOTSUPP", "operation not supported (a kernel-internal errno leaked by the driver; from a dma-buf mmap it means the exporter has no CPU mapping)"),
    ]

    /// The symbolic name (`"EINVAL"`), or `"errno N"` for a number this table does not know.
    public var name: String { Self.names[rawValue]?.0 ?? "errno \(rawValue)" }

    /// A short human sentence for the number.
    public var summary: String { Self.names[rawValue]?.1 ?? "unknown error \(rawValue)" }

    /// Looks up an error number by its symbolic name (`"EREMOTEIO"`); `nil` when unknown.
    public init?(name: String) {
        guard let entry = Self.names.first(where: { $0.value.0 == name }) else { return nil }
        self.rawValue = entry.key
    }

    public var description: String { "\(name) (\(rawValue))" }
}

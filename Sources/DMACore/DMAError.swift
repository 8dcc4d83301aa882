/// A typed error of the model: a stable code, the errno the kernel would return in the same case,
/// and a message a person can act on.
///
/// The shape follows swift-nio's newest errors: a struct with a ``Code`` so codes can be added
/// without breaking users, rather than an enum. The codes are closed: only this package makes them
/// (each with one meaning and the errno it goes with), and code outside it uses
/// ``Code/vendor(_:)``. Programmer errors of the model itself are
/// preconditions; everything a caller can get wrong is one of these.
public struct DMAError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, independent of the wording. Compare codes, not messages.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The stable, kebab-case name of the code (`"peer-to-peer-not-supported"`).
        public let name: String

        /// Creates a code: for this package's modules only, so the set of codes stays closed and
        /// each keeps one meaning (``vendor(_:)`` is the way out for code outside the package).
        package init(_ name: String) { self.name = name }

        /// A code of third-party ops or exporters, for a failure none of the package's codes
        /// names. Its name is `vendor.NAME`, so it can never pass for one of the package's codes.
        public static func vendor(_ name: String) -> Code { Code("vendor.\(name)") }

        public var description: String { name }

        /// A malformed argument (zero length, unaligned range, empty list, bad flags): `EINVAL`.
        public static let invalidArgument = Code("invalid-argument")
        /// Address arithmetic would wrap past 2^64: `EOVERFLOW`.
        public static let addressOverflow = Code("address-overflow")
        /// A direction a call refuses by returning `EINVAL`. The DMA-mapping API never does: it
        /// meets `DMA_NONE` with a `BUG_ON`, which is ``kernelBug``.
        public static let invalidDirection = Code("invalid-direction")
        /// A call the kernel does not answer at all: it hits a `BUG()`/`BUG_ON()` and the calling
        /// task dies in an oops, so no errno comes back. The model refuses the call instead, changes
        /// nothing, and carries `ENOTRECOVERABLE` ("state not recoverable"), an errno no DMA-mapping
        /// call returns, so that the error can never be read as one the kernel gave. The case the
        /// model meets: `DMA_NONE` handed to `dma_map_phys`, `dma_map_sgtable`, their unmaps or a
        /// sync (`BUG_ON(!valid_dma_direction(dir))` in `kernel/dma/mapping.c`, 7.1 and every
        /// release before it).
        public static let kernelBug = Code("kernel-bug")
        /// A DMA mask outside 1…64 bits: `EINVAL`.
        public static let invalidMask = Code("invalid-mask")
        /// The address is beyond what the device can reach and nothing can bounce it: `ENOMEM` (no
        /// bounce slot), or `EIO` for a whole list.
        public static let notDMACapable = Code("not-dma-capable")
        /// A peer-to-peer list given to ops or a path that cannot carry it (`EREMOTEIO`).
        public static let peerToPeerNotSupported = Code("peer-to-peer-not-supported")
        /// IOVA space, bounce slots or pages ran out: `ENOMEM` (`ENOSPC` for space on a device).
        public static let resourceExhausted = Code("resource-exhausted")
        /// A name that is not registered, a file that is not there (`ENOENT`), a device that is unknown
        /// (`ENODEV`), a process that is gone (`ESRCH`).
        public static let notFound = Code("not-found")
        /// A name that is already registered: `EEXIST`.
        public static let alreadyExists = Code("already-exists")
        /// An address that is not mapped, or not mapped the way the call says: `EINVAL`.
        public static let notMapped = Code("not-mapped")
        /// A device access that the IOMMU refused: no translation, or no permission: `EFAULT`.
        public static let iommuFault = Code("iommu-fault")
        /// A physical access that no memory or BAR backs (a master abort on real hardware): `EIO`.
        public static let busError = Code("bus-error")
        /// A request the ops or the device does not support: `EOPNOTSUPP` (or the kernel-internal
        /// `ENOTSUPP` a driver leaks).
        public static let notSupported = Code("not-supported")
        /// The memory is gone (revoked) or the device is absent: `ENODEV`.
        public static let noDevice = Code("no-device")
        /// A DMA-API debug check failed in strict mode: `EINVAL`.
        public static let debugCheckFailed = Code("dma-debug")
        /// A wait that would never end, given up (`ETIMEDOUT`): a fence nobody will signal.
        public static let timedOut = Code("timed-out")
        /// An I/O that went wrong (`EIO`): data that did not arrive, a call the kernel answers with
        /// `EIO` (`dma_iova_link` misused).
        public static let ioError = Code("io-error")
        /// A scatter-list map that failed part way and was undone (`dma_map_sgtable`): the errno is
        /// the one the ops return for the whole list (`EIO` from dma-direct, `EINVAL` from
        /// iommu-dma) and ``DMAError/cause`` is the segment's own error.
        public static let mapFailed = Code("map-failed")
        /// The call does not exist in the kernel version the model follows (``KernelRules``): a
        /// feature that came in a later release (VFIO dma-buf export before 6.19 is `ENOTTY`, the
        /// errno `vfio_pci_core_ioctl_feature` gives an unknown feature).
        public static let notInKernelVersion = Code("not-in-kernel-version")
    }

    /// What went wrong.
    public var code: Code
    /// The errno the kernel returns in the same situation.
    public var errno: Errno
    /// A sentence for a person: what failed, with the numbers, and where possible what to do.
    public var message: String
    private var causeBox: Cause?

    /// The error this one wraps, when a layer re-throws a lower layer's error with its own errno
    /// (dma-direct's `map_sg` turns a segment's `ENOMEM` into `EIO`): the original code and errno
    /// stay reachable here.
    public var cause: DMAError? {
        get { causeBox?.error }
        set { causeBox = newValue.map(Cause.init) }
    }

    /// The innermost error of the ``cause`` chain (this error when it wraps none).
    public var rootCause: DMAError {
        var error = self
        while let inner = error.cause { error = inner }
        return error
    }

    /// Creates an error, wrapping `cause` when it is given.
    public init(_ code: Code, _ errno: Errno, _ message: String, cause: DMAError? = nil) {
        self.code = code
        self.errno = errno
        self.message = message
        self.causeBox = cause.map(Cause.init)
    }

    /// The cause, boxed: a struct cannot hold a value of its own type inline.
    private final class Cause: Hashable, Sendable {
        let error: DMAError
        init(_ error: DMAError) { self.error = error }
        static func == (a: Cause, b: Cause) -> Bool { a.error == b.error }
        func hash(into hasher: inout Hasher) { hasher.combine(error) }
    }

    public var description: String { "\(errno.name): \(message)" }
}

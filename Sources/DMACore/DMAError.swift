/// A typed error of the model: a stable code, the errno the kernel would return in the same case,
/// and a message a person can act on.
///
/// The shape follows swift-nio's newest errors: a struct with an extensible ``Code`` so codes can be
/// added without breaking users, rather than an enum. Programmer errors of the model itself are
/// preconditions; everything a caller can get wrong is one of these.
public struct DMAError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, independent of the wording. Compare codes, not messages.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The stable, kebab-case name of the code (`"peer-to-peer-not-supported"`).
        public let name: String

        /// Creates a code. Third-party ops may define their own codes the same way.
        public init(_ name: String) { self.name = name }

        public var description: String { name }

        /// A malformed argument (zero length, unaligned range, empty list, bad flags).
        public static let invalidArgument = Code("invalid-argument")
        /// Address arithmetic would wrap past 2^64.
        public static let addressOverflow = Code("address-overflow")
        /// `DMA_NONE`, or another direction the call does not accept (`valid_dma_direction`).
        public static let invalidDirection = Code("invalid-direction")
        /// A DMA mask outside 1…64 bits.
        public static let invalidMask = Code("invalid-mask")
        /// The address is beyond what the device can reach and nothing can bounce it.
        public static let notDMACapable = Code("not-dma-capable")
        /// A peer-to-peer list given to ops or a path that cannot carry it (`EREMOTEIO`).
        public static let peerToPeerNotSupported = Code("peer-to-peer-not-supported")
        /// IOVA space, bounce slots or pages ran out.
        public static let resourceExhausted = Code("resource-exhausted")
        /// A name that is not registered, a device that is unknown.
        public static let notFound = Code("not-found")
        /// A name that is already registered.
        public static let alreadyExists = Code("already-exists")
        /// An address that is not mapped, or not mapped the way the call says.
        public static let notMapped = Code("not-mapped")
        /// A device access that the IOMMU refused: no translation, or no permission.
        public static let iommuFault = Code("iommu-fault")
        /// A physical access that no memory or BAR backs (a master abort on real hardware).
        public static let busError = Code("bus-error")
        /// A request the ops or the device does not support.
        public static let notSupported = Code("not-supported")
        /// The memory is gone (revoked) or the device is absent.
        public static let noDevice = Code("no-device")
        /// A DMA-API debug check failed in strict mode.
        public static let debugCheckFailed = Code("dma-debug")
    }

    /// What went wrong.
    public var code: Code
    /// The errno the kernel returns in the same situation.
    public var errno: Errno
    /// A sentence for a person: what failed, with the numbers, and where possible what to do.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ errno: Errno, _ message: String) {
        self.code = code
        self.errno = errno
        self.message = message
    }

    public var description: String { "\(errno.name): \(message)" }
}

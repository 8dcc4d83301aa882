/// Which way the data of a streaming mapping flows (`enum dma_data_direction`,
/// `include/linux/dma-direction.h`), with the kernel's numbering.
public enum DMADirection: Int32, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// `DMA_BIDIRECTIONAL`: the device may read and write.
    case bidirectional = 0
    /// `DMA_TO_DEVICE`: the device only reads (a transmit buffer).
    case toDevice = 1
    /// `DMA_FROM_DEVICE`: the device only writes (a receive buffer).
    case fromDevice = 2
    /// `DMA_NONE`: a debugging value; never valid for a mapping.
    case none = 3

    /// Whether the kernel accepts this direction for a mapping (`valid_dma_direction` in
    /// `include/linux/dma-direction.h`): every value but `DMA_NONE`.
    @inlinable public var isValidForMapping: Bool { self != .none }

    /// Whether the device may read memory mapped this way.
    @inlinable public var deviceReads: Bool { self == .toDevice || self == .bidirectional }
    /// Whether the device may write memory mapped this way.
    @inlinable public var deviceWrites: Bool { self == .fromDevice || self == .bidirectional }

    /// Parses the kernel spelling (`DMA_TO_DEVICE`) or the short one (`to-device`).
    public init?(name: String) {
        switch name.lowercased() {
        case "dma_bidirectional", "bidirectional": self = .bidirectional
        case "dma_to_device", "to-device", "todevice": self = .toDevice
        case "dma_from_device", "from-device", "fromdevice": self = .fromDevice
        case "dma_none", "none": self = .none
        default: return nil
        }
    }

    /// The kernel's name, `DMA_TO_DEVICE` and so on.
    public var kernelName: String {
        switch self {
        case .bidirectional: "DMA_BIDIRECTIONAL"
        case .toDevice: "DMA_TO_DEVICE"
        case .fromDevice: "DMA_FROM_DEVICE"
        case .none: "DMA_NONE"
        }
    }

    public var description: String { kernelName }
}

extension DMAError {
    /// The error for a mapping, unmapping or sync asked with `DMA_NONE`: the kernel's DMA API does
    /// not return an error there, it crashes (`BUG_ON(!valid_dma_direction(dir))` at the top of
    /// `dma_map_phys`, `dma_unmap_phys`, `__dma_map_sg_attrs`, `dma_unmap_sg_attrs`,
    /// `dma_map_resource` and the four syncs, `kernel/dma/mapping.c`, 7.1). The model refuses the
    /// call before any ops see it, with code `DMAError.Code.kernelBug` and `ENOTRECOVERABLE`, not
    /// `EINVAL`, which would say the kernel returned something.
    public static func invalidDirection(_ direction: DMADirection, _ call: String) -> DMAError {
        DMAError(
            .kernelBug, .ENOTRECOVERABLE,
            "\(call) with \(direction.kernelName): the kernel would crash here (BUG_ON(!valid_dma_direction(dir)), kernel/dma/mapping.c); the model refuses it and maps nothing")
    }
}

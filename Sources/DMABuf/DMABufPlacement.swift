/// Where a buffer's memory is now, as the simulator reports it.
public enum DMABufPlacement: String, Hashable, Sendable, Codable, CustomStringConvertible {
    /// Device memory of a GPU (VRAM).
    case vram
    /// System RAM (the GTT domain of a GPU, a heap buffer).
    case system
    /// A device BAR exported as it is (a VFIO BAR).
    case bar
    /// Nowhere: the buffer was released (the last `dma_buf_put`) and the exporter let go of the
    /// memory; nothing can reach it any more.
    case released

    public var description: String { rawValue }
}

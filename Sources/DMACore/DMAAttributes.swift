/// The `DMA_ATTR_*` flags of a mapping call (`include/linux/dma-mapping.h`), with the kernel's bit
/// values so a trace can be compared with the kernel's.
@frozen
public struct DMAAttributes: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// `DMA_ATTR_WEAK_ORDERING`: the device may reorder writes.
    public static let weakOrdering = DMAAttributes(rawValue: 1 << 1)
    /// `DMA_ATTR_SKIP_CPU_SYNC`: the caller syncs by itself; map and unmap do not sync (a bounce
    /// buffer is not copied back at unmap).
    public static let skipCPUSync = DMAAttributes(rawValue: 1 << 5)
    /// `DMA_ATTR_MMIO` (6.18): the physical address is MMIO (a BAR), not RAM. It is never bounced,
    /// never CPU-synced, and beyond the DMA mask it is an error rather than a bounce.
    public static let mmio = DMAAttributes(rawValue: 1 << 10)

    public var description: String {
        var names: [String] = []
        if contains(.weakOrdering) { names.append("WEAK_ORDERING") }
        if contains(.skipCPUSync) { names.append("SKIP_CPU_SYNC") }
        if contains(.mmio) { names.append("MMIO") }
        let known: DMAAttributes = [.weakOrdering, .skipCPUSync, .mmio]
        let rest = subtracting(known)
        if !rest.isEmpty { names.append(hex(rest.rawValue)) }
        return names.isEmpty ? "0" : names.joined(separator: "|")
    }
}

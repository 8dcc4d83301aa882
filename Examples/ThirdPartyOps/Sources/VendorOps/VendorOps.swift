import DMACore
import DMAMapping
import Synchronization

/// A vendor's identity-mapped ops done right, in the seven members every ops writes: DMA address
/// = physical address, refused (not wrapped, not truncated) when the device cannot reach it. The
/// scatter-list map and unmap are the protocol's defaults (the P2P check, bus addresses for a P2P
/// list behind the same switch, one `mapPhys` per entry with unwind); the DMA API checks the
/// direction before any of this runs.
public struct IdentityOps: DMAOps {
    let checksMask: Bool
    public init() { checksMask = true }
    /// The same ops with a bug vendors really ship: the DMA mask is never checked, so a 32-bit
    /// device is handed addresses above 4 GiB (on hardware its top address bits are dropped and it
    /// scribbles over low memory). The suite must catch exactly that.
    public static let maskIgnoring = IdentityOps(checksMask: false)
    private init(checksMask: Bool) { self.checksMask = checksMask }

    public var name: String { checksMask ? "vendor-identity" : "vendor-mask-ignoring" }
    public var p2pSupported: Bool { true }

    public func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAAddress
    {
        try checkMemoryKind(range, attributes: attributes, device: device)
        guard !checksMask || device.mask.isCapable(DMAAddress(range.start.rawValue), length: range.length) else {
            throw DMAError(.notDMACapable, .ENOMEM, "\(device.name) cannot reach \(range) (mask \(device.mask))")
        }
        return DMAAddress(range.start.rawValue)
    }

    public func unmapPhys(_ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) {}
    public func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}
    public func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}
    public func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress {
        PhysicalAddress(address.rawValue)
    }
}

/// A vendor's remapping unit with state per device: each device gets a window of 256 MiB of DMA
/// addresses at 256 MiB (below 4 GiB, so every mask of 32 bits or more reaches it), and each
/// mapping takes the next pages of it through a table kept on the device
/// (`DMADevice.opsState(_:make:)`). Not P2P capable: the default scatter-list map refuses P2P.
public struct WindowOps: DMAOps {
    public init() {}
    public var name: String { "vendor-window" }
    public var p2pSupported: Bool { false }
    static let base: UInt64 = 0x1000_0000, size: UInt64 = 0x1000_0000

    /// One device's table: window offset → physical page run. Told when the device goes away.
    public final class Table: DMAOpsDeviceState {
        let entries = Mutex((next: UInt64(0), runs: [UInt64: PhysicalRange]()))
        /// The mappings the device still held when it went away (a driver's leak).
        public let leakedAtRelease = Mutex<Int?>(nil)
        public var live: Int { entries.withLock { $0.runs.count } }
        public func deviceReleased(_ device: String) { leakedAtRelease.withLock { $0 = live } }
    }

    public func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAAddress
    {
        try checkMemoryKind(range, attributes: attributes, device: device)
        let table = try device.opsState(Table.self) { Table() }
        let offset = range.start.rawValue % pageSize, pages = (offset + range.length + pageSize - 1) / pageSize * pageSize
        let at: UInt64? = table.entries.withLock { window in
            if window.runs.isEmpty { window.next = 0 }  // the whole window is free again
            guard pages <= Self.size - window.next else { return nil }
            defer { window.next += pages }
            window.runs[window.next] = range
            return Self.base + window.next + offset
        }
        guard let at else { throw DMAError(.resourceExhausted, .ENOMEM, "\(device.name): the vendor window is full") }
        return DMAAddress(at)
    }

    public func unmapPhys(_ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError)
    {
        let key = (address.rawValue &- Self.base) / pageSize * pageSize
        let removed = try device.opsState(Table.self) { Table() }.entries.withLock { $0.runs.removeValue(forKey: key) }
        guard removed != nil else { throw DMAError(.notMapped, .EINVAL, "\(device.name): \(address) is not mapped") }
    }

    public func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}
    public func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice) throws(DMAError) {}

    public func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress {
        let offset = address.rawValue &- Self.base
        let run = try device.opsState(Table.self) { Table() }.entries.withLock { window in
            window.runs.first { $0.key <= offset && offset - $0.key < $0.value.start.rawValue % pageSize + $0.value.length }
        }
        guard let run else { throw DMAError(.iommuFault, .EFAULT, "\(device.name): \(address) is not in a live window mapping") }
        return PhysicalAddress(run.value.start.rawValue - run.value.start.rawValue % pageSize + (offset - run.key))
    }
}

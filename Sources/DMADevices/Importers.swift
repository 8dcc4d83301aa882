import DMABuf
import DMACore
import DMAMapping
import Synchronization

/// An importing device as drivers use one: it attaches to buffers (statically, or dynamically with
/// `invalidate_mappings`), maps them, and lets its simulated DMA engine move bytes through the
/// mapping. A well-behaved dynamic importer unmaps when told (`invalidate_mappings`) and remembers
/// the dead mapping, so that a device that still uses it can be shown to fault.
///
/// Models the GPU importer, the HFI-style NIC (custom ops that cannot carry P2P) and the 32-bit
/// device that bounces, by the device and ops given.
public final class DeviceImporter: DMABufImporter {
    /// The importer's name in traces.
    public let name: String
    /// The device.
    public let device: DMADevice
    /// Whether it attaches dynamically (with `invalidate_mappings`).
    public let dynamic: Bool
    public let allowPeerToPeer: Bool

    private struct State {
        var attachments: [ObjectIdentifier: DMABufAttachment] = [:]
        var live: [ObjectIdentifier: (mapping: DMABufMapping, direction: DMADirection)] = [:]
        var dead: [ObjectIdentifier: DMABufMapping] = [:]
        var invalidations = 0
    }

    private let state = ModelMutex(State())

    /// Creates an importer.
    public init(name: String, device: DMADevice, dynamic: Bool, allowPeerToPeer: Bool) {
        self.name = name
        self.device = device
        self.dynamic = dynamic
        self.allowPeerToPeer = allowPeerToPeer
    }

    /// How many times an exporter told it to drop its mappings.
    public var invalidations: Int { state.withLock { $0.invalidations } }

    /// Attaches to `buffer`.
    /// - Throws: `EBUSY` when already attached; whatever the buffer's attach throws.
    @discardableResult
    public func attach(_ buffer: DMABuffer) throws(DMAError) -> DMABufAttachment {
        if attachment(of: buffer) != nil {
            throw DMAError(.busy, .EBUSY, "\(name) is already attached to \(buffer.name)")
        }
        let attachment = try buffer.attach(device, importer: dynamic ? self : nil)
        state.withLock { $0.attachments[ObjectIdentifier(buffer)] = attachment }
        return attachment
    }

    /// The attachment to `buffer`, if any.
    public func attachment(of buffer: DMABuffer) -> DMABufAttachment? {
        state.withLock { $0.attachments[ObjectIdentifier(buffer)] }
    }

    /// The live mapping of `buffer`, if any.
    public func mapping(of buffer: DMABuffer) -> DMABufMapping? { state.withLock { $0.live[ObjectIdentifier(buffer)]?.mapping } }

    /// The last mapping of `buffer` an exporter invalidated, if any.
    public func deadMapping(of buffer: DMABuffer) -> DMABufMapping? { state.withLock { $0.dead[ObjectIdentifier(buffer)] } }

    private func requireAttachment(_ buffer: DMABuffer, _ call: String) throws(DMAError) -> DMABufAttachment {
        guard let attachment = attachment(of: buffer) else {
            throw DMAError(.noDevice, .ENODEV, "\(call): \(name) is not attached to \(buffer.name); attach first")
        }
        return attachment
    }

    /// Maps `buffer`: a dynamic importer holds the reservation lock around the map (as
    /// `ib_umem_dmabuf_map_pages` does), a static one uses the unlocked call.
    /// - Throws: `ENODEV` when not attached; `EBUSY` when already mapped; whatever the map throws.
    @discardableResult
    public func map(_ buffer: DMABuffer, direction: DMADirection) throws(DMAError) -> DMABufMapping {
        let attachment = try requireAttachment(buffer, "map")
        if mapping(of: buffer) != nil {
            throw DMAError(.busy, .EBUSY, "\(name) already has \(buffer.name) mapped; unmap it first")
        }
        let mapping = dynamic
            ? try buffer.resv.withLock { (context) throws(DMAError) in try buffer.map(attachment, direction: direction, in: context) }
            : try buffer.mapUnlocked(attachment, direction: direction)
        state.withLock {
            $0.live[ObjectIdentifier(buffer)] = (mapping, direction)
            $0.dead[ObjectIdentifier(buffer)] = nil
        }
        return mapping
    }

    /// Unmaps `buffer`.
    /// - Throws: `ENODEV` when not attached; `EINVAL` when not mapped (an unmap twice).
    public func unmap(_ buffer: DMABuffer, direction: DMADirection) throws(DMAError) {
        let attachment = try requireAttachment(buffer, "unmap")
        guard let mapping = mapping(of: buffer) else {
            throw DMAError(.notMapped, .EINVAL, "\(name) has no live mapping of \(buffer.name) (unmapped twice, or invalidated by the exporter)")
        }
        if dynamic {
            try buffer.resv.withLock { (context) throws(DMAError) in try buffer.unmap(attachment, mapping, direction: direction, in: context) }
        } else {
            try buffer.unmapUnlocked(attachment, mapping, direction: direction)
        }
        state.withLock { $0.live[ObjectIdentifier(buffer)] = nil }
    }

    /// Detaches from `buffer`.
    /// - Throws: `ENODEV` when not attached; `EBUSY` while mapped.
    public func detach(_ buffer: DMABuffer) throws(DMAError) {
        let attachment = try requireAttachment(buffer, "detach")
        try buffer.detach(attachment)
        state.withLock {
            $0.attachments[ObjectIdentifier(buffer)] = nil
            $0.dead[ObjectIdentifier(buffer)] = nil
        }
    }

    /// `invalidate_mappings`: drop the mapping now (the lock is held by the exporter), remember it
    /// as dead.
    public func invalidateMappings(_ attachment: DMABufAttachment, in context: ReservationContext) {
        let buffer = attachment.buffer
        let live = state.withLock { state -> (mapping: DMABufMapping, direction: DMADirection)? in
            state.invalidations += 1
            return state.live.removeValue(forKey: ObjectIdentifier(buffer))
        }
        guard let live else { return }
        // Called with the reservation lock held by the exporter's context, which it passes on.
        try? buffer.unmap(attachment, live.mapping, direction: live.direction, in: context)
        state.withLock { $0.dead[ObjectIdentifier(buffer)] = live.mapping }
    }

    /// The device writes `bytes` at `offset` of `buffer` through its live mapping — or, when the
    /// exporter invalidated it, through the dead one, as a device that was not stopped in time.
    /// - Throws: `ENODEV` without any mapping; `EINVAL` for bytes past the end of the mapping
    ///   (nothing written); the engine's faults.
    public func deviceWrite(_ bytes: [UInt8], to buffer: DMABuffer, offset: UInt64) throws(DMAError) {
        try usableMapping(buffer).write(bytes, offset: offset, by: device)
    }

    /// The device reads `count` bytes at `offset` of `buffer` (see ``deviceWrite(_:to:offset:)``).
    public func deviceRead(from buffer: DMABuffer, offset: UInt64, count: Int) throws(DMAError) -> [UInt8] {
        try usableMapping(buffer).read(offset: offset, count: count, by: device)
    }

    /// The device writes `count` bytes of `pattern` at `offset` of `buffer` (the pattern's offset
    /// is the buffer's), through its live or dead mapping as ``deviceWrite(_:to:offset:)``; the
    /// bytes are generated, never held whole.
    public func deviceFill(_ pattern: BytePattern, to buffer: DMABuffer, offset: UInt64, count: Int) throws(DMAError) {
        try usableMapping(buffer).fill(pattern, offset: offset, count: count, patternOffset: offset, by: device)
    }

    /// The device reads `count` bytes at `offset` of `buffer` and compares them with `pattern`
    /// (the buffer's offsets) piece by piece: the index of the first byte that differs and the
    /// byte read, or nil. With no pattern the read is only checked. See ``deviceRead(from:offset:count:)``.
    public func deviceCompare(_ buffer: DMABuffer, offset: UInt64, count: Int, with pattern: BytePattern?) throws(DMAError)
        -> (index: Int, found: UInt8)?
    {
        try usableMapping(buffer).compare(offset: offset, count: count, with: pattern, patternOffset: offset, by: device)
    }

    private func usableMapping(_ buffer: DMABuffer) throws(DMAError) -> DMABufMapping {
        if let live = mapping(of: buffer) { return live }
        if let dead = deadMapping(of: buffer) { return dead }
        throw DMAError(.noDevice, .ENODEV, "\(name) has no mapping of \(buffer.name); map it first")
    }

    /// Syncs the live mapping for the CPU or the device.
    public func sync(_ buffer: DMABuffer, forCPU: Bool, direction: DMADirection) throws(DMAError) {
        guard let mapping = mapping(of: buffer) else {
            throw DMAError(.notMapped, .EINVAL, "\(name) has no live mapping of \(buffer.name) to sync")
        }
        if forCPU {
            try device.syncForCPU(mapping.table, direction: direction)
        } else {
            try device.syncForDevice(mapping.table, direction: direction)
        }
    }
}

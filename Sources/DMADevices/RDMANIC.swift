import DMABuf
import DMACore
import DMAMapping
import Synchronization

/// An RDMA memory region over a dma-buf (`struct ib_umem_dmabuf`,
/// `drivers/infiniband/core/umem_dmabuf.c`), as mlx5 uses it.
///
/// - A dynamic MR (`ib_umem_dmabuf_get`) attaches dynamically with `allow_peer2peer` and maps only
///   when the NIC first touches the memory (an ODP-style page fault: `ib_umem_dmabuf_map_pages`
///   under the reservation lock). When the exporter moves or revokes the memory, the MR is
///   invalidated (`invalidate_mappings` → the driver zaps its translation and calls
///   `ib_umem_dmabuf_unmap_pages`); the next access faults in again and re-maps.
/// - A pinned MR (`ib_umem_dmabuf_get_pinned`) attaches the same way, then pins and maps at once,
///   so the memory never moves; it has no `invalidate_mappings` (7.1), so exporters that must be
///   able to revoke (VFIO) refuse it at attach.
public final class RDMAMemoryRegion: DMABufImporter {
    /// The NIC's device.
    public let device: DMADevice
    /// The buffer.
    public let buffer: DMABuffer
    /// Whether it is a pinned MR.
    public let pinned: Bool
    /// The access the MR was registered for.
    public let direction: DMADirection
    public var allowPeerToPeer: Bool { true }
    /// A pinned MR has no `invalidate_mappings` (7.1 removed the warning stub), so it cannot be
    /// revoked; a dynamic MR has mlx5's callback. Before 7.1 a pinned MR has a `move_notify` that
    /// only warns (`ib_umem_dmabuf_unsupported_move_notify`, `umem_dmabuf.c`): the callback was
    /// required then.
    public var canInvalidate: Bool { !pinned || !buffer.rules.has(.revocableAttachments) }

    private struct State {
        var attachment: DMABufAttachment?
        var mapping: DMABufMapping?
        var faults = 0
        var invalidations = 0
        var unsupportedInvalidations = 0
        var deregistered = false
    }

    private let state = ModelMutex(State())

    init(device: DMADevice, buffer: DMABuffer, pinned: Bool, direction: DMADirection) throws(DMAError) {
        self.device = device
        self.buffer = buffer
        self.pinned = pinned
        self.direction = direction
        let attachment = try buffer.attach(device, importer: self)
        state.withLock { $0.attachment = attachment }
        guard pinned else { return }
        do throws(DMAError) {
            try buffer.resv.withLock { (context) throws(DMAError) in
                try buffer.pin(attachment, in: context)
                do throws(DMAError) {
                    let mapping = try buffer.map(attachment, direction: direction, in: context)
                    state.withLock { $0.mapping = mapping }
                } catch {
                    try? buffer.unpin(attachment, in: context)
                    throw error
                }
            }
        } catch {
            try? buffer.detach(attachment)
            throw error
        }
    }

    /// The live mapping, if any.
    public var mapping: DMABufMapping? { state.withLock { $0.mapping } }
    /// How many times the NIC faulted the MR in (mapped it on access).
    public var faultIns: Int { state.withLock { $0.faults } }
    /// How many times the exporter invalidated it.
    public var invalidations: Int { state.withLock { $0.invalidations } }
    /// How many times a pinned MR's warn-only `move_notify` was called (before 7.1): the kernel
    /// warns "Invalidate callback should not be called when memory is pinned" and does nothing.
    public var unsupportedInvalidations: Int { state.withLock { $0.unsupportedInvalidations } }

    public func invalidateMappings(_ attachment: DMABufAttachment, in context: ReservationContext) {
        if pinned {
            state.withLock { $0.unsupportedInvalidations += 1 }
            return
        }
        let mapping = state.withLock { state -> DMABufMapping? in
            state.invalidations += 1
            defer { state.mapping = nil }
            return state.mapping
        }
        if let mapping { try? buffer.unmap(attachment, mapping, direction: direction, in: context) }
    }

    /// Faults the MR in when it has no mapping: lock, map, unlock.
    private func ensureMapped() throws(DMAError) -> DMABufMapping {
        let (attachment, current, gone) = state.withLock { ($0.attachment, $0.mapping, $0.deregistered) }
        guard !gone, let attachment else { throw DMAError(.noDevice, .ENODEV, "the MR of \(buffer.name) is deregistered") }
        if let current { return current }
        let mapping = try buffer.resv.withLock { (context) throws(DMAError) in try buffer.map(attachment, direction: direction, in: context) }
        state.withLock {
            $0.mapping = mapping
            $0.faults += 1
        }
        return mapping
    }

    /// The NIC writes `bytes` at `offset` of the MR (an RDMA write landing in it).
    /// - Throws: the fault-in's errors (`ENODEV` after a revoke), the engine's faults.
    public func write(_ bytes: [UInt8], offset: UInt64) throws(DMAError) {
        let mapping = try ensureMapped()
        var done = 0
        for (address, count) in try DeviceImporter.locate(mapping, offset: offset, length: UInt64(bytes.count)) {
            try device.dmaWrite(Array(bytes[done..<(done + count)]), at: address)
            done += count
        }
    }

    /// The NIC reads `count` bytes at `offset` (an RDMA read or send from it).
    public func read(offset: UInt64, count: Int) throws(DMAError) -> [UInt8] {
        let mapping = try ensureMapped()
        var out: [UInt8] = []
        for (address, length) in try DeviceImporter.locate(mapping, offset: offset, length: UInt64(count)) {
            out += try device.dmaRead(at: address, count: length)
        }
        return out
    }

    /// The NIC writes `count` bytes of `pattern` at `offset` of the MR (the pattern's offsets are
    /// the buffer's), generated, never held whole. See ``write(_:offset:)``.
    public func fill(_ pattern: BytePattern, offset: UInt64, count: Int) throws(DMAError) {
        try DeviceImporter.fill(pattern, try ensureMapped(), device, offset: offset, count: count)
    }

    /// The NIC reads `count` bytes at `offset` and compares them with `pattern` piece by piece:
    /// the index of the first byte that differs and the byte read, or nil. See ``read(offset:count:)``.
    public func compare(offset: UInt64, count: Int, with pattern: BytePattern?) throws(DMAError) -> (index: Int, found: UInt8)? {
        try DeviceImporter.compare(try ensureMapped(), device, offset: offset, count: count, with: pattern)
    }

    /// `ib_umem_dmabuf_release`: unmap, unpin, detach.
    public func deregister() throws(DMAError) {
        let (attachment, mapping) = state.withLock { state -> (DMABufAttachment?, DMABufMapping?) in
            defer {
                state.deregistered = true
                state.mapping = nil
                state.attachment = nil
            }
            return (state.attachment, state.mapping)
        }
        guard let attachment else { return }
        try buffer.resv.withLock { (context) throws(DMAError) in
            if let mapping { try buffer.unmap(attachment, mapping, direction: direction, in: context) }
            if pinned { try buffer.unpin(attachment, in: context) }
        }
        try buffer.detach(attachment)
    }
}

/// An RDMA NIC: a device that registers dma-bufs as memory regions.
public final class RDMANIC: Sendable {
    /// Its name.
    public let name: String
    /// Its device.
    public let device: DMADevice

    /// Creates the NIC.
    public init(name: String, device: DMADevice) {
        self.name = name
        self.device = device
    }

    /// Registers `buffer` as an MR: dynamic by default (`ib_umem_dmabuf_get`), pinned on request
    /// (`ib_umem_dmabuf_get_pinned`).
    /// - Throws: whatever attach, pin or map throw; nothing stays attached then.
    public func registerMR(_ buffer: DMABuffer, pinned: Bool = false, direction: DMADirection = .bidirectional) throws(DMAError)
        -> RDMAMemoryRegion
    {
        try RDMAMemoryRegion(device: device, buffer: buffer, pinned: pinned, direction: direction)
    }
}

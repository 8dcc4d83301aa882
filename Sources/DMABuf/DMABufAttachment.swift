import DMACore
import DMAMapping
import Synchronization

/// A device's attachment to a buffer (`struct dma_buf_attachment`).
public final class DMABufAttachment: Sendable, CustomStringConvertible {
    /// The buffer.
    public let buffer: DMABuffer
    /// The importing device.
    public let device: DMADevice
    /// The importer's ops; `nil` for a static importer.
    public let importer: (any DMABufImporter)?
    private struct State {
        var peerToPeer: Bool
        var mappings: [DMABufMapping] = []
        var pinCount = 0
        var pinnedForMap = 0
        var detached = false
        /// The mapping `dma_buf_dynamic_attach` made and keeps (`attach->sgt`, before 6.15).
        var cached: DMABufMapping?
    }

    private let state: ModelMutex<State>

    init(buffer: DMABuffer, device: DMADevice, importer: (any DMABufImporter)?) {
        self.buffer = buffer
        self.device = device
        self.importer = importer
        // dma_buf_dynamic_attach: peer2peer comes from the importer's ops, so a static importer
        // never has it.
        self.state = ModelMutex(State(peerToPeer: importer?.allowPeerToPeer ?? false))
    }

    /// Whether the importer has `invalidate_mappings` (`dma_buf_attachment_is_dynamic`).
    public var isDynamic: Bool { importer != nil }

    /// `attach->peer2peer`: the importer allows P2P and the exporter has not cleared it.
    public var peerToPeer: Bool {
        get { state.withLock { $0.peerToPeer } }
    }

    /// Lets the exporter clear P2P during `attach` (`attach->peer2peer = false`, as amdgpu does when
    /// `pci_p2pdma_distance` says no).
    public func disablePeerToPeer() { state.withLock { $0.peerToPeer = false } }

    /// The live mappings.
    public var mappings: [DMABufMapping] { state.withLock { $0.mappings } }

    /// Whether the buffer is pinned for this attachment.
    public var isPinned: Bool { state.withLock { $0.pinCount + $0.pinnedForMap > 0 } }

    /// Whether the attachment has been detached.
    public var isDetached: Bool { state.withLock { $0.detached } }

    /// The mapping made at attach and kept until detach (`attach->sgt`): only before 6.15, for an
    /// importer and an exporter of different dynamic-ness (`KernelRules.cachesMappingAtAttach`).
    public var cachedMapping: DMABufMapping? { state.withLock { $0.cached } }

    func setCached(_ mapping: DMABufMapping?) { state.withLock { $0.cached = mapping } }

    /// Records a new mapping; `false` (nothing recorded) when the attachment was detached
    /// meanwhile, so a map never leaves a mapping on a detached attachment.
    func record(_ mapping: DMABufMapping, pinned: Bool) -> Bool {
        state.withLock {
            guard !$0.detached else { return false }
            $0.mappings.append(mapping)
            if pinned { $0.pinnedForMap += 1 }
            return true
        }
    }

    /// Removes the mapping; returns whether it had pinned the buffer, `nil` when it is not live.
    func remove(_ mapping: DMABufMapping) -> Bool? {
        state.withLock { state -> Bool? in
            guard let index = state.mappings.firstIndex(of: mapping) else { return nil }
            state.mappings.remove(at: index)
            if state.pinnedForMap > 0 {
                state.pinnedForMap -= 1
                return true
            }
            return false
        }
    }

    func adjustPin(_ delta: Int) -> Int { state.withLock { $0.pinCount += delta; return $0.pinCount } }
    /// Marks the attachment detached when it has no mapping and no pin, in one step with the check
    /// (a map from another task cannot land between them); otherwise says why not.
    func markDetachedIfIdle() -> (mappings: Int, pinned: Bool)? {
        state.withLock {
            guard $0.mappings.isEmpty, $0.pinCount + $0.pinnedForMap == 0 else {
                return ($0.mappings.count, $0.pinCount + $0.pinnedForMap > 0)
            }
            $0.detached = true
            return nil
        }
    }

    public var description: String { "\(device.name) → \(buffer.name)" }
}

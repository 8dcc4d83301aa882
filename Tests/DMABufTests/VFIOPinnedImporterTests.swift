import DMABuf
import DMACore
import DMADevices
import DMAMapping
import DMAScenario
import Testing

/// Pinned importers of a VFIO dma-buf, per release: `drivers/vfio/pci/vfio_pci_dmabuf.c` (6.19 and
/// 7.0: a `pin` that always fails; 7.1: no `pin`, and `dma_buf_attach_revocable` at attach),
/// `drivers/dma-buf/dma-buf.c` (`dma_buf_map_attachment` pins every attachment of an exporter with
/// `pin` while `CONFIG_DMABUF_MOVE_NOTIFY` is off) and `drivers/infiniband/core/umem_dmabuf.c`
/// (7.1: `ib_umem_dmabuf_get_pinned_revocable_and_lock`).
@Suite("Pinned importers of a VFIO dma-buf, per kernel release")
struct VFIOPinnedImporterTests {
    static let linux71 = KernelRules(KernelVersion(7, 1))
    /// The releases with VFIO's always-failing pin, with and without the option.
    static let failingPin: [KernelRules] = [
        KernelRules(KernelVersion(6, 19)), KernelRules(KernelVersion(6, 19), moveNotify: true), KernelRules(KernelVersion(7, 0)),
        KernelRules(KernelVersion(7, 0), moveNotify: true),
    ]

    private func vfio(_ rig: Rig) throws -> VFIOBARExporter {
        try rig.machine.vfioBuffer(name: "bar", device: "0000:09:00.0", bar: 2, ranges: [VFIOBARExporter.Range(offset: 0, length: 64 << 10)])
    }

    private func nic(_ rig: Rig) throws -> RDMANIC { RDMANIC(name: "mlx5_0", device: try rig.nearNIC()) }

    @Test("drivers/vfio/pci/vfio_pci_dmabuf.c, 6.19 and 7.0: a pinned mlx5 MR attaches, then vfio_pci_dma_buf_pin fails with EOPNOTSUPP; nothing stays attached", arguments: failingPin)
    func pinnedMRFailsAtPin(rules: KernelRules) throws {
        let rig = try Rig(rules: rules)
        let bar = try vfio(rig)
        #expect(bar.isDynamic, "a pin op makes the buffer dynamic (dma_buf_is_dynamic)")
        let error = #expect(throws: DMAError.self) { try nic(rig).registerMR(bar.buffer, pinned: true) }
        #expect(error?.errno == .EOPNOTSUPP && error?.message.contains("vfio_pci_dma_buf_pin") == true, "\(rules): \(String(describing: error))")
        #expect(bar.buffer.attachments.isEmpty && !bar.buffer.isPinned, "\(rules)")
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("drivers/dma-buf/dma-buf.c, 6.19 and 7.0 without CONFIG_DMABUF_MOVE_NOTIFY: every map pins first, so every map of a VFIO dma-buf is EOPNOTSUPP; with the option a dynamic importer maps unpinned")
    func everyMapPinsWithoutMoveNotify() throws {
        for rules in Self.failingPin {
            let rig = try Rig(rules: rules)
            let bar = try vfio(rig)
            let importer = DeviceImporter(name: "nic", device: try rig.nearNIC(), dynamic: true, allowPeerToPeer: true)
            let attachment = try importer.attach(bar.buffer)
            #expect(bar.buffer.pinsOnMap(attachment) == !rules.moveNotify.isEnabled, "\(rules)")
            if rules.moveNotify.isEnabled {
                let mapping = try importer.map(bar.buffer, direction: .toDevice)
                #expect(mapping.mapType == .busAddress && !attachment.isPinned, "\(rules)")
                try importer.unmap(bar.buffer, direction: .toDevice)
                let mr = try nic(rig).registerMR(bar.buffer)
                try mr.write([0x5a], offset: 0)
                #expect(try mr.read(offset: 0, count: 1) == [0x5a])
                try mr.deregister()
            } else {
                let error = #expect(throws: DMAError.self) { try importer.map(bar.buffer, direction: .toDevice) }
                #expect(error?.errno == .EOPNOTSUPP, "\(rules)")
                #expect(attachment.mappings.isEmpty && !attachment.isPinned)
                // mlx5 maps a dynamic MR at registration: the registration fails, nothing stays.
                let mr = #expect(throws: DMAError.self) { try nic(rig).registerMR(bar.buffer) }
                #expect(mr?.errno == .EOPNOTSUPP, "\(rules)")
                #expect(bar.buffer.attachments.count == 1, "only the importer attached above is left")
            }
            try importer.detach(bar.buffer)
            #expect(bar.buffer.attachments.isEmpty)
        }
    }

    @Test("drivers/vfio/pci/vfio_pci_dmabuf.c, 7.1: VFIO has no pin (not dynamic); a pinned mlx5 MR, which has no invalidate_mappings, is EOPNOTSUPP at attach")
    func pinnedMRRefusedAtAttach() throws {
        let rig = try Rig(rules: Self.linux71)
        let bar = try vfio(rig)
        #expect(!bar.isDynamic)
        let error = #expect(throws: DMAError.self) { try nic(rig).registerMR(bar.buffer, pinned: true) }
        #expect(error?.errno == .EOPNOTSUPP && error?.message.contains("dma_buf_attach_revocable") == true, "\(String(describing: error))")
        #expect(bar.buffer.attachments.isEmpty)
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("drivers/infiniband/core/umem_dmabuf.c, 7.1: a revocable pinned MR registers on VFIO; a revoke tells it, it unmaps and unpins, the revoke completes; later access is EINVAL, also after restore")
    func revocablePinnedMROnVFIO() throws {
        let rig = try Rig(rules: Self.linux71)
        let bar = try vfio(rig)
        let mr = try nic(rig).registerMR(bar.buffer, pinned: true, revocable: true)
        let attachment = try #require(bar.buffer.attachments.first)
        #expect(mr.revocable && mr.canInvalidate && attachment.isPinned && mr.mapping?.mapType == .busAddress)
        try mr.write([1, 2, 3], offset: 4096)
        #expect(try mr.read(offset: 4096, count: 3) == [1, 2, 3])
        // vfio_pci_dma_buf_move(vdev, true): invalidate_mappings revokes the MR (unmap, unpin), so
        // the wait for every importer to unmap ends: no ETIMEDOUT, memory decoding goes off.
        let told = try bar.buffer.resv.withLock { (c) throws(DMAError) in try bar.revoke(.reset, in: c) }
        #expect(told.count == 1 && mr.invalidations == 1 && mr.isRevoked)
        #expect(mr.mapping == nil && attachment.mappings.isEmpty && !attachment.isPinned)
        #expect(!rig.machine.memory.isDecoding(bar.provider))
        let after = #expect(throws: DMAError.self) { try mr.write([9], offset: 4096) }
        #expect(after?.errno == .EINVAL && after?.message.contains("revoked") == true)
        // The exporter restores; the MR never maps again (a pinned importer's revoke is permanent).
        #expect(try bar.restore().count == 1)
        #expect(rig.machine.memory.isDecoding(bar.provider))
        let stillDead = #expect(throws: DMAError.self) { _ = try mr.read(offset: 4096, count: 1) }
        #expect(stillDead?.errno == .EINVAL && mr.faultIns == 1 && mr.mapping == nil)
        try mr.deregister()
        #expect(bar.buffer.attachments.isEmpty)
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("drivers/infiniband/core/umem_dmabuf.c, 7.1: on a GPU exporter a revocable pinned MR pins as a pinned MR does (VRAM, P2P, no migration; eviction EBUSY)")
    func revocablePinnedMROnGPU() throws {
        for revocable in [false, true] {
            let rig = try Rig(rules: Self.linux71)
            let gpu = try rig.gpuBuffer()
            let mr = try nic(rig).registerMR(gpu.buffer, pinned: true, revocable: revocable)
            #expect(gpu.isPinned && mr.mapping?.placement == .vram && mr.mapping?.peerToPeer == true && mr.mapping?.migratedBytes == 0)
            #expect(mr.canInvalidate == revocable, "only the revocable one has invalidate_mappings")
            let evict = #expect(throws: DMAError.self) { try gpu.buffer.resv.withLock { (c) throws(DMAError) in try gpu.evict(in: c) } }
            #expect(evict?.errno == .EBUSY && mr.invalidations == 0)
            try mr.write([7], offset: 0)
            try mr.deregister()
            #expect(!gpu.isPinned && gpu.buffer.attachments.isEmpty)
        }
    }

    @Test("drivers/infiniband/core/umem_dmabuf.c: before 7.1 there is no revocable pinned MR (EOPNOTSUPP naming both releases); a revocable MR must be pinned (EINVAL)")
    func revocableMRBefore71() throws {
        for rules in [KernelRules(KernelVersion(7, 0)), KernelRules(KernelVersion(6, 19), moveNotify: true)] {
            let rig = try Rig(rules: rules)
            for buffer in [try vfio(rig).buffer, try rig.gpuBuffer().buffer] {
                let error = #expect(throws: DMAError.self) { try nic(rig).registerMR(buffer, pinned: true, revocable: true) }
                #expect(error?.code == .notSupported && error?.errno == .EOPNOTSUPP, "\(rules)")
                #expect(error?.message.contains("\(rules.version)") == true && error?.message.contains("7.1") == true)
                #expect(buffer.attachments.isEmpty)
            }
        }
        let rig = try Rig(rules: Self.linux71)
        let gpu = try rig.gpuBuffer()
        let dynamic = #expect(throws: DMAError.self) { try nic(rig).registerMR(gpu.buffer, revocable: true) }
        #expect(dynamic?.errno == .EINVAL && gpu.buffer.attachments.isEmpty)
    }
}

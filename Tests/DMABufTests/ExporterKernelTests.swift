import DMABuf
import DMACore
import DMADevices
import DMAMapping
import DMAScenario
import PCI
import Testing

private typealias R = VFIOBARExporter.Range
private let mib: UInt64 = 1 << 20

/// The VFIO BAR of the built-in machine's accelerator, exported as four 1 MiB ranges 2 MiB apart.
private func fourRanges(_ rig: Rig) throws -> VFIOBARExporter {
    try rig.machine.vfioBuffer(name: "bar", device: "0000:09:00.0", bar: 2, ranges: (0..<4).map { R(offset: UInt64($0) * 2 * mib, length: mib) })
}

private func dynamicImporter(_ name: String, _ device: DMADevice, p2p: Bool = true) -> DeviceImporter {
    DeviceImporter(name: name, device: device, dynamic: true, allowPeerToPeer: p2p)
}

/// Issue [K] item 2: the VFIO exporter maps as `dma_buf_phys_vec_to_sgt` does.
@Suite("VFIO dma-buf as drivers/vfio/pci/vfio_pci_dmabuf.c and drivers/dma-buf/dma-buf-mapping.c have it")
struct VFIOKernelTests {
    @Test("drivers/dma-buf/dma-buf-mapping.c (6.19): through the host bridge under an IOMMU, four 1 MiB ranges are one IOVA reservation linked DMA_ATTR_MMIO: one DMA segment")
    func iovaLinkedOneSegment() throws {
        let rig = try Rig()
        let vfio = try fourRanges(rig)
        let nic = dynamicImporter("nic", try rig.bridgeNIC(ops: "iommu"))
        try nic.attach(vfio.buffer)
        let mapping = try nic.map(vfio.buffer, direction: .bidirectional)
        #expect(mapping.table.p2pMapType == .throughHostBridge)
        #expect(mapping.table.segments.count == 1 && mapping.table.segments[0].length == 4 * mib && !mapping.table.segments[0].isBusAddress)
        #expect(mapping.mmioMapCall == "dma_iova_link(DMA_ATTR_MMIO)")
        // 3 MiB into the IOVA run is the fourth range, 6 MiB into the BAR: a peer under the switch sees it there.
        try nic.deviceWrite([1, 2, 3], to: vfio.buffer, offset: 3 * mib + 5)
        let peer = dynamicImporter("peer", try rig.nearNIC())
        try peer.attach(vfio.buffer)
        try peer.map(vfio.buffer, direction: .bidirectional)
        #expect(try peer.deviceRead(from: vfio.buffer, offset: 3 * mib + 5, count: 3) == [1, 2, 3])
        let physical = try rig.machine.memory.read(PhysicalAddress(vfio.provider.cpuRange.start.rawValue + 6 * mib + 5), count: 3)
        #expect(physical == [1, 2, 3])
        for importer in [nic, peer] {
            try importer.unmap(vfio.buffer, direction: .bidirectional)
            try importer.detach(vfio.buffer)
        }
        #expect(rig.machine.finish().isEmpty, "the IOVA reservation was destroyed at unmap")
    }

    @Test("drivers/dma-buf/dma-buf-mapping.c (6.19): through the host bridge without an IOMMU, one dma_map_phys(DMA_ATTR_MMIO) per range at the physical address")
    func perRangeWithoutIOMMU() throws {
        let rig = try Rig()
        let vfio = try fourRanges(rig)
        let nic = dynamicImporter("nic", try rig.bridgeNIC(ops: "direct"))
        try nic.attach(vfio.buffer)
        let mapping = try nic.map(vfio.buffer, direction: .toDevice)
        #expect(mapping.mmioMapCall == "dma_map_phys(DMA_ATTR_MMIO)")
        #expect(mapping.table.segments.map(\.address.rawValue) == vfio.physicalRanges.map(\.start.rawValue))
        #expect(mapping.table.segments.allSatisfy { $0.length == mib && !$0.isBusAddress })
        try rig.machine.memory.write([8, 9], at: PhysicalAddress(vfio.provider.cpuRange.start.rawValue + 4 * mib + 7))
        #expect(try nic.deviceRead(from: vfio.buffer, offset: 2 * mib + 7, count: 2) == [8, 9], "the third range is 4 MiB into the BAR")
        try nic.unmap(vfio.buffer, direction: .toDevice)
        try nic.detach(vfio.buffer)
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("drivers/dma-buf/dma-buf-mapping.c (6.19): on a bus-address route the importer's DMA ops are not asked: ops without P2P get bus addresses per range")
    func busAddressIgnoresOps() throws {
        let rig = try Rig()
        let vfio = try fourRanges(rig)
        let attachment = try vfio.buffer.attach(try rig.nearNIC(ops: "virt"), importer: RecordingImporter())
        let mapping = try vfio.buffer.mapUnlocked(attachment, direction: .toDevice)
        #expect(mapping.table.p2pMapType == .busAddress && mapping.mmioMapCall == nil)
        #expect(mapping.table.segments.map(\.address) == vfio.physicalRanges.map { vfio.provider.busAddress(of: $0.start) })
        #expect(mapping.table.segments.allSatisfy { $0.isBusAddress })
        try vfio.buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
        try vfio.buffer.detach(attachment)
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("drivers/dma-buf/dma-buf-mapping.c (fill_sg_entry): an entry holds at most UINT_MAX bytes, so a 5 GiB range is two entries")
    func entryLimit() throws {
        let rig = try Rig()
        // The GPU's 64 GiB VRAM BAR stands in for a large VFIO BAR.
        var bars: [Int: P2PProvider] = [:]
        for provider in rig.machine.topology.providers(of: try PCIAddress(parsing: "0000:03:00.0")) { bars[provider.barIndex] = provider }
        let vfio = try VFIOBARExporter(name: "big", regionIndex: 0, bars: bars, ranges: [R(offset: 0, length: 5 << 30)], memory: rig.machine.memory)
        let attachment = try vfio.buffer.attach(try rig.nearNIC(), importer: RecordingImporter())
        let mapping = try vfio.buffer.mapUnlocked(attachment, direction: .toDevice)
        #expect(mapping.table.segments.map(\.length) == [UInt64(UInt32.max), (5 << 30) - UInt64(UInt32.max)])
        #expect(mapping.table.segments[1].address.rawValue == mapping.table.segments[0].address.rawValue + UInt64(UInt32.max))
        try vfio.buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
        try vfio.buffer.detach(attachment)
    }

    @Test("drivers/vfio/pci/vfio_pci_dmabuf.c (vfio_pci_dma_buf_move, _cleanup): a restore tells the importers too; a close always tells them, even after a revoke")
    func restoreAndCloseNotify() throws {
        let rig = try Rig()
        let vfio = try fourRanges(rig)
        let nic = dynamicImporter("nic", try rig.nearNIC())
        try nic.attach(vfio.buffer)
        try nic.map(vfio.buffer, direction: .bidirectional)
        #expect(try vfio.buffer.resv.withLock { (c) throws(DMAError) in try vfio.revoke(.reset, in: c) }.count == 1)
        #expect(!rig.machine.memory.isDecoding(vfio.provider))
        #expect(try vfio.restore().count == 1 && nic.invalidations == 2, "vfio_pci_dma_buf_move(false) calls dma_buf_invalidate_mappings")
        #expect(rig.machine.memory.isDecoding(vfio.provider))
        #expect(try vfio.restore().isEmpty, "nothing changes, nobody is told")
        #expect(try vfio.buffer.resv.withLock { (c) throws(DMAError) in try vfio.revoke(.memoryDisabled, in: c) }.count == 1)
        #expect(try vfio.buffer.resv.withLock { (c) throws(DMAError) in try vfio.revoke(.closed, in: c) }.count == 1 && nic.invalidations == 4)
        #expect(try vfio.buffer.resv.withLock { (c) throws(DMAError) in try vfio.revoke(.closed, in: c) }.isEmpty)
        try nic.detach(vfio.buffer)
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("drivers/vfio/pci/vfio_pci_dmabuf.c, 7.1: a revoke waits for every importer to unmap and for the kernel fences before memory decoding goes off; 7.0 does not wait")
    func revokeWaits() throws {
        // 7.0 with CONFIG_DMABUF_MOVE_NOTIFY: without it every map of a VFIO dma-buf pins first and
        // 7.0's vfio_pci_dma_buf_pin refuses (VFIOPinnedImporterTests).
        for (rules, waits) in [(KernelRules(KernelVersion(7, 0), moveNotify: true), false), (KernelRules(KernelVersion(7, 1)), true)] {
            let rig = try Rig(rules: rules)
            let vfio = try fourRanges(rig)
            let careless = RecordingImporter()
            let attachment = try vfio.buffer.attach(try rig.nearNIC(), importer: careless)
            let mapping = try vfio.buffer.mapUnlocked(attachment, direction: .toDevice)
            let revoke = Result { () throws(DMAError) in try vfio.buffer.resv.withLock { (c) throws(DMAError) in try vfio.revoke(.reset, in: c) } }
            #expect(careless.told == 1 && vfio.isRevoked, "\(rules)")
            if waits {
                let error = #expect(throws: DMAError.self) { try revoke.get() }
                #expect(error?.errno == .ETIMEDOUT)
                #expect(rig.machine.memory.isDecoding(vfio.provider), "decoding goes off only after the wait")
                try vfio.buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
                #expect(try vfio.buffer.resv.withLock { (c) throws(DMAError) in try vfio.revoke(.reset, in: c) }.isEmpty)
            } else {
                #expect(try revoke.get().count == 1)
                try vfio.buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
            }
            #expect(!rig.machine.memory.isDecoding(vfio.provider), "\(rules)")
            try vfio.restore()
            // A kernel fence that is still pending: 7.1 waits for it.
            let fence = DMAFence(context: 7, seqno: 1)
            try vfio.buffer.resv.withLock { (c) throws(DMAError) in try vfio.buffer.resv.addFence(fence, usage: .kernel, by: c) }
            let fenced = Result { () throws(DMAError) in try vfio.buffer.resv.withLock { (c) throws(DMAError) in try vfio.revoke(.lowPower, in: c) } }
            #expect((try? fenced.get()) == nil ? waits : !waits, "\(rules)")
            fence.signal()
            _ = try vfio.buffer.resv.withLock { (c) throws(DMAError) in try vfio.revoke(.lowPower, in: c) }
            #expect(!rig.machine.memory.isDecoding(vfio.provider))
            try vfio.buffer.detach(attachment)
        }
    }

    @Test("drivers/vfio/pci/vfio_pci_dmabuf.c, 7.1 (vfio_pci_dma_buf_move): the revoke waits for every fence (DMA_RESV_USAGE_BOOKKEEP), not only the kernel's", arguments: [DMAFenceUsage.write, .read, .bookkeep])
    func revokeWaitsForEveryFence(usage: DMAFenceUsage) throws {
        let rig = try Rig()
        let vfio = try fourRanges(rig)
        let fence = DMAFence(context: 9, seqno: 1)
        try vfio.buffer.resv.withLock { (c) throws(DMAError) in try vfio.buffer.resv.addFence(fence, usage: usage, by: c) }
        let error = #expect(throws: DMAError.self) { try vfio.buffer.resv.withLock { (c) throws(DMAError) in try vfio.revoke(.reset, in: c) } }
        #expect(error?.errno == .ETIMEDOUT && vfio.isRevoked && rig.machine.memory.isDecoding(vfio.provider), "\(usage)")
        fence.signal()
        #expect(try vfio.buffer.resv.withLock { (c) throws(DMAError) in try vfio.revoke(.reset, in: c) }.isEmpty, "already revoked: nobody is told again")
        #expect(!rig.machine.memory.isDecoding(vfio.provider))
    }

    @Test("drivers/vfio/pci/vfio_pci_dmabuf.c (vfio_pci_core_feature_dma_buf): no get_dmabuf_phys is EOPNOTSUPP, SET is EINVAL, a device being unregistered is ENODEV after the range checks")
    func creationChecks() throws {
        let rig = try Rig()
        var bars: [Int: P2PProvider] = [:]
        for provider in rig.machine.topology.providers(of: try PCIAddress(parsing: "0000:09:00.0")) { bars[provider.barIndex] = provider }
        func export(
            _ ranges: [R] = [R(offset: 0, length: 4096)], region: Int = 2, rules: KernelRules = .newest, phys: Bool = true,
            access: VFIOBARExporter.FeatureAccess = .get, registered: Bool = true
        ) -> DMAError? {
            #expect(throws: DMAError.self) {
                try VFIOBARExporter(
                    name: "bar", regionIndex: region, bars: bars, ranges: ranges, memory: rig.machine.memory, rules: rules, hasDMABufPhys: phys,
                    access: access, registered: registered)
            }
        }
        #expect(export(phys: false)?.errno == .EOPNOTSUPP)
        #expect(export(rules: KernelRules(KernelVersion(6, 18)), phys: false)?.errno == .ENOTTY, "an unknown feature before the driver is asked")
        #expect(export([], phys: false)?.errno == .EOPNOTSUPP, "the driver check comes first")
        #expect(export(access: .set)?.errno == .EINVAL)
        #expect(export(region: 7, access: .set)?.errno == .EINVAL, "GET only is checked before the region")
        #expect(export(registered: false)?.errno == .ENODEV)
        #expect(export([R(offset: 0, length: 32 << 20)], registered: false)?.errno == .EINVAL, "the range is checked before the registration")
        #expect(export([R(offset: 0, length: 100)], registered: false)?.errno == .EINVAL)
    }
}

/// Issue [K] item 3: the amdgpu-like exporter as amdgpu does it.
@Suite("GPU VRAM export as drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c and amdgpu_vram_mgr.c have it")
struct AMDGPUKernelTests {
    @Test("amdgpu_vram_mgr.c (amdgpu_vram_mgr_alloc_sgt): VRAM is mapped at its CPU physical address through the DMA API in pieces of at most 2 GiB: an IOVA under an IOMMU, never a P2PDMA bus address")
    func vramMappedAsMMIO() throws {
        for rules in [KernelRules(KernelVersion(6, 12), moveNotify: true), KernelRules(KernelVersion(7, 1))] {
            let rig = try Rig(rules: rules)
            let gpu = try rig.gpuBuffer(5 << 30)
            let vram = try #require(try gpu.cpuRanges().first)
            let direct = try gpu.buffer.attach(try rig.nearNIC(), importer: RecordingImporter())
            let mapping = try gpu.buffer.mapUnlocked(direct, direction: .toDevice)
            #expect(mapping.placement == .vram && mapping.mmioMapCall == rules.mmioMapCall, "\(rules)")
            #expect(mapping.table.segments.map(\.length) == [2 << 30, 2 << 30, 1 << 30])
            #expect(mapping.table.segments[0].address.rawValue == vram.start.rawValue && mapping.table.segments.allSatisfy { !$0.isBusAddress })
            try gpu.buffer.unmapUnlocked(direct, mapping, direction: .toDevice)
            try gpu.buffer.detach(direct)
            #expect(rig.machine.finish().isEmpty)
        }
        let rig = try Rig()
        let gpu = try rig.gpuBuffer(1 << 20)
        let vram = try #require(try gpu.cpuRanges().first)
        let device = try rig.nearNIC(ops: "iommu")
        let attachment = try gpu.buffer.attach(device, importer: RecordingImporter())
        let mapping = try gpu.buffer.mapUnlocked(attachment, direction: .bidirectional)
        let address = mapping.table.segments[0].address
        #expect(address.rawValue != vram.start.rawValue && address != gpu.heap.provider.busAddress(of: vram.start))
        #expect(try device.ops.translate(address, access: .write, device: device) == vram.start, "an IOVA for the VRAM's CPU address")
        try gpu.buffer.unmapUnlocked(attachment, mapping, direction: .bidirectional)
        try gpu.buffer.detach(attachment)
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("amdgpu_dma_buf.c (amdgpu_dma_buf_attach): pci_p2pdma_distance alone decides P2P; ops that cannot carry it keep peer2peer and the VRAM map fails with ENOMEM")
    func p2pByDistanceAlone() throws {
        let rig = try Rig()
        let gpu = try rig.gpuBuffer()
        let hfi = dynamicImporter("hfi", try rig.machine.dmaDevice("0000:07:00.0", ops: "virt"))
        let attachment = try hfi.attach(gpu.buffer)
        #expect(attachment.peerToPeer, "the route through the whitelisted host bridge exists")
        let error = #expect(throws: DMAError.self) { try hfi.map(gpu.buffer, direction: .toDevice) }
        #expect(error?.errno == .ENOMEM && error?.code == .mapFailed && error?.rootCause.errno == .EREMOTEIO)
        #expect(gpu.placement == .vram && attachment.mappings.isEmpty)
        let far = try gpu.buffer.attach(try rig.farNIC(ops: "iommu"), importer: RecordingImporter())
        #expect(!far.peerToPeer, "no route: peer2peer cleared at attach")
        try gpu.buffer.detach(far)
        try hfi.detach(gpu.buffer)
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("amdgpu_dma_buf.c (amdgpu_bo_pin), 7.1: a pin that allows GTT only while the buffer is pinned in VRAM is EINVAL")
    func pinConflictIsEINVAL() throws {
        let rig = try Rig()
        let gpu = try rig.gpuBuffer()
        let mr = try RDMANIC(name: "nic", device: try rig.nearNIC()).registerMR(gpu.buffer, pinned: true)
        #expect(gpu.isPinned && gpu.placement == .vram)
        let staticImporter = try gpu.buffer.attach(try rig.farNIC())
        let error = #expect(throws: DMAError.self) { try gpu.buffer.mapUnlocked(staticImporter, direction: .toDevice) }
        #expect(error?.errno == .EINVAL)
        try gpu.buffer.detach(staticImporter)
        try mr.deregister()
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("amdgpu_dma_buf.c, 6.15 (amdgpu-pins-in-vram): a buffer pinned in VRAM is mapped as VRAM for a dynamic importer without P2P; 6.14 with MOVE_NOTIFY pins in GTT only")
    func vramPinnedForNonP2PImporter() throws {
        for (rules, placement) in [(KernelRules(KernelVersion(6, 14), moveNotify: true), DMABufPlacement.system), (KernelRules(KernelVersion(7, 1)), .vram)] {
            #expect(rules.has(.gpuPinsInVRAM) == (placement == .vram))
            let rig = try Rig(rules: rules)
            let gpu = try rig.gpuBuffer()
            let mr = try RDMANIC(name: "nic", device: try rig.nearNIC()).registerMR(gpu.buffer, pinned: true)
            #expect(gpu.placement == placement && gpu.isPinned, "\(rules)")
            let plain = dynamicImporter("plain", try rig.nearNIC(), p2p: false)
            try plain.attach(gpu.buffer)
            let mapping = try plain.map(gpu.buffer, direction: .toDevice)
            #expect(mapping.placement == placement, "\(rules)")
            try plain.unmap(gpu.buffer, direction: .toDevice)
            try plain.detach(gpu.buffer)
            try mr.deregister()
            #expect(rig.machine.finish().isEmpty)
        }
    }
}

/// Issue [K] item 4: RDMA MRs as `umem_dmabuf.c` and mlx5 have them.
@Suite("RDMA MRs as drivers/infiniband/core/umem_dmabuf.c and drivers/infiniband/hw/mlx5/mr.c have them")
struct UmemDMABufKernelTests {
    @Test("mlx5/mr.c (mlx5_ib_init_dmabuf_mr): a dynamic MR is mapped at registration, and a map failure fails the registration")
    func mappedAtRegistration() throws {
        let rig = try Rig()
        let gpu = try rig.gpuBuffer()
        let mr = try RDMANIC(name: "nic", device: try rig.nearNIC()).registerMR(gpu.buffer)
        #expect(mr.mapping?.placement == .vram && mr.faultIns == 1)
        try mr.write([4], offset: 0)
        #expect(mr.faultIns == 1, "no fault: it was mapped already")
        try mr.deregister()
        let hfi = RDMANIC(name: "hfi", device: try rig.machine.dmaDevice("0000:07:00.0", ops: "virt"))
        let failed = #expect(throws: DMAError.self) { try hfi.registerMR(gpu.buffer) }
        #expect(failed?.errno == .ENOMEM)
        #expect(gpu.buffer.attachments.isEmpty, "nothing stays attached")
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("umem_dmabuf.c (ib_umem_dmabuf_map_pages): always DMA_BIDIRECTIONAL: an MR registered for sending may still be written through the IOMMU")
    func alwaysBidirectional() throws {
        let rig = try Rig()
        let heap = try rig.machine.heapBuffer(name: "heap", size: 64 << 10)
        let mr = try RDMANIC(name: "nic", device: try rig.nearNIC(ops: "iommu")).registerMR(heap.buffer, direction: .toDevice)
        try mr.write([1, 2, 3], offset: 100)
        #expect(try mr.read(offset: 100, count: 3) == [1, 2, 3])
        try mr.deregister()
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("umem_dmabuf.c: the MR is [offset, offset+length): first and last entries trimmed to its pages; overflow, zero length and past-the-end are EINVAL")
    func window() throws {
        let rig = try Rig()
        let heap = try rig.machine.heapBuffer(name: "heap", size: 64 << 10)
        let nic = RDMANIC(name: "nic", device: try rig.nearNIC())
        let mr = try nic.registerMR(heap.buffer, offset: 4096 + 100, length: 8192)
        let whole = try #require(mr.mapping).table.segments
        #expect(whole.count == 16, "the exporter's table, one entry per system page")
        #expect(mr.windowSegments.map(\.address) == whole[1...3].map(\.address), "pages 1 to 3: [4096, 16384)")
        #expect(mr.windowSegments.reduce(0) { $0 + $1.length } == 3 * 4096)
        try mr.write([5, 6], offset: 4096 + 100)
        #expect(try mr.read(offset: 4096 + 100, count: 2) == [5, 6])
        let outside = #expect(throws: DMAError.self) { try mr.write([1], offset: 0) }
        #expect(outside?.errno == .EINVAL)
        try mr.deregister()
        for (offset, length) in [(UInt64.max - 10, UInt64(100)), (4096, 0), (60 << 10, 8 << 10)] {
            let error = #expect(throws: DMAError.self) { try nic.registerMR(heap.buffer, offset: offset, length: length) }
            #expect(error?.errno == .EINVAL, "\(offset)+\(length)")
        }
        #expect(heap.buffer.attachments.isEmpty)
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("umem_dmabuf.c (ib_umem_dmabuf_map_pages): after every map the MR waits for the kernel fences: one that cannot end is ETIMEDOUT")
    func waitsForKernelFences() throws {
        let rig = try Rig()
        let heap = try rig.machine.heapBuffer(name: "heap", size: 64 << 10)
        let fence = DMAFence(context: 3, seqno: 1)
        try heap.buffer.resv.withLock { (c) throws(DMAError) in try heap.buffer.resv.addFence(fence, usage: .kernel, by: c) }
        let nic = RDMANIC(name: "nic", device: try rig.nearNIC())
        let error = #expect(throws: DMAError.self) { try nic.registerMR(heap.buffer) }
        #expect(error?.errno == .ETIMEDOUT)
        #expect(heap.buffer.attachments.isEmpty)
        fence.signal()
        let mr = try nic.registerMR(heap.buffer)
        #expect(mr.mapping != nil)
        try mr.deregister()
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("umem_dmabuf.c (ib_umem_dmabuf_revoke): after a revoke the MR is unmapped and unpinned and every map is EINVAL")
    func revokedIsEINVAL() throws {
        let rig = try Rig()
        let gpu = try rig.gpuBuffer()
        let mr = try RDMANIC(name: "nic", device: try rig.nearNIC()).registerMR(gpu.buffer, pinned: true)
        #expect(gpu.isPinned)
        try mr.revoke()
        #expect(mr.isRevoked && mr.mapping == nil && !gpu.isPinned)
        let error = #expect(throws: DMAError.self) { try mr.write([1], offset: 0) }
        #expect(error?.errno == .EINVAL)
        try mr.deregister()
        #expect(gpu.buffer.attachments.isEmpty)
        #expect(rig.machine.finish().isEmpty)
    }
}

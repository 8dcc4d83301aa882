import DMABuf
import DMACore
import DMADevices
import DMAMapping
import Testing

/// Issue [N] item 9: the three exporters hold their dma-buf in one place (`ExportedBuffer`), and
/// each keeps its own words for a call that comes after the release.
@Suite("The exporters' held buffer: after release, each own call is ENODEV in its exporter's words")
struct ExportedBufferTests {
    enum Call: String, CaseIterable {
        case gpuEvict, vfioRevoke, vfioRestore, heapBeginCPUAccess, heapEndCPUAccess
    }

    /// The call on an exporter whose buffer was released, and the message it must give.
    static func callAfterRelease(_ call: Call) throws -> (error: DMAError?, expected: String) {
        let rig = try Rig()
        switch call {
        case .gpuEvict:
            let gpu = try rig.gpuBuffer()
            let buffer = gpu.buffer
            try buffer.release()
            let error = #expect(throws: DMAError.self) { try buffer.resv.withLock { (context) throws(DMAError) in try gpu.evict(in: context) } }
            return (error, "evict: the buffer was released; its VRAM went back to the heap")
        case .vfioRevoke, .vfioRestore:
            let vfio = try rig.machine.vfioBuffer(
                name: "bar", device: "0000:09:00.0", bar: 2, ranges: [VFIOBARExporter.Range(offset: 0, length: 8192)])
            let buffer = vfio.buffer
            try buffer.release()
            if call == .vfioRestore {
                return (#expect(throws: DMAError.self) { try vfio.restore() }, "restore: the VFIO dma-buf was released")
            }
            let error = #expect(throws: DMAError.self) {
                try buffer.resv.withLock { (context) throws(DMAError) in try vfio.revoke(.reset, in: context) }
            }
            return (error, "vfio_pci_dma_buf_move: the VFIO dma-buf was released")
        case .heapBeginCPUAccess, .heapEndCPUAccess:
            let heap = try rig.machine.heapBuffer(name: "heap", size: 2 * pageSize)
            try heap.buffer.release()
            // The exporter's callback itself, as a caller that skipped the DMA-BUF core would reach it.
            let error = #expect(throws: DMAError.self) {
                if call == .heapBeginCPUAccess {
                    try heap.beginCPUAccess(direction: .toDevice)
                } else {
                    try heap.endCPUAccess(direction: .toDevice)
                }
            }
            return (error, "the system-heap buffer was released")
        }
    }

    @Test("ENODEV naming the call and what went", arguments: Call.allCases)
    func afterRelease(_ call: Call) throws {
        let (error, expected) = try Self.callAfterRelease(call)
        #expect(error?.errno == .ENODEV)
        #expect(error?.code == .noDevice)
        #expect(error?.message == expected)
    }
}

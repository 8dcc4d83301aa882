import DMABuf
import DMACore
import DMADevices
import DMAMapping
import Testing

/// A released buffer is dead (`dma_buf_release`, `drivers/dma-buf/dma-buf.c`): after the last
/// `dma_buf_put` no call reaches the exporter's freed memory.
@Suite("Released buffers: every entry point is ENODEV")
struct ReleasedBufferTests {
    enum Exporter: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case gpu, heap, vfio
        var testDescription: String { rawValue }
    }

    enum EntryPoint: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case attachStatic, attachDynamic, detach, map, mapUnlocked, unmap, unmapUnlocked, pin, unpin
        case invalidateMappings, beginCPUAccess, endCPUAccess
        var testDescription: String { rawValue }
    }

    /// A buffer that was attached, mapped, unmapped, detached and released, with what it had.
    struct Dead {
        let rig: Rig
        let buffer: DMABuffer
        let attachment: DMABufAttachment
        let mapping: DMABufMapping
        let device: DMADevice
    }

    static func dead(_ kind: Exporter) throws -> Dead {
        let rig = try Rig()
        let buffer: DMABuffer
        switch kind {
        case .gpu: buffer = try rig.gpuBuffer().buffer
        case .heap: buffer = try rig.machine.heapBuffer(name: "heap", size: 16 * 1024).buffer
        case .vfio:
            buffer = try rig.machine.vfioBuffer(
                name: "bar", device: "0000:09:00.0", bar: 2, ranges: [VFIOBARExporter.Range(offset: 0, length: 8192)]
            ).buffer
        }
        let device = try rig.nearNIC()
        let attachment = try buffer.attach(device, importer: RecordingImporter())
        let mapping = try buffer.mapUnlocked(attachment, direction: .toDevice)
        try buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
        try buffer.detach(attachment)
        try buffer.release()
        return Dead(rig: rig, buffer: buffer, attachment: attachment, mapping: mapping, device: device)
    }

    static func call(_ entry: EntryPoint, _ dead: Dead) throws(DMAError) {
        let buffer = dead.buffer
        switch entry {
        case .attachStatic: _ = try buffer.attach(dead.device)
        case .attachDynamic: _ = try buffer.attach(dead.device, importer: RecordingImporter())
        case .detach: try buffer.detach(dead.attachment)
        case .map:
            _ = try buffer.resv.withLock { (context) throws(DMAError) in try buffer.map(dead.attachment, direction: .toDevice, in: context) }
        case .mapUnlocked: _ = try buffer.mapUnlocked(dead.attachment, direction: .toDevice)
        case .unmap:
            try buffer.resv.withLock { (context) throws(DMAError) in
                try buffer.unmap(dead.attachment, dead.mapping, direction: .toDevice, in: context)
            }
        case .unmapUnlocked: try buffer.unmapUnlocked(dead.attachment, dead.mapping, direction: .toDevice)
        case .pin: try buffer.resv.withLock { (context) throws(DMAError) in try buffer.pin(dead.attachment, in: context) }
        case .unpin: try buffer.resv.withLock { (context) throws(DMAError) in try buffer.unpin(dead.attachment, in: context) }
        case .invalidateMappings: _ = try buffer.resv.withLock { (context) throws(DMAError) in try buffer.invalidateMappings(in: context) }
        case .beginCPUAccess: try buffer.beginCPUAccess(direction: .toDevice)
        case .endCPUAccess: try buffer.endCPUAccess(direction: .toDevice)
        }
    }

    @Test("after release() every entry point throws ENODEV naming the release, and attaches nothing", arguments: EntryPoint.allCases, Exporter.allCases)
    func entryPointAfterRelease(_ entry: EntryPoint, _ kind: Exporter) throws {
        let dead = try Self.dead(kind)
        let error = #expect(throws: DMAError.self) { try Self.call(entry, dead) }
        #expect(error?.errno == .ENODEV, "\(error?.description ?? "no error")")
        #expect(error?.message.contains("was released") == true, "\(error?.description ?? "no error")")
        #expect(dead.buffer.attachments.isEmpty && dead.buffer.isReleased)
        #expect(dead.rig.machine.finish().isEmpty)
    }

    @Test("a released exporter has a .released backing: no placement, no CPU ranges, no memory to reach", arguments: Exporter.allCases)
    func releasedBacking(_ kind: Exporter) throws {
        let dead = try Self.dead(kind)
        #expect(dead.buffer.exporter.placement == .released)
        let ranges = #expect(throws: DMAError.self) { try dead.buffer.exporter.cpuRanges() }
        #expect(ranges?.errno == .ENODEV)
    }

    @Test("the exporters' own calls after release are ENODEV: evict, revoke, restore")
    func exporterCallsAfterRelease() throws {
        let rig = try Rig()
        let gpu = try rig.gpuBuffer()
        let gpuBuffer = gpu.buffer
        try gpuBuffer.release()
        let evict = #expect(throws: DMAError.self) { try gpuBuffer.resv.withLock { (context) throws(DMAError) in try gpu.evict(in: context) } }
        #expect(evict?.errno == .ENODEV)
        let vfio = try rig.machine.vfioBuffer(
            name: "bar", device: "0000:09:00.0", bar: 2, ranges: [VFIOBARExporter.Range(offset: 0, length: 8192)])
        let vfioBuffer = vfio.buffer
        try vfioBuffer.release()
        let revoke = #expect(throws: DMAError.self) {
            try vfioBuffer.resv.withLock { (context) throws(DMAError) in try vfio.revoke(.reset, in: context) }
        }
        #expect(revoke?.errno == .ENODEV)
        #expect(throws: DMAError.self) { try vfio.restore() }
        #expect(rig.machine.finish().isEmpty)
    }
}

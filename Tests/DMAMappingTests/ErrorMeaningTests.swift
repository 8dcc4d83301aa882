import DMACore
import DMAMapping
import Testing

/// Errors keep their meaning: a code that agrees with its errno, and a `cause` that keeps the
/// original errno when a layer re-throws with its own (`kernel/dma/direct.c`'s `map_sg` turns a
/// segment's failure into `EIO`; `drivers/iommu/dma-iommu.c` into `EINVAL`).
@Suite("Error meaning: codes that match their errno, causes kept")
struct ErrorMeaningTests {
    @Test("dma-direct's map_sg fails with EIO and keeps the segment's own error (ENOMEM, not DMA capable) as its cause")
    func directKeepsCause() throws {
        let machine = try Machine()
        let device = try machine.device(DirectDMAOps(), mask: 32)
        let pages = try machine.discontiguousPages(2, high: false) + machine.discontiguousPages(1)
        let error = #expect(throws: DMAError.self) { try device.mapScatterList(try ScatterList.host(pages), direction: .toDevice) }
        #expect(error?.errno == .EIO && error?.code == .mapFailed)
        #expect(error?.cause?.code == .notDMACapable && error?.cause?.errno == .ENOMEM)
        #expect(error?.rootCause == error?.cause)
        #expect(error?.description.hasPrefix("EIO: segment 2 of 3") == true)
    }

    @Test("dma_iova_link misused is EIO with an I/O error code, not an invalid-argument code")
    func iovaLinkIsIOError() throws {
        let machine = try Machine()
        let device = try machine.device(IOMMUDMAOps(), iommu: try IOMMUDomain())
        let page = try machine.discontiguousPages(2)
        let state = try #require(try device.ops.iovaTryAlloc(page[0].start, size: 0x2000, device: device))
        let error = #expect(throws: DMAError.self) {
            try device.ops.iovaLink(
                state, physical: try page[1].start.advanced(by: 8), offset: 0x1000, length: 0x100, direction: .toDevice, attributes: [],
                device: device)
        }
        #expect(error?.errno == .EIO && error?.code == .ioError)
    }

    @Test("A cause is part of the error's value; the chain ends at the root cause")
    func causeChain() {
        let root = DMAError(.resourceExhausted, .ENOMEM, "no bounce slot")
        let middle = DMAError(.mapFailed, .EIO, "segment 1 of 2", cause: root)
        let top = DMAError(.mapFailed, .EINVAL, "mapping 2 segments", cause: middle)
        #expect(top.cause == middle && top.rootCause == root && root.rootCause == root)
        #expect(top != DMAError(.mapFailed, .EINVAL, "mapping 2 segments"))
        #expect(top.description == "EINVAL: mapping 2 segments")
        #expect(DMAError.Code.vendor("ring-full").name == "vendor.ring-full" && DMAError.Code.vendor("not-found") != .notFound)
        #expect(Errno.ETIMEDOUT.rawValue == 110 && Errno.ETIMEDOUT.name == "ETIMEDOUT" && Errno(name: "ETIMEDOUT") == .ETIMEDOUT)
    }
}

import DMABuf
import DMACore
import DMAMapping
import Synchronization

/// The most bytes one scatter-list entry carries: `sg_dma_len` is an `unsigned int`, so
/// `fill_sg_entry` (`drivers/dma-buf/dma-buf-mapping.c`, 6.19) cuts a longer run into entries of
/// at most `UINT_MAX` bytes.
let scatterEntryLimit = UInt64(UInt32.max)

/// `length` bytes from `address` as scatter-list entries of at most `limit` bytes each.
func splitEntries(_ address: DMAAddress, length: UInt64, limit: UInt64, busAddress: Bool = false) -> [DMASegment] {
    var segments: [DMASegment] = []
    var done: UInt64 = 0
    while done < length {
        let piece = min(limit, length - done)
        segments.append(DMASegment(address: DMAAddress(address.rawValue &+ done), length: piece, isBusAddress: busAddress))
        done += piece
    }
    return segments
}

/// The P2P route between a provider and a device as the PCI topology alone gives it
/// (`pci_p2pdma_map_type`, `pci_p2pdma_distance`, `drivers/pci/p2pdma.c`): the device's DMA ops
/// are not asked, so ops that cannot carry P2P learn it only when they are handed the memory.
func topologyMapType(_ device: DMADevice, to provider: P2PProvider) -> P2PMapType {
    device.topology?.mapType(provider: provider, client: device.pciAddress) ?? .notSupported
}

/// How one MMIO mapping was made, so that it is undone the same way.
enum MMIOUnmap: Sendable {
    /// Bus addresses: nothing was mapped.
    case none
    /// One IOVA reservation with every range linked (`dma_iova_destroy` undoes it).
    case iova(DMAIOVAState, mappedLength: UInt64)
    /// One `dma_map_phys(DMA_ATTR_MMIO)` (or `dma_map_resource`) per piece: address and length.
    case perPiece([(DMAAddress, UInt64)], attributes: DMAAttributes)
}

/// The ways an exporter's live MMIO mappings were made, by attachment and table, so that its
/// `unmap` undoes each one as it was made (the kernel keeps this in `struct dma_buf_dma`).
final class MMIOMappingBook: Sendable {
    private let entries = ModelMutex<[ObjectIdentifier: [(table: DMAScatterTable, how: MMIOUnmap)]]>([:])

    func record(_ attachment: DMABufAttachment, _ table: DMAScatterTable, _ how: MMIOUnmap) {
        entries.withLock { $0[ObjectIdentifier(attachment), default: []].append((table, how)) }
    }

    /// Takes the record of `table` out of the book; `nil` when it has none.
    func take(_ attachment: DMABufAttachment, _ table: DMAScatterTable) -> MMIOUnmap? {
        entries.withLock { entries -> MMIOUnmap? in
            let key = ObjectIdentifier(attachment)
            guard var list = entries[key], let index = list.firstIndex(where: { $0.table == table }) else { return nil }
            let how = list.remove(at: index).how
            entries[key] = list.isEmpty ? nil : list
            return how
        }
    }

    /// Undoes one mapping as it was made.
    static func undo(_ how: MMIOUnmap, device: DMADevice, direction: DMADirection) throws(DMAError) {
        switch how {
        case .none: return
        case .iova(let state, let mapped):
            try device.ops.iovaDestroy(state, mappedLength: mapped, direction: direction, attributes: .mmio, device: device)
        case .perPiece(let pieces, let attributes):
            var firstError: DMAError?
            for (address, length) in pieces {
                do {
                    try device.unmapPhys(address, length: length, direction: direction, attributes: attributes)
                } catch {
                    firstError = firstError ?? error
                }
            }
            if let firstError { throw firstError }
        }
    }
}

/// `dma_buf_phys_vec_to_sgt` (`drivers/dma-buf/dma-buf-mapping.c`, 6.19): maps MMIO ranges of one
/// P2P provider for an attachment's device, by the route the topology alone gives
/// (`pci_p2pdma_map_type`; the device's DMA ops are not consulted):
/// - bus-address route: each range at its bus address (`pci_p2pdma_bus_addr_map`), nothing mapped;
/// - through the host bridge with an IOMMU: one IOVA reservation for the whole size
///   (`dma_iova_try_alloc`), every range linked into it with `DMA_ATTR_MMIO` (`dma_iova_link`),
///   one IOTLB sync (`dma_iova_sync`), and the whole run as one DMA segment;
/// - through the host bridge without an IOMMU (the reservation is refused): one
///   `dma_map_phys(DMA_ATTR_MMIO)` per range;
/// - no route: `EINVAL`.
/// Every entry is cut at `UINT_MAX` bytes (`fill_sg_entry`). A failure undoes what was mapped.
/// - Returns: the table and how to undo it.
/// - Throws: `EINVAL` without a route; the link, sync or map's error otherwise.
func mapPhysVec(_ ranges: [PhysicalRange], provider: P2PProvider, device: DMADevice, direction: DMADirection) throws(DMAError)
    -> (table: DMAScatterTable, how: MMIOUnmap)
{
    let list = try ScatterList.peerToPeer(ranges, provider: provider)
    let type = topologyMapType(device, to: provider)
    switch type {
    case .busAddress:
        var segments: [DMASegment] = []
        for range in ranges {
            segments += splitEntries(provider.busAddress(of: range.start), length: range.length, limit: scatterEntryLimit, busAddress: true)
        }
        return (DMAScatterTable(list: list, segments: segments, p2pMapType: type), .none)
    case .throughHostBridge:
        let size = list.totalLength
        if let state = try device.ops.iovaTryAlloc(PhysicalAddress(0), size: size, device: device) {
            var mapped: UInt64 = 0
            do {
                for range in ranges {
                    try device.ops.iovaLink(
                        state, physical: range.start, offset: mapped, length: range.length, direction: direction, attributes: .mmio,
                        device: device)
                    mapped += range.length
                }
                try device.ops.iovaSync(state, offset: 0, length: mapped, device: device)
            } catch {
                try? device.ops.iovaDestroy(state, mappedLength: mapped, direction: direction, attributes: .mmio, device: device)
                throw error
            }
            let segments = splitEntries(state.address, length: mapped, limit: scatterEntryLimit)
            return (DMAScatterTable(list: list, segments: segments, p2pMapType: type), .iova(state, mappedLength: mapped))
        }
        var segments: [DMASegment] = []
        var pieces: [(DMAAddress, UInt64)] = []
        for range in ranges {
            do throws(DMAError) {
                let address = try device.mapPhys(range, direction: direction, attributes: .mmio)
                guard !dmaMappingError(address, device) else {
                    throw DMAError(.resourceExhausted, .ENOMEM, "dma_map_phys(DMA_ATTR_MMIO) of \(range) for \(device.name): DMA_MAPPING_ERROR")
                }
                pieces.append((address, range.length))
                segments += splitEntries(address, length: range.length, limit: scatterEntryLimit)
            } catch {
                try? MMIOMappingBook.undo(.perPiece(pieces, attributes: .mmio), device: device, direction: direction)
                throw error
            }
        }
        return (DMAScatterTable(list: list, segments: segments, p2pMapType: type), .perPiece(pieces, attributes: .mmio))
    case .notSupported:
        throw DMAError(
            .invalidArgument, .EINVAL,
            "\(device.name) cannot reach \(provider) peer-to-peer (dma_buf_phys_vec_to_sgt: PCI_P2PDMA_MAP_NOT_SUPPORTED)")
    }
}

/// `dma_mapping_error` after a single map, as every driver calls it: it marks the mapping checked
/// in the DMA-API debug layer when the device has one (`debug_dma_mapping_error`,
/// `kernel/dma/debug.c`).
/// - Returns: whether the address is `DMA_MAPPING_ERROR`.
func dmaMappingError(_ address: DMAAddress, _ device: DMADevice) -> Bool {
    if let debugOps = device.ops as? DMADebugOps { return debugOps.debug.mappingError(address, device: device) }
    return address.isMappingError
}

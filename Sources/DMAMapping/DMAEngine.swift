import DMACore

/// The simulated DMA engine of a device: it reads and writes memory *by DMA address*, resolving
/// each address the way the hardware would, so tests prove what a mapping means with bytes.
///
/// Resolution, per page touched:
/// 1. the device cannot drive an address beyond its DMA mask;
/// 2. an address in the bus window of a P2P provider's BAR that the device reaches by bus address
///    is routed to the BAR by the switch, without the IOMMU (`PCI_P2PDMA_MAP_BUS_ADDR`);
/// 3. otherwise the device's ops translate it (IOMMU page table, bus offset, CPU address), and a
///    stale or unmapped address faults.
extension DMADevice {
    /// The device reads `count` bytes at `address` (a transmit).
    /// - Throws: `DMAError/Code/iommuFault` (`EFAULT`) for an untranslated or read-protected
    ///   page, or an address past the mask; `DMAError/Code/busError` (`EIO`) where nothing backs
    ///   the resolved address.
    public func dmaRead(at address: DMAAddress, count: Int) throws(DMAError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        try forEachChunk(address, count, .read) { (phys, length) throws(DMAError) in
            out += try memory.read(phys, count: length)
        }
        return out
    }

    /// The device writes `bytes` at `address` (a receive).
    /// - Throws: as ``dmaRead(at:count:)``. Pages before the faulting one are already written, as
    ///   on hardware.
    public func dmaWrite(_ bytes: [UInt8], at address: DMAAddress) throws(DMAError) {
        var done = 0
        try forEachChunk(address, bytes.count, .write) { (phys, length) throws(DMAError) in
            try memory.write(Array(bytes[done..<(done + length)]), at: phys)
            done += length
        }
    }

    /// The device writes `count` bytes of `pattern` (from `patternOffset` on) at `address`: a
    /// receive of generated data, which the memory keeps as the pattern where it covers whole pages.
    /// - Throws: as ``dmaWrite(_:at:)``.
    public func dmaFill(at address: DMAAddress, count: Int, with pattern: BytePattern, patternOffset: UInt64) throws(DMAError) {
        var done = 0
        try forEachChunk(address, count, .write) { (phys, length) throws(DMAError) in
            try memory.fill(phys, count: length, with: pattern, patternOffset: patternOffset &+ UInt64(done))
            done += length
        }
    }

    /// The device reads `count` bytes at `address` and compares them with `pattern` (from
    /// `patternOffset` on) piece by piece, holding no more than a page of them: the index of the
    /// first byte that differs and the byte read there, or nil. With no pattern the read is only
    /// checked (every page resolved and backed), as a transmit whose data nobody looks at.
    /// - Throws: as ``dmaRead(at:count:)``, for any page of the read (also after a mismatch).
    public func dmaCompare(at address: DMAAddress, count: Int, with pattern: BytePattern?, patternOffset: UInt64)
        throws(DMAError) -> (index: Int, found: UInt8)?
    {
        var done = 0
        var mismatch: (index: Int, found: UInt8)?
        try forEachChunk(address, count, .read) { (phys, length) throws(DMAError) in
            if let pattern, mismatch == nil {
                if let found = try memory.firstMismatch(phys, count: length, with: pattern, patternOffset: patternOffset &+ UInt64(done)) {
                    mismatch = (done + found.index, found.found)
                }
            } else {
                try memory.checkReadable(phys, count: length)
            }
            done += length
        }
        return mismatch
    }

    /// Resolves one DMA address to the physical address it reaches, without moving data.
    public func resolve(_ address: DMAAddress, access: DMAAccess) throws(DMAError) -> PhysicalAddress {
        try resolveSpan(address, access: access).physical
    }

    /// ``resolve(_:access:)``, with how many bytes from `address` on take the same route to
    /// consecutive physical addresses: to the end of the BAR for a bus-address route (the switch
    /// routes the whole window), to the end of the page otherwise.
    private func resolveSpan(_ address: DMAAddress, access: DMAAccess) throws(DMAError) -> (physical: PhysicalAddress, span: UInt64) {
        guard mask.isCapable(address, length: 1) else {
            throw DMAError(.iommuFault, .EFAULT, "\(name) cannot drive \(address): beyond its \(mask) DMA mask")
        }
        if let region = memory.barRegion(containingBusAddress: address), case .bar(let provider) = region.kind,
            provider.owner == pciAddress || topology?.mapType(provider: provider, client: pciAddress) == .busAddress,
            let phys = provider.physicalAddress(ofBus: address)
        {
            // The bytes of the window from `address` to its last (no overflow: both inside it).
            let span = (provider.cpuRange.last.rawValue - phys.rawValue) &+ 1
            return (phys, span == 0 ? UInt64.max : span)
        }
        return (try ops.translate(address, access: access, device: self), pageSize - (address.rawValue & (pageSize - 1)))
    }

    private func forEachChunk(
        _ address: DMAAddress, _ count: Int, _ access: DMAAccess,
        _ body: (PhysicalAddress, Int) throws(DMAError) -> Void
    ) throws(DMAError) {
        guard count > 0 else {
            throw DMAError(.invalidArgument, .EINVAL, "a DMA transfer of 0 bytes")
        }
        guard mask.isCapable(address, length: UInt64(count)) else {
            throw DMAError(
                .iommuFault, .EFAULT,
                "\(name) cannot drive \(count) bytes at \(address): beyond its \(mask) DMA mask")
        }
        var done = 0
        while done < count {
            let at = DMAAddress(address.rawValue + UInt64(done))
            let (phys, span) = try resolveSpan(at, access: access)
            let chunk = span >= UInt64(count - done) ? count - done : Int(span)
            try body(phys, chunk)
            done += chunk
        }
    }
}

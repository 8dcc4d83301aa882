import DMACore
import DMAMapping

/// The machine of the first demo: RAM below and above 4 GiB, a GPU whose VRAM BAR is a P2P
/// provider, and a NIC that maps a host list and a P2P list through each built-in ops.
///
/// The GPU BAR sits at CPU address 0x38_0000_0000 and bus address 0xd000_0000, so bus-address
/// P2P segments visibly differ from physical addresses (a host bridge that translates, as on some
/// arm64 and POWER machines; on most x86 machines the two are equal), and a 32-bit device reaches it.
package struct DemoMachine: Sendable {
    /// The machine's memory.
    package let memory: SimulatedMemory
    /// The GPU VRAM provider.
    package let vram: P2PProvider
    /// The host scatter-list (four discontiguous pages above 4 GiB).
    package let hostList: ScatterList
    /// The P2P scatter-list (two ranges of VRAM).
    package let p2pList: ScatterList
    /// The name of the importing NIC.
    package let nicName = "0000:04:00.0"

    /// Builds the machine.
    package init() throws(DMAError) {
        let memory = SimulatedMemory()
        try memory.addRAM(name: "RAM low", start: 0, length: 0x8000_0000)
        try memory.addRAM(name: "RAM high", start: 0x1_0000_0000, length: 0x1_0000_0000)
        let vram = try P2PProvider(
            owner: try PCIAddress(parsing: "0000:03:00.0"), barIndex: 2,
            cpuRange: try PhysicalRange(start: 0x38_0000_0000, length: 256 << 20), busAddress: 0xd000_0000)
        try memory.addBAR(name: "GPU VRAM", provider: vram)
        let block = try memory.allocate(length: 8 * pageSize)
        var pages: [PhysicalRange] = []
        for i in stride(from: 0, to: 8, by: 2) {
            pages.append(try PhysicalRange(start: try block.start.advanced(by: UInt64(i) * pageSize), length: pageSize))
        }
        self.memory = memory
        self.vram = vram
        self.hostList = try ScatterList.host(pages)
        self.p2pList = try ScatterList.peerToPeer(
            [
                try PhysicalRange(start: vram.cpuRange.start, length: 2 * pageSize),
                try PhysicalRange(start: try vram.cpuRange.start.advanced(by: 64 * pageSize), length: 2 * pageSize),
            ], provider: vram)
    }
}

/// What happened to one list through one ops in the first demo.
package struct DemoMapping: Sendable, Encodable {
    /// Whether the map succeeded.
    package var mapped: Bool
    /// The errno's name when it failed.
    package var errno: String?
    /// The error message when it failed.
    package var message: String?
    /// The DMA segments, as `address+length`.
    package var segments: [String] = []
    /// How a P2P list travelled (`bus-address` or `through-host-bridge`), `nil` for host memory.
    package var mapType: String?
    /// Bytes copied through a bounce buffer.
    package var bouncedBytes: UInt64 = 0
    /// The number of IOVA allocations the map used.
    package var iovaRanges: Int = 0
    /// Whether the simulated device moved the right bytes both ways.
    package var bytesVerified: Bool = false
}

/// One ops' row of the first demo.
package struct DemoRow: Sendable, Encodable {
    /// The ops name.
    package var ops: String
    /// What the ops model, in one line.
    package var summary: String
    /// The importing device's mask, in bits.
    package var maskBits: Int
    /// The host list's outcome.
    package var host: DemoMapping
    /// The P2P list's outcome.
    package var p2p: DemoMapping
    /// DMA-API debug reports at the end (expected 0).
    package var debugReports: [String]
}

/// Runs the first demo: each built-in ops (plus direct with a 32-bit mask) maps the host list and
/// the P2P list for the NIC, behind the DMA-API debug layer; the simulated NIC then reads and
/// writes through the mappings and the CPU checks the bytes.
package func runFirstDemo(registry: DMAOpsRegistry = .builtIn()) throws(DMAError) -> [DemoRow] {
    let cases: [(ops: String, maskBits: Int)] = [("direct", 64), ("direct", 32), ("iommu", 64), ("swiotlb", 64), ("virt", 64)]
    var rows: [DemoRow] = []
    for (opsName, maskBits) in cases {
        let machine = try DemoMachine()
        let debug = DMADebug()
        let ops = DMADebugOps(wrapping: try registry.ops(named: opsName), debug: debug)
        let pool = opsName == "direct" && maskBits == 64 || opsName == "virt" ? nil : try SwiotlbPool(memory: machine.memory, slotCount: 256)
        let nic = try DMADevice(
            name: machine.nicName, memory: machine.memory, ops: ops, mask: try DMAMask(bits: maskBits),
            iommu: opsName == "iommu" ? try IOMMUDomain(name: "nic-domain") : nil, swiotlb: pool,
            topology: UniformP2PTopology(.busAddress))
        let host = demoHost(machine, nic, pool)
        let p2p = demoP2P(machine, nic)
        debug.deviceReleased(nic)
        rows.append(
            DemoRow(
                ops: opsName, summary: ops.wrapped.summary, maskBits: maskBits, host: host, p2p: p2p,
                debugReports: debug.reports.map(\.description)))
    }
    return rows
}

private func failed(_ error: DMAError) -> DemoMapping {
    DemoMapping(mapped: false, errno: error.errno.name, message: error.message)
}

private func pattern(_ seed: UInt8, _ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: Int(seed) &* 31 &+ $0 &* 7) }
}

private func demoHost(_ machine: DemoMachine, _ nic: DMADevice, _ pool: SwiotlbPool?) -> DemoMapping {
    let memory = machine.memory
    do {
        // The CPU fills the buffer; the NIC reads it (transmit), then writes its own (receive).
        for (i, range) in machine.hostList.enumerated() {
            try memory.write(pattern(UInt8(i), Int(range.length)), at: range.start)
        }
        let table = try nic.mapScatterList(machine.hostList, direction: .bidirectional)
        var result = DemoMapping(mapped: true)
        result.segments = table.segments.map(\.description)
        result.iovaRanges = nic.iommu?.liveAllocations ?? 0
        if let pool {
            for segment in table.segments where pool.contains(PhysicalAddress(segment.address.rawValue &- nic.dmaOffset)) {
                result.bouncedBytes += segment.length
            }
        }
        var readOK = true
        var cursor = 0
        var moved = true
        let expected = machine.hostList.enumerated().flatMap { pattern(UInt8($0.offset), Int($0.element.length)) }
        for segment in table.segments {
            let bytes = try nic.dmaRead(at: segment.address, count: Int(segment.length))
            readOK = readOK && bytes[...] == expected[cursor..<(cursor + bytes.count)]
            cursor += bytes.count
        }
        let written = pattern(0xA5, Int(machine.hostList.totalLength))
        if let failure = writeThroughSegments(written, table, nic) {
            moved = false
            result.message = failure
        }
        try nic.unmapScatterList(table, direction: .bidirectional)
        var back: [UInt8] = []
        for range in machine.hostList { back += try memory.read(range.start, count: Int(range.length)) }
        result.bytesVerified = moved && readOK && back == written
        return result
    } catch {
        return failed(error)
    }
}

private func demoP2P(_ machine: DemoMachine, _ nic: DMADevice) -> DemoMapping {
    do {
        let table = try nic.mapScatterList(machine.p2pList, direction: .fromDevice)
        var result = DemoMapping(mapped: true)
        result.segments = table.segments.map(\.description)
        result.mapType = table.p2pMapType?.rawValue
        let written = pattern(0x5A, Int(machine.p2pList.totalLength))
        var moved = true
        if let failure = writeThroughSegments(written, table, nic) {
            moved = false
            result.message = failure
        }
        try nic.unmapScatterList(table, direction: .fromDevice)
        var back: [UInt8] = []
        for range in machine.p2pList { back += try machine.memory.read(range.start, count: Int(range.length)) }
        result.bytesVerified = moved && back == written
        return result
    } catch {
        return failed(error)
    }
}

/// Renders the first demo for people.
package func renderFirstDemo(_ rows: [DemoRow], machine: DemoMachine) -> String {
    var out = """
        DMABufKit demo: a NIC (\(machine.nicName)) maps two scatter-lists through every built-in DMA ops,
        behind the DMA-API debug layer; the simulated NIC then moves real bytes through each mapping.

          host list: \(machine.hostList.count) discontiguous 4 KiB pages of RAM above 4 GiB
        \(machine.hostList.map { "             \($0)" }.joined(separator: "\n"))
          P2P list:  \(machine.p2pList.count) ranges of GPU VRAM, \(machine.vram)
                     bus offset \(hex(machine.vram.busOffset)) (BAR at bus \(machine.vram.busStart)); topology: bus-address route


        """
    for row in rows {
        out += "\(row.ops) ops, \(row.maskBits)-bit DMA mask — \(row.summary)\n"
        out += "  host: " + describe(row.host, p2p: false) + "\n"
        out += "  P2P:  " + describe(row.p2p, p2p: true) + "\n"
        out += "  debug layer: " + (row.debugReports.isEmpty ? "no reports, no mappings left" : row.debugReports.joined(separator: "; ")) + "\n\n"
    }
    out += "Summary\n"
    out += pad("ops", 9) + pad("mask", 6) + pad("host list", 44) + "P2P list\n"
    for row in rows {
        out += pad(row.ops, 9) + pad("\(row.maskBits)", 6) + pad(short(row.host), 44) + short(row.p2p) + "\n"
    }
    return out
}

private func describe(_ mapping: DemoMapping, p2p: Bool) -> String {
    guard mapping.mapped else {
        return "refused with \(mapping.errno ?? "?"): \(mapping.message ?? "")"
    }
    var why: String
    if p2p {
        why = mapping.mapType == "bus-address" ? "bus addresses (physical + bus offset), no IOMMU, no copy" : "mapped through the host bridge"
    } else if mapping.bouncedBytes > 0 {
        why = "\(mapping.bouncedBytes) bytes bounced through swiotlb slots"
    } else if mapping.iovaRanges > 0 {
        why = "one IOVA range for \(mapping.segments.count == 1 ? "all pages" : "the pages, \(mapping.segments.count) segments")"
    } else {
        why = "addresses used as they are, no copy"
    }
    why += mapping.bytesVerified ? "; bytes verified" : "; BYTES WRONG" + (mapping.message.map { ": \($0)" } ?? "")
    return "\(mapping.segments.count) segment(s) \(mapping.segments.joined(separator: ", "))\n        \(why)"
}

private func short(_ mapping: DemoMapping) -> String {
    guard mapping.mapped else { return "refused (\(mapping.errno ?? "?"))" }
    if let type = mapping.mapType { return "\(type), \(mapping.bytesVerified ? "bytes ok" : "BYTES WRONG")" }
    if mapping.bouncedBytes > 0 { return "bounced \(formatBytes(mapping.bouncedBytes)), \(mapping.bytesVerified ? "bytes ok" : "BYTES WRONG")" }
    if mapping.iovaRanges > 0 { return "1 IOVA range, \(mapping.bytesVerified ? "bytes ok" : "BYTES WRONG")" }
    return "direct, \(mapping.bytesVerified ? "bytes ok" : "BYTES WRONG")"
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}

/// The device writes `bytes` through the mapping's segments, in order, as a DMA engine walks a
/// scatter-list; the error's words when a write fails (nothing after it is written).
private func writeThroughSegments(_ bytes: [UInt8], _ table: DMAScatterTable, _ device: DMADevice) -> String? {
    var cursor = 0
    do {
        for segment in table.segments {
            try device.dmaWrite(Array(bytes[cursor..<(cursor + Int(segment.length))]), at: segment.address)
            cursor += Int(segment.length)
        }
        return nil
    } catch {
        return error.description
    }
}

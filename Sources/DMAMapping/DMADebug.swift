import DMACore
import Synchronization

/// One problem the DMA-API debug layer found: what `kernel/dma/debug.c` prints with `err_printk`.
public struct DMADebugReport: Hashable, Sendable, CustomStringConvertible {
    /// The class of problem; each has a test.
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        /// Unmap of an address that was never mapped ("tries to free DMA memory it has not allocated").
        case unmapNotMapped = "unmap-not-mapped"
        /// Unmap of `DMA_MAPPING_ERROR` ("tries to free an invalid DMA memory address").
        case unmapMappingError = "unmap-mapping-error"
        /// Unmap with another size than the map ("frees DMA memory with different size").
        case sizeMismatch = "size-mismatch"
        /// Unmap with another function than the map: single / phys / scatter-list ("wrong function").
        case typeMismatch = "type-mismatch"
        /// Scatter-list unmap with another entry count ("different entry count").
        case entryCountMismatch = "entry-count-mismatch"
        /// Unmap with another direction ("frees DMA memory with different direction").
        case directionMismatch = "direction-mismatch"
        /// A successful map whose address was never checked ("failed to check map error").
        case mappingErrorNotChecked = "mapping-error-not-checked"
        /// Sync of an address never mapped ("syncs DMA memory it has not allocated").
        case syncNotMapped = "sync-not-mapped"
        /// Sync past the end of the mapping ("syncs DMA memory outside allocated range").
        case syncOutOfBounds = "sync-out-of-bounds"
        /// Sync with another direction than the map ("syncs DMA memory with different direction").
        case syncDirectionMismatch = "sync-direction-mismatch"
        /// `DMA_TO_DEVICE` memory synced for the CPU ("syncs device read-only DMA memory for cpu").
        case syncReadOnlyForCPU = "sync-read-only-for-cpu"
        /// `DMA_FROM_DEVICE` memory synced for the device ("syncs device write-only DMA memory to device").
        case syncWriteOnlyForDevice = "sync-write-only-for-device"
        /// Mappings still live when the device is released ("has pending DMA allocations while released").
        case leak = "leak"
    }

    /// What was found.
    public let kind: Kind
    /// The device's name.
    public let device: String
    /// The DMA address involved.
    public let address: DMAAddress
    /// The size involved (for a leak, the number of live mappings).
    public let size: UInt64
    /// The kernel-style message.
    public let message: String

    public var description: String { "DMA-API: \(device): \(message)" }
}

/// The kind of call a mapping was made with, as `debug.c` records it (`dma_debug_single`,
/// `dma_debug_sg`, `dma_debug_phy`).
public enum DMADebugMappingType: String, Hashable, Sendable {
    /// `dma_map_phys` of RAM (what `dma_map_single`/`dma_map_page` became).
    case single
    /// `dma_map_phys` with `DMA_ATTR_MMIO` (what `dma_map_resource` became).
    case phys = "phy"
    /// `dma_map_sg` / `dma_map_sgtable`.
    case scatterList = "scatter-gather"
}

/// The DMA-API debug state (`kernel/dma/debug.c`): every live mapping of every device wrapped by a
/// ``DMADebugOps``, and the reports found so far.
///
/// Entries are matched as the kernel matches them (`hash_bucket_find`): by device and DMA address,
/// taking an entry that agrees on size, type, direction and entry count when there is one, or the
/// single best partial match. Reports are values the caller reads (``reports``); in strict mode the
/// first report of a call is thrown instead, before the call reaches the wrapped ops.
public final class DMADebug: Sendable {
    /// What the layer checks and how it reports.
    public struct Configuration: Hashable, Sendable {
        /// Throw `DMAError/Code/debugCheckFailed` at the first problem instead of recording it.
        public var strict: Bool
        /// Report successful maps that were never checked with ``DMADebug/mappingError(_:device:)``
        /// (on in the kernel).
        public var checkMappingErrors: Bool
        /// Creates a configuration.
        public init(strict: Bool = false, checkMappingErrors: Bool = true) {
            self.strict = strict
            self.checkMappingErrors = checkMappingErrors
        }
    }

    /// A live mapping as the debug layer records it (`struct dma_debug_entry`).
    public struct Entry: Hashable, Sendable, CustomStringConvertible {
        /// The device's name.
        public let device: String
        fileprivate let deviceID: ObjectIdentifier
        /// The DMA address.
        public let address: DMAAddress
        /// The size in bytes.
        public let size: UInt64
        /// The mapping call.
        public let type: DMADebugMappingType
        /// The direction.
        public let direction: DMADirection
        /// For scatter-lists, the number of entries the map was called with (`sg_call_ents`).
        public let entryCount: Int
        /// Whether the map's result was checked (`nil`: not applicable, as for scatter-lists).
        public fileprivate(set) var mappingErrorChecked: Bool?

        public var description: String {
            "[device address=\(address)] [size=\(size) bytes] [mapped with \(direction.kernelName)] [mapped as \(type.rawValue)]"
        }
    }

    private struct State {
        var entries: [Entry] = []
        var reports: [DMADebugReport] = []
    }

    /// How the layer behaves.
    public let configuration: Configuration
    private let state = ModelMutex(State())

    /// Creates an empty debug state.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Every report so far, oldest first.
    public var reports: [DMADebugReport] { state.withLock { $0.reports } }
    /// Every live mapping.
    public var liveEntries: [Entry] { state.withLock { $0.entries } }
    /// The live mappings of one device.
    public func liveEntries(of device: DMADevice) -> [Entry] {
        state.withLock { $0.entries.filter { $0.deviceID == ObjectIdentifier(device) } }
    }

    /// Forgets every report (entries stay).
    public func clearReports() { state.withLock { $0.reports.removeAll() } }

    /// `dma_mapping_error`: whether `address` is `DMA_MAPPING_ERROR`, marking the first unchecked
    /// mapping of `device` at that address as checked.
    @discardableResult
    public func mappingError(_ address: DMAAddress, device: DMADevice) -> Bool {
        state.withLock { state in
            if let index = state.entries.firstIndex(where: {
                $0.deviceID == ObjectIdentifier(device) && $0.address == address && $0.mappingErrorChecked == false
            }) {
                state.entries[index].mappingErrorChecked = true
            }
        }
        return address.isMappingError
    }

    /// Reports every mapping `device` still holds, as `dma_debug_device_change` does when a driver
    /// is unbound, and forgets them.
    /// - Returns: the leak report, or `nil` when nothing was live.
    @discardableResult
    public func deviceReleased(_ device: DMADevice) -> DMADebugReport? {
        state.withLock { state in
            let leaked = state.entries.filter { $0.deviceID == ObjectIdentifier(device) }
            guard !leaked.isEmpty else { return nil }
            state.entries.removeAll { $0.deviceID == ObjectIdentifier(device) }
            let details = leaked.map(\.description).joined(separator: "\n  ")
            let report = DMADebugReport(
                kind: .leak, device: device.name, address: leaked[0].address, size: UInt64(leaked.count),
                message: "device driver has pending DMA allocations while released from device [count=\(leaked.count)]\n  \(details)")
            state.reports.append(report)
            return report
        }
    }

    // MARK: Recording and checking (used by DMADebugOps)

    func record(_ device: DMADevice, _ address: DMAAddress, _ size: UInt64, _ type: DMADebugMappingType, _ direction: DMADirection, entryCount: Int) {
        let checked: Bool? = type == .scatterList || !configuration.checkMappingErrors ? nil : false
        let entry = Entry(
            device: device.name, deviceID: ObjectIdentifier(device), address: address, size: size, type: type,
            direction: direction, entryCount: entryCount, mappingErrorChecked: checked)
        state.withLock { $0.entries.append(entry) }
    }

    /// `check_unmap`: finds and removes the entry, reporting every disagreement.
    func checkUnmap(
        _ device: DMADevice, _ address: DMAAddress, _ size: UInt64, _ type: DMADebugMappingType, _ direction: DMADirection,
        entryCount: Int
    ) throws(DMAError) {
        var found: [DMADebugReport] = []
        func report(_ kind: DMADebugReport.Kind, _ message: String) {
            found.append(DMADebugReport(kind: kind, device: device.name, address: address, size: size, message: message))
        }
        state.withLock { state in
            guard let index = Self.bestFit(state.entries, device, address, size, type, direction, entryCount) else {
                if address.isMappingError {
                    report(.unmapMappingError, "device driver tries to free an invalid DMA memory address")
                } else {
                    report(
                        .unmapNotMapped,
                        "device driver tries to free DMA memory it has not allocated [device address=\(address)] [size=\(size) bytes]")
                }
                return
            }
            let entry = state.entries[index]
            if entry.size != size {
                report(
                    .sizeMismatch,
                    "device driver frees DMA memory with different size [device address=\(address)] [map size=\(entry.size) bytes] [unmap size=\(size) bytes]")
            }
            if entry.type != type {
                report(
                    .typeMismatch,
                    "device driver frees DMA memory with wrong function [device address=\(address)] [size=\(size) bytes] [mapped as \(entry.type.rawValue)] [unmapped as \(type.rawValue)]")
            }
            if entry.type == .scatterList && type == .scatterList && entry.entryCount != entryCount {
                report(
                    .entryCountMismatch,
                    "device driver frees DMA sg list with different entry count [map count=\(entry.entryCount)] [unmap count=\(entryCount)]")
            }
            if entry.direction != direction {
                report(
                    .directionMismatch,
                    "device driver frees DMA memory with different direction [device address=\(address)] [size=\(size) bytes] [mapped with \(entry.direction.kernelName)] [unmapped with \(direction.kernelName)]")
            }
            if entry.mappingErrorChecked == false {
                report(
                    .mappingErrorNotChecked,
                    "device driver failed to check map error [device address=\(address)] [size=\(size) bytes] [mapped as \(entry.type.rawValue)]")
            }
            if !configuration.strict || found.isEmpty { state.entries.remove(at: index) }
        }
        try deliver(found)
    }

    /// `check_sync`: the sync must fall inside one live mapping and agree with its direction.
    func checkSync(
        _ device: DMADevice, _ address: DMAAddress, _ size: UInt64, _ direction: DMADirection, toCPU: Bool, entryCount: Int?
    ) throws(DMAError) {
        var found: [DMADebugReport] = []
        func report(_ kind: DMADebugReport.Kind, _ message: String) {
            found.append(DMADebugReport(kind: kind, device: device.name, address: address, size: size, message: message))
        }
        state.withLock { state in
            guard
                let entry = state.entries.first(where: {
                    $0.deviceID == ObjectIdentifier(device) && address >= $0.address && address.rawValue - $0.address.rawValue < $0.size
                })
            else {
                report(
                    .syncNotMapped,
                    "device driver tries to sync DMA memory it has not allocated [device address=\(address)] [size=\(size) bytes]")
                return
            }
            let offset = address.rawValue - entry.address.rawValue
            if size > entry.size - offset {
                report(
                    .syncOutOfBounds,
                    "device driver syncs DMA memory outside allocated range [device address=\(entry.address)] [allocation size=\(entry.size) bytes] [sync offset=\(offset) size=\(size) bytes]")
            }
            if entry.direction == .bidirectional { return }
            if entry.direction != direction {
                report(
                    .syncDirectionMismatch,
                    "device driver syncs DMA memory with different direction [device address=\(address)] [size=\(size) bytes] [mapped with \(entry.direction.kernelName)] [synced with \(direction.kernelName)]")
            }
            if toCPU && entry.direction != .fromDevice && direction != .toDevice {
                report(
                    .syncReadOnlyForCPU,
                    "device driver syncs device read-only DMA memory for cpu [device address=\(address)] [size=\(size) bytes] [mapped with \(entry.direction.kernelName)] [synced with \(direction.kernelName)]")
            }
            if !toCPU && entry.direction != .toDevice && direction != .fromDevice {
                report(
                    .syncWriteOnlyForDevice,
                    "device driver syncs device write-only DMA memory to its device [device address=\(address)] [size=\(size) bytes] [mapped with \(entry.direction.kernelName)] [synced with \(direction.kernelName)]")
            }
            if let entryCount, entry.type == .scatterList, entry.entryCount != entryCount {
                report(
                    .entryCountMismatch,
                    "device driver syncs DMA sg list with different entry count [map count=\(entry.entryCount)] [sync count=\(entryCount)]")
            }
        }
        try deliver(found)
    }

    private func deliver(_ found: [DMADebugReport]) throws(DMAError) {
        guard let first = found.first else { return }
        if configuration.strict {
            throw DMAError(.debugCheckFailed, .EINVAL, first.description)
        }
        state.withLock { $0.reports.append(contentsOf: found) }
    }

    /// `hash_bucket_find`: an exact match wins; otherwise the best partial match, but only when
    /// exactly one entry has the device and address.
    private static func bestFit(
        _ entries: [Entry], _ device: DMADevice, _ address: DMAAddress, _ size: UInt64, _ type: DMADebugMappingType,
        _ direction: DMADirection, _ entryCount: Int
    ) -> Int? {
        var best: (index: Int, score: Int)?
        var matches = 0
        for (index, entry) in entries.enumerated()
        where entry.deviceID == ObjectIdentifier(device) && entry.address == address {
            matches += 1
            var score = 0
            if entry.size == size { score += 1 }
            if entry.type == type { score += 1 }
            if entry.direction == direction { score += 1 }
            if entry.entryCount == entryCount { score += 1 }
            if score == 4 { return index }
            if score > (best?.score ?? -1) { best = (index, score) }
        }
        return matches == 1 ? best?.index : nil
    }
}

/// Wraps any ops with the DMA-API debug checks (`CONFIG_DMA_API_DEBUG`): every call is checked
/// against the live mappings in a shared ``DMADebug``, then passed to the wrapped ops unchanged —
/// the debug layer observes, it does not fix (in strict mode a failed check throws first).
///
/// The two-step IOVA calls pass through unchecked, as `debug.c` has no hooks for them.
public struct DMADebugOps: DMAOps {
    /// The wrapped ops.
    public let wrapped: any DMAOps
    /// The shared debug state.
    public let debug: DMADebug

    /// Wraps `ops`.
    public init(wrapping ops: any DMAOps, debug: DMADebug) {
        self.wrapped = ops
        self.debug = debug
    }

    /// The wrapped ops' name: the same ops, instrumented.
    public var name: String { wrapped.name }
    public var p2pSupported: Bool { wrapped.p2pSupported }
    public var summary: String { wrapped.summary + " [+ DMA-API debug]" }
    public var addressesAreCPUVirtual: Bool { wrapped.addressesAreCPUVirtual }

    private static func type(_ attributes: DMAAttributes) -> DMADebugMappingType {
        attributes.contains(.mmio) ? .phys : .single
    }

    public func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAAddress
    {
        let address = try wrapped.mapPhys(range, direction: direction, attributes: attributes, device: device)
        debug.record(device, address, range.length, Self.type(attributes), direction, entryCount: 0)
        return address
    }

    public func unmapPhys(
        _ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        try debug.checkUnmap(device, address, length, Self.type(attributes), direction, entryCount: 0)
        try wrapped.unmapPhys(address, length: length, direction: direction, attributes: attributes, device: device)
    }

    public func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAScatterTable
    {
        let table = try wrapped.mapScatterList(list, direction: direction, attributes: attributes, device: device)
        for segment in table.segments {
            debug.record(device, segment.address, segment.length, .scatterList, direction, entryCount: list.count)
        }
        return table
    }

    public func unmapScatterList(
        _ table: DMAScatterTable, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        for segment in table.segments {
            try debug.checkUnmap(device, segment.address, segment.length, .scatterList, direction, entryCount: table.list.count)
        }
        try wrapped.unmapScatterList(table, direction: direction, attributes: attributes, device: device)
    }

    public func syncForCPU(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice)
        throws(DMAError)
    {
        try debug.checkSync(device, address, length, direction, toCPU: true, entryCount: nil)
        try wrapped.syncForCPU(address, length: length, direction: direction, device: device)
    }

    public func syncForDevice(_ address: DMAAddress, length: UInt64, direction: DMADirection, device: DMADevice)
        throws(DMAError)
    {
        try debug.checkSync(device, address, length, direction, toCPU: false, entryCount: nil)
        try wrapped.syncForDevice(address, length: length, direction: direction, device: device)
    }

    public func syncScatterListForCPU(_ table: DMAScatterTable, direction: DMADirection, device: DMADevice) throws(DMAError) {
        for segment in table.segments {
            try debug.checkSync(device, segment.address, segment.length, direction, toCPU: true, entryCount: table.list.count)
        }
        try wrapped.syncScatterListForCPU(table, direction: direction, device: device)
    }

    public func syncScatterListForDevice(_ table: DMAScatterTable, direction: DMADirection, device: DMADevice)
        throws(DMAError)
    {
        for segment in table.segments {
            try debug.checkSync(device, segment.address, segment.length, direction, toCPU: false, entryCount: table.list.count)
        }
        try wrapped.syncScatterListForDevice(table, direction: direction, device: device)
    }

    public func translate(_ address: DMAAddress, access: DMAAccess, device: DMADevice) throws(DMAError) -> PhysicalAddress {
        try wrapped.translate(address, access: access, device: device)
    }

    public func iovaTryAlloc(_ physical: PhysicalAddress, size: UInt64, device: DMADevice) throws(DMAError) -> DMAIOVAState? {
        try wrapped.iovaTryAlloc(physical, size: size, device: device)
    }

    public func iovaLink(
        _ state: DMAIOVAState, physical: PhysicalAddress, offset: UInt64, length: UInt64, direction: DMADirection,
        attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        try wrapped.iovaLink(state, physical: physical, offset: offset, length: length, direction: direction, attributes: attributes, device: device)
    }

    public func iovaSync(_ state: DMAIOVAState, offset: UInt64, length: UInt64, device: DMADevice) throws(DMAError) {
        try wrapped.iovaSync(state, offset: offset, length: length, device: device)
    }

    public func iovaDestroy(
        _ state: DMAIOVAState, mappedLength: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        try wrapped.iovaDestroy(state, mappedLength: mappedLength, direction: direction, attributes: attributes, device: device)
    }
}

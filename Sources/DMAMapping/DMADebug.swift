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
        /// Sync of a range no live mapping contains: never mapped, or running past the end of a
        /// mapping ("tries to sync DMA memory it has not allocated").
        case syncNotMapped = "sync-not-mapped"
        /// Sync longer than the mapping it was matched to ("syncs DMA memory outside allocated
        /// range"). `check_sync` matches by containment, so a sync that runs past the end of a
        /// mapping finds none and is ``syncNotMapped``; this is left for the best-fit corner.
        case syncOutOfBounds = "sync-out-of-bounds"
        /// Sync with another direction than the map ("syncs DMA memory with different direction").
        case syncDirectionMismatch = "sync-direction-mismatch"
        /// `DMA_TO_DEVICE` memory synced for the CPU ("syncs device read-only DMA memory for cpu").
        case syncReadOnlyForCPU = "sync-read-only-for-cpu"
        /// `DMA_FROM_DEVICE` memory synced for the device ("syncs device write-only DMA memory to device").
        case syncWriteOnlyForDevice = "sync-write-only-for-device"
        /// Mappings still live when the device is released ("has pending DMA allocations while released").
        case leak = "leak"
        /// A scatter-list entry longer than the device's maximum segment size
        /// ("mapping sg segment longer than device claims to support"; `check_sg_segment`).
        case segmentTooLong = "sg-segment-too-long"
        /// A mapped segment that crosses the device's segment boundary
        /// ("mapping sg segment across boundary"; `check_sg_segment`).
        case segmentAcrossBoundary = "sg-segment-across-boundary"
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

/// The kind of call a mapping was made with, as `debug.c` records it (`type2name`).
///
/// Which one a single mapping gets depends on the release (`KernelRules`,
/// `KernelRule.mapPhysMMIO`): from 6.18 every `dma_map_phys` is recorded as `phy`, RAM and
/// `DMA_ATTR_MMIO` alike (`debug_dma_map_phys`), so unmapping RAM "as MMIO" is no wrong
/// function; before 6.18 `dma_map_page` recorded `single` and `dma_map_resource` `resource`.
public enum DMADebugMappingType: String, Hashable, Sendable {
    /// `dma_map_single` / `dma_map_page` before 6.18 (`dma_debug_single`), and the type a
    /// `dma_sync_single_*` call is looked up with in every release.
    case single
    /// `dma_map_phys`, RAM or MMIO, from 6.18 (`dma_debug_phy`).
    case phys = "phy"
    /// `dma_map_resource` before 6.18 (`dma_debug_resource`).
    case resource
    /// `dma_map_sg` / `dma_map_sgtable` (`dma_debug_sg`).
    case scatterList = "scatter-gather"

    /// The type a single mapping with `attributes` is recorded as in `rules`' kernel.
    public static func single(_ attributes: DMAAttributes, in rules: KernelRules) -> DMADebugMappingType {
        if rules.has(.mapPhysMMIO) { return .phys }
        return attributes.contains(.mmio) ? .resource : .single
    }
}

/// `0x%016llx`, the way `debug.c` prints a device address.
func kernelAddress(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 16 - digits.count)) + digits
}

/// The DMA-API debug state (`kernel/dma/debug.c`): every live mapping of every device wrapped by a
/// ``DMADebugOps``, and the reports found so far.
///
/// Entries are matched as the kernel matches them (`__hash_bucket_find`): an unmap by device and
/// DMA address, a sync by containment (the entry holds the whole synced range,
/// `bucket_find_contain`, walking back one hash bucket at a time), taking in each bucket an entry
/// that agrees on size, type, direction and entry count when there is one, or the single match.
/// Reports are values the caller reads: ``reports`` holds every problem found (the kernel's
/// `error_count`), ``shownReports`` the ones the kernel would print, which by default is only the
/// first (`num_errors` 1, `all_errors` 0). In strict mode the first report of a call is thrown
/// instead, before the call reaches the wrapped ops.
public final class DMADebug: Sendable {
    /// What the layer checks and how it reports.
    public struct Configuration: Hashable, Sendable {
        /// Throw `DMAError/Code/debugCheckFailed` at the first problem instead of recording it.
        public var strict: Bool
        /// Report successful maps that were never checked with ``DMADebug/mappingError(_:device:)``
        /// (on in the kernel).
        public var checkMappingErrors: Bool
        /// Print every error (`/sys/kernel/debug/dma-api/all_errors`, 0 by default).
        public var showAllErrors: Bool
        /// How many errors to print when not all are (`num_errors`, 1 by default: only the first
        /// error is shown; every error is still counted).
        public var numErrors: Int
        /// Creates a configuration; the kernel's defaults show only the first error.
        public init(strict: Bool = false, checkMappingErrors: Bool = true, showAllErrors: Bool = false, numErrors: Int = 1) {
            self.strict = strict
            self.checkMappingErrors = checkMappingErrors
            self.showAllErrors = showAllErrors
            self.numErrors = numErrors
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
            "[device address=\(kernelAddress(address.rawValue))] [size=\(size) bytes] [mapped with \(direction.kernelName)] [mapped as \(type.rawValue)]"
        }
    }

    private struct State {
        var entries: [Entry] = []
        var reports: [DMADebugReport] = []
        var shown: [DMADebugReport] = []
        var numErrorsLeft: Int
    }

    /// How the layer behaves.
    public let configuration: Configuration
    private let state: ModelMutex<State>

    /// Creates an empty debug state.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.state = ModelMutex(State(numErrorsLeft: configuration.numErrors))
    }

    /// Every report so far, oldest first: every error the kernel counts (`error_count`).
    public var reports: [DMADebugReport] { state.withLock { $0.reports } }
    /// The reports the kernel would print (`err_printk`): all of them with
    /// ``Configuration/showAllErrors``, otherwise the first ``Configuration/numErrors``.
    public var shownReports: [DMADebugReport] { state.withLock { $0.shown } }
    /// The number of errors found (`/sys/kernel/debug/dma-api/error_count`).
    public var errorCount: Int { state.withLock { $0.reports.count } }
    /// Every live mapping.
    public var liveEntries: [Entry] { state.withLock { $0.entries } }
    /// The live mappings of one device.
    public func liveEntries(of device: DMADevice) -> [Entry] {
        state.withLock { $0.entries.filter { $0.deviceID == ObjectIdentifier(device) } }
    }

    /// Forgets every report, shown or not (entries stay, and the number of errors still to show
    /// is not reset).
    public func clearReports() {
        state.withLock {
            $0.reports.removeAll()
            $0.shown.removeAll()
        }
    }

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

    /// Reports the mappings `device` still holds, as `dma_debug_device_change` does when a driver
    /// is unbound (`BUS_NOTIFY_UNBOUND_DRIVER`): their count and the details of one of them, the
    /// last one met walking the hash table in bucket order (`device_dma_allocations`). The entries
    /// stay, as they do in the kernel.
    /// - Returns: the leak report, or `nil` when nothing was live.
    @discardableResult
    public func deviceReleased(_ device: DMADevice) -> DMADebugReport? {
        state.withLock { state in
            var count = 0
            var last: Entry?
            for entry in state.entries where entry.deviceID == ObjectIdentifier(device) {
                count += 1
                // buckets in index order, each in insertion order: the last one met is kept
                if last == nil || Self.bucket(entry.address.rawValue) >= Self.bucket(last!.address.rawValue) { last = entry }
            }
            guard let last else { return nil }
            let report = DMADebugReport(
                kind: .leak, device: device.name, address: last.address, size: UInt64(count),
                message: "device driver has pending DMA allocations while released from device [count=\(count)]\nOne of leaked entries details: \(last.description)")
            Self.add([report], &state, configuration)
            return report
        }
    }

    /// `HASH_SIZE` and `HASH_FN_SHIFT` of `debug.c`: 16384 buckets by bits 13 and up of the address.
    private static let hashSize: UInt64 = 16384
    private static let hashShift: UInt64 = 13
    private static func bucket(_ address: UInt64) -> UInt64 { (address >> hashShift) & (hashSize - 1) }

    /// `err_printk`: every error counts; it is printed while `all_errors` is set or `num_errors`
    /// has some left.
    private static func add(_ found: [DMADebugReport], _ state: inout State, _ configuration: Configuration) {
        for report in found {
            state.reports.append(report)
            if configuration.showAllErrors || state.numErrorsLeft > 0 { state.shown.append(report) }
            if !configuration.showAllErrors && state.numErrorsLeft > 0 { state.numErrorsLeft -= 1 }
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
            let exact = state.entries.indices.filter {
                state.entries[$0].deviceID == ObjectIdentifier(device) && state.entries[$0].address == address
            }
            guard let index = Self.bestFit(exact, state.entries, size, type, direction, entryCount) else {
                if address.isMappingError {
                    report(.unmapMappingError, "device driver tries to free an invalid DMA memory address")
                } else {
                    report(
                        .unmapNotMapped,
                        "device driver tries to free DMA memory it has not allocated [device address=\(kernelAddress(address.rawValue))] [size=\(size) bytes]")
                }
                return
            }
            let entry = state.entries[index]
            if entry.size != size {
                report(
                    .sizeMismatch,
                    "device driver frees DMA memory with different size [device address=\(kernelAddress(address.rawValue))] [map size=\(entry.size) bytes] [unmap size=\(size) bytes]")
            }
            if entry.type != type {
                report(
                    .typeMismatch,
                    "device driver frees DMA memory with wrong function [device address=\(kernelAddress(address.rawValue))] [size=\(size) bytes] [mapped as \(entry.type.rawValue)] [unmapped as \(type.rawValue)]")
            }
            if entry.type == .scatterList && type == .scatterList && entry.entryCount != entryCount {
                report(
                    .entryCountMismatch,
                    "device driver frees DMA sg list with different entry count [map count=\(entry.entryCount)] [unmap count=\(entryCount)]")
            }
            if entry.direction != direction {
                report(
                    .directionMismatch,
                    "device driver frees DMA memory with different direction [device address=\(kernelAddress(address.rawValue))] [size=\(size) bytes] [mapped with \(entry.direction.kernelName)] [unmapped with \(direction.kernelName)]")
            }
            if entry.mappingErrorChecked == false {
                report(
                    .mappingErrorNotChecked,
                    "device driver failed to check map error [device address=\(kernelAddress(address.rawValue))] [size=\(size) bytes] [mapped as \(entry.type.rawValue)]")
            }
            if !configuration.strict || found.isEmpty { state.entries.remove(at: index) }
        }
        try deliver(found)
    }

    /// `check_sync`: the synced range must lie inside one live mapping (`bucket_find_contain`) and
    /// agree with its direction. `entryCount` is `nil` for a single sync (looked up as `single`
    /// with no entries, `debug_dma_sync_single_for_*`), the list's entry count for a scatter-list.
    func checkSync(
        _ device: DMADevice, _ address: DMAAddress, _ size: UInt64, _ direction: DMADirection, toCPU: Bool, entryCount: Int?
    ) throws(DMAError) {
        var found: [DMADebugReport] = []
        let ref = kernelAddress(address.rawValue)
        func report(_ kind: DMADebugReport.Kind, _ message: String) {
            found.append(DMADebugReport(kind: kind, device: device.name, address: address, size: size, message: message))
        }
        state.withLock { state in
            let type: DMADebugMappingType = entryCount == nil ? .single : .scatterList
            guard let index = Self.findContaining(state.entries, device, address, size, type, direction, entryCount ?? 0) else {
                report(
                    .syncNotMapped,
                    "device driver tries to sync DMA memory it has not allocated [device address=\(ref)] [size=\(size) bytes]")
                return
            }
            let entry = state.entries[index]
            if size > entry.size {
                report(
                    .syncOutOfBounds,
                    "device driver syncs DMA memory outside allocated range [device address=\(kernelAddress(entry.address.rawValue))] [allocation size=\(entry.size) bytes] [sync offset+size=\(size)]")
            }
            if entry.direction == .bidirectional { return }
            if entry.direction != direction {
                report(
                    .syncDirectionMismatch,
                    "device driver syncs DMA memory with different direction [device address=\(ref)] [size=\(entry.size) bytes] [mapped with \(entry.direction.kernelName)] [synced with \(direction.kernelName)]")
            }
            if toCPU && entry.direction != .fromDevice && direction != .toDevice {
                report(
                    .syncReadOnlyForCPU,
                    "device driver syncs device read-only DMA memory for cpu [device address=\(ref)] [size=\(entry.size) bytes] [mapped with \(entry.direction.kernelName)] [synced with \(direction.kernelName)]")
            }
            if !toCPU && entry.direction != .toDevice && direction != .fromDevice {
                report(
                    .syncWriteOnlyForDevice,
                    "device driver syncs device write-only DMA memory to device [device address=\(ref)] [size=\(entry.size) bytes] [mapped with \(entry.direction.kernelName)] [synced with \(direction.kernelName)]")
            }
            if let entryCount, entryCount != 0, entry.entryCount != entryCount {
                report(
                    .entryCountMismatch,
                    "device driver syncs DMA sg list with different entry count [map count=\(entry.entryCount)] [sync count=\(entryCount)]")
            }
        }
        try deliver(found)
    }

    /// `check_sg_segment`, for each mapped segment of a scatter-list map: the list's entry at the
    /// same index is no longer than the device's maximum segment size, and the DMA segment does
    /// not cross its segment boundary. Problems are reported, never thrown: the map has happened.
    func checkScatterListSegments(_ device: DMADevice, _ table: DMAScatterTable) {
        var found: [DMADebugReport] = []
        let maxSegment = device.maxSegmentSize
        let boundary = device.segmentBoundaryMask
        let entries = table.list.ranges.ranges
        for (index, segment) in table.segments.enumerated() {
            if index < entries.count, entries[index].length > maxSegment {
                found.append(
                    DMADebugReport(
                        kind: .segmentTooLong, device: device.name, address: segment.address, size: entries[index].length,
                        message: "mapping sg segment longer than device claims to support [len=\(entries[index].length)] [max=\(maxSegment)]"))
            }
            guard segment.length > 0 else { continue }
            let start = segment.address.rawValue
            let end = start &+ (segment.length - 1)
            if (start ^ end) & ~boundary != 0 {
                found.append(
                    DMADebugReport(
                        kind: .segmentAcrossBoundary, device: device.name, address: segment.address, size: segment.length,
                        message: "mapping sg segment across boundary [start=\(kernelAddress(start))] [end=\(kernelAddress(end))] [boundary=\(kernelAddress(boundary))]"))
            }
        }
        guard !found.isEmpty else { return }
        state.withLock { Self.add(found, &$0, configuration) }
    }

    private func deliver(_ found: [DMADebugReport]) throws(DMAError) {
        guard let first = found.first else { return }
        if configuration.strict {
            throw DMAError(.debugCheckFailed, .EINVAL, first.description)
        }
        state.withLock { Self.add(found, &$0, configuration) }
    }

    /// `bucket_find_contain`: the entries of `device` that hold all of `address ..< address + size`,
    /// taken bucket by bucket from the address's own backwards (at most as many buckets as lie
    /// below the address); the first bucket with a fit (``bestFit``) wins.
    private static func findContaining(
        _ entries: [Entry], _ device: DMADevice, _ address: DMAAddress, _ size: UInt64, _ type: DMADebugMappingType,
        _ direction: DMADirection, _ entryCount: Int
    ) -> Int? {
        let home = bucket(address.rawValue)
        let limit = min(hashSize, (address.rawValue >> hashShift) + 1)
        var byStep: [UInt64: [Int]] = [:]
        for (index, entry) in entries.enumerated() where entry.deviceID == ObjectIdentifier(device) && entry.address <= address {
            let into = address.rawValue - entry.address.rawValue
            guard into <= entry.size, size <= entry.size - into else { continue }
            let step = (home &- bucket(entry.address.rawValue)) & (hashSize - 1)
            if step < limit { byStep[step, default: []].append(index) }
        }
        for step in byStep.keys.sorted() {
            if let found = bestFit(byStep[step]!, entries, size, type, direction, entryCount) { return found }
        }
        return nil
    }

    /// `__hash_bucket_find` over the entries that matched (`candidates`, indices into `entries`):
    /// one that agrees on size, type, direction and entry count wins; otherwise the best partial
    /// match, but only when there is exactly one candidate.
    private static func bestFit(
        _ candidates: [Int], _ entries: [Entry], _ size: UInt64, _ type: DMADebugMappingType, _ direction: DMADirection,
        _ entryCount: Int
    ) -> Int? {
        var best: (index: Int, score: Int)?
        var matches = 0
        for index in candidates {
            let entry = entries[index]
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

    private static func type(_ attributes: DMAAttributes, _ device: DMADevice) -> DMADebugMappingType {
        .single(attributes, in: device.kernel)
    }

    public func mapPhys(_ range: PhysicalRange, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAAddress
    {
        let address = try wrapped.mapPhys(range, direction: direction, attributes: attributes, device: device)
        debug.record(device, address, range.length, Self.type(attributes, device), direction, entryCount: 0)
        return address
    }

    public func unmapPhys(
        _ address: DMAAddress, length: UInt64, direction: DMADirection, attributes: DMAAttributes, device: DMADevice
    ) throws(DMAError) {
        try debug.checkUnmap(device, address, length, Self.type(attributes, device), direction, entryCount: 0)
        try wrapped.unmapPhys(address, length: length, direction: direction, attributes: attributes, device: device)
    }

    public func mapScatterList(_ list: ScatterList, direction: DMADirection, attributes: DMAAttributes, device: DMADevice)
        throws(DMAError) -> DMAScatterTable
    {
        let table = try wrapped.mapScatterList(list, direction: direction, attributes: attributes, device: device)
        for segment in table.segments {
            debug.record(device, segment.address, segment.length, .scatterList, direction, entryCount: list.count)
        }
        debug.checkScatterListSegments(device, table)  // debug_dma_map_sg checks each segment
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

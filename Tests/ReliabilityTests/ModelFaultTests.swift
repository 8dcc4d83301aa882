import DMABuf
import DMACore
import DMADevices
import DMAMapping
import DMAScenario
import Foundation
import PCI
import Synchronization
import Testing

/// `count` physically discontiguous ranges of `length` bytes of RAM above 4 GiB (a gap after each).
func discontiguous(_ memory: SimulatedMemory, count: Int, length: UInt64) throws -> [PhysicalRange] {
    let block = try memory.allocate(length: UInt64(2 * count) * length)
    return try (0..<count).map { i in try PhysicalRange(start: try block.start.advanced(by: UInt64(2 * i) * length), length: length) }
}

@Suite("Injected faults in the model")
struct ModelFaultTests {
    static let segments = 8
    static let segmentBytes: UInt64 = 32 * 1024  // 16 swiotlb slots, 8 IOVA pages

    @Test("swiotlb exhaustion at every segment index of a scatter-list map: all or nothing", arguments: 0..<segments)
    func swiotlbExhaustion(_ failingIndex: Int) throws {
        let machine = try SimulatedMachine.builtIn()
        let device = try machine.dmaDevice("0000:04:00.0", ops: "direct", maskBits: 32, swiotlbSlots: 128)
        let pool = try #require(device.swiotlb)
        // Leave room for exactly `failingIndex` segments: the map fails at that segment.
        let fillerSlots = 128 - failingIndex * Int(Self.segmentBytes / SwiotlbPool.slotSize)
        if fillerSlots > 0 {
            let filler = try machine.memory.allocate(length: UInt64(fillerSlots) * SwiotlbPool.slotSize)
            _ = try pool.map(filler, minAlignMask: 0)
        }
        let before = pool.usage.used
        let list = try ScatterList.host(try discontiguous(machine.memory, count: Self.segments, length: Self.segmentBytes))
        #expect(throws: DMAError.self) { try device.mapScatterList(list, direction: .toDevice) }
        #expect(pool.usage.used == before, "slots left in use after a failed map")
        #expect(pool.usage.highWater == before + failingIndex * 16, "the map did not reach segment \(failingIndex)")
        #expect(pool.liveMappings == (fillerSlots > 0 ? 1 : 0))
        #expect(machine.finish().isEmpty, "the debug layer holds entries of a failed map")
    }

    @Test("IOVA exhaustion for a scatter-list map of every size: all or nothing", arguments: 0..<segments)
    func iovaExhaustion(_ room: Int) throws {
        let machine = try SimulatedMachine.builtIn()
        let pagesPerSegment = Self.segmentBytes / IOMMUDomain.granule
        let aperturePages: UInt64 = 256
        let domain = try IOMMUDomain(name: "small", apertureEnd: aperturePages * IOMMUDomain.granule - 1)
        let ops = try machine.registry.ops(named: "iommu")
        let debug = DMADebug()
        let device = try DMADevice(
            name: "0000:04:00.0", memory: machine.memory, ops: DMADebugOps(wrapping: ops, debug: debug), iommu: domain,
            topology: machine.topology)
        // Take every IOVA page one by one, then give back the `room` segments' worth at the top.
        var pages: [DMAAddress] = []
        while let page = try? domain.allocateIOVA(pages: 1, limit: UInt64.max, device: "filler") { pages.append(page) }
        #expect(pages.count >= Int(aperturePages) - 1)
        for page in pages.sorted(by: { $0.rawValue > $1.rawValue }).prefix(room * Int(pagesPerSegment)) { try domain.freeIOVA(page) }
        let fillers = domain.liveAllocations
        let list = try ScatterList.host(try discontiguous(machine.memory, count: Self.segments, length: Self.segmentBytes))
        #expect(throws: DMAError.self) { try device.mapScatterList(list, direction: .bidirectional) }
        #expect(domain.liveAllocations == fillers, "an IOVA range of a failed map is still allocated")
        #expect(domain.mappedPages == 0, "pages of a failed map are still mapped")
        debug.deviceReleased(device)
        #expect(debug.reports.isEmpty)
    }

    /// A story with an evict (GPU buffers) or revoke (VFIO buffers) step inserted at each position.
    /// Buffers are cut to 128 KiB (every step of the stories still fits) so that the runs, which
    /// copy and compare every byte, take seconds.
    static func variants(_ story: Story) throws -> [(story: Int, position: Int, op: Scenario.Step.Op, buffer: String, scenario: Scenario)] {
        var out: [(Int, Int, Scenario.Step.Op, String, Scenario)] = []
        do {
            var scenario = try story.scenario()
            for index in scenario.buffers.indices {
                if let size = scenario.buffers[index].size { scenario.buffers[index].size = min(size, 128 * 1024) }
            }
            for buffer in scenario.buffers {
                let op: Scenario.Step.Op
                switch buffer.exporter {
                case .gpuVRAM: op = .evict
                case .vfioBAR: op = .revoke
                case .systemHeap: continue
                }
                for position in 0...scenario.steps.count {
                    var changed = scenario
                    changed.stopOnError = false
                    var step = try Scenario.parse("steps:\n  - \(op.rawValue): {buffer: \"\(buffer.name)\"}\n", file: "inserted").steps[0]
                    step.line = nil
                    changed.steps.insert(step, at: position)
                    out.append((story.number, position, op, buffer.name, changed))
                }
            }
        }
        return out
    }

    @Test("revoke and evict between every pair of steps of a story: no crash, no leak", arguments: Story.all.map(\.number))
    func revokeAndEvictEverywhere(_ number: Int) throws {
        let variants = try Self.variants(Story.all[number - 1])
        // Story 5 has only a system-heap buffer, which is neither evicted nor revoked.
        let movable = try Story.all[number - 1].scenario().buffers.contains { $0.exporter != .systemHeap }
        #expect(movable ? variants.count >= 5 : variants.isEmpty)
        print("fault injection, model: story \(number) with \(variants.count) evict/revoke insertions")
        for variant in variants {
            let result = try ScenarioRunner.run(variant.scenario)
            let what = "story \(variant.story), \(variant.op.rawValue) \(variant.buffer) at step \(variant.position)"
            #expect(result.debugReports.isEmpty, "\(what): \(result.debugReports)")
            let inserted = result.steps.first { $0.op == .step(variant.op) && $0.line == nil }
            #expect(inserted != nil, "\(what): the inserted step did not run")
        }
    }
}

/// An importer whose `invalidate_mappings` re-enters the buffer: it maps and unmaps from inside
/// the callback, as a careless driver would, and records what the core answered.
final class ReenteringImporter: DMABufImporter {
    let allowPeerToPeer = true
    let answers = Mutex<[String]>([])
    let mapping = Mutex<DMABufMapping?>(nil)

    func invalidateMappings(_ attachment: DMABufAttachment, in context: ReservationContext) {
        let buffer = attachment.buffer
        func record(_ call: String, _ body: () throws(DMAError) -> Void) {
            do throws(DMAError) {
                try body()
                answers.withLock { $0.append("\(call): ok") }
            } catch {
                answers.withLock { $0.append("\(call): \(error.errno.name)") }
            }
        }
        record("mapUnlocked") { () throws(DMAError) in _ = try buffer.mapUnlocked(attachment, direction: .bidirectional) }
        record("map") { () throws(DMAError) in _ = try buffer.map(attachment, direction: .bidirectional, in: context) }
        if let live = mapping.withLock({ $0 }) {
            record("unmapUnlocked") { () throws(DMAError) in try buffer.unmapUnlocked(attachment, live, direction: .bidirectional) }
            record("unmap") { () throws(DMAError) in try buffer.unmap(attachment, live, direction: .bidirectional, in: context) }
        }
    }
}

@Suite("Re-entrant invalidate_mappings and concurrent detach")
struct ReentrancyTests {
    @Test("an invalidate_mappings that maps and unmaps gets EDEADLK, not a deadlock or a crash")
    func reentrantInvalidate() throws {
        let machine = try SimulatedMachine.builtIn()
        let gpu = try machine.gpuBuffer(name: "vram", gpu: "0000:03:00.0", size: 1 << 20)
        let device = try machine.dmaDevice("0000:04:00.0", ops: "iommu")
        let importer = ReenteringImporter()
        let attachment = try gpu.buffer.attach(device, importer: importer)
        let live = try gpu.buffer.mapUnlocked(attachment, direction: .bidirectional)
        importer.mapping.withLock { $0 = live }
        _ = try gpu.buffer.resv.withLock { (context) throws(DMAError) in try gpu.evict(in: context) }
        let answers = importer.answers.withLock { $0 }
        // Dropping the mapping with the exporter's lock is what importers do (ib_umem_dmabuf_unmap_pages).
        #expect(answers == ["mapUnlocked: EDEADLK", "map: EDEADLK", "unmapUnlocked: EDEADLK", "unmap: ok"])
        #expect(attachment.mappings.isEmpty, "a mapping made inside invalidate_mappings survived it")
        #expect(gpu.placement == .system)
        // After the callback the importer maps again, at the new place.
        let again = try gpu.buffer.mapUnlocked(attachment, direction: .bidirectional)
        #expect(again.placement == .system)
        try gpu.buffer.unmapUnlocked(attachment, again, direction: .bidirectional)
        try gpu.buffer.detach(attachment)
        #expect(machine.finish().isEmpty)
    }

    @Test("detach from one task while another maps: typed errors only, never a mapping on a detached attachment")
    func detachWhileMapping() async throws {
        let machine = try SimulatedMachine.builtIn()
        let device = try machine.dmaDevice("0000:04:00.0", ops: "direct")
        for round in 0..<200 {
            let heap = try machine.heapBuffer(name: "heap-\(round)", size: 16 * 1024)
            let attachment = try heap.buffer.attach(device)
            let buffer = heap.buffer
            async let mapper: [String] = {
                var seen: [String] = []
                for _ in 0..<20 {
                    do throws(DMAError) {
                        let mapping = try buffer.mapUnlocked(attachment, direction: .toDevice)
                        try buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
                        seen.append("mapped")
                    } catch {
                        seen.append(error.errno.name)
                    }
                }
                return seen
            }()
            async let detacher: String = {
                for _ in 0..<50 {
                    do throws(DMAError) {
                        try buffer.detach(attachment)
                        return "detached"
                    } catch {
                        continue
                    }
                }
                return "never detached"
            }()
            let (seen, detached) = await (mapper, detacher)
            // One task maps while the other detaches: the lock makes the mapper wait, never EDEADLK.
            #expect(Set(seen).isSubset(of: ["mapped", "ENODEV", "EBUSY"]), "\(seen)")
            if attachment.isDetached {
                #expect(attachment.mappings.isEmpty, "round \(round): a mapping lives on a detached attachment (\(detached))")
            }
            #expect(machine.debug.reports.isEmpty, "round \(round): \(detached)")
        }
        #expect(machine.finish().isEmpty)
    }
}

/// A system-memory exporter whose `map` lets a test run something in the middle of it: the window
/// in which another task's detach can land.
final class WindowExporter: DMABufExporter {
    let pages: [PhysicalRange]
    let during = Mutex<(@Sendable () -> Void)?>(nil)
    let exporterName = "window"
    let isDynamic = false
    let placement = DMABufPlacement.system

    init(pages: [PhysicalRange]) { self.pages = pages }

    func cpuRanges() throws(DMAError) -> [PhysicalRange] { pages }

    func map(_ attachment: DMABufAttachment, direction: DMADirection, in context: ReservationContext) throws(DMAError) -> DMABufMapping {
        let table = try attachment.device.mapScatterList(try ScatterList.host(pages), direction: direction)
        if let hook = during.withLock({ hook in defer { hook = nil }; return hook }) { hook() }
        return DMABufMapping(table: table, placement: .system)
    }

    func unmap(_ attachment: DMABufAttachment, _ mapping: DMABufMapping, direction: DMADirection) throws(DMAError) {
        try attachment.device.unmapScatterList(mapping.table, direction: direction)
    }
}

extension ReentrancyTests {
    @Test("a detach that lands while the exporter maps: the map fails with ENODEV and leaves nothing mapped")
    func detachInsideMap() throws {
        let machine = try SimulatedMachine.builtIn()
        let exporter = WindowExporter(pages: try discontiguous(machine.memory, count: 4, length: 4096))
        let buffer = try DMABuffer(name: "window", size: 4 * 4096, exporter: exporter)
        let device = try machine.dmaDevice("0000:04:00.0", ops: "direct")
        let attachment = try buffer.attach(device)
        let detached = Mutex<String>("not run")
        exporter.during.withLock {
            $0 = {
                do throws(DMAError) {
                    try buffer.detach(attachment)
                    detached.withLock { $0 = "detached" }
                } catch {
                    detached.withLock { $0 = error.errno.name }
                }
            }
        }
        let error = #expect(throws: DMAError.self) { try buffer.mapUnlocked(attachment, direction: .toDevice) }
        #expect(error?.errno == .ENODEV)
        #expect(detached.withLock { $0 } == "detached")
        #expect(attachment.isDetached && attachment.mappings.isEmpty)
        #expect(machine.finish().isEmpty, "the map left a DMA mapping behind")
    }
}

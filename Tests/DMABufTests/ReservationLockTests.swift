import DMABuf
import DMACore
import DMADevices
import DMAMapping
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The reservation lock as a `ww_mutex` (`drivers/dma-buf/dma-resv.c`, `kernel/locking/ww_mutex.h`):
/// an owner context, waiting on contention, `EDEADLK` only for the same context twice.
@Suite("Reservation lock: dma_resv_lock / ww_mutex")
struct ReservationLockTests {
    @Test("two tasks map one buffer at once, many rounds: both always succeed (contention waits, never EDEADLK)")
    func concurrentMaps() async throws {
        let rig = try Rig()
        let gpu = try rig.gpuBuffer()
        let buffer = gpu.buffer
        let first = try buffer.attach(try rig.nearNIC(), importer: RecordingImporter())
        let second = try buffer.attach(try rig.nearNIC(ops: "iommu"), importer: RecordingImporter())
        @Sendable func hammer(_ attachment: DMABufAttachment) -> [String] {
            var failures: [String] = []
            for _ in 0..<500 {
                do throws(DMAError) {
                    let mapping = try buffer.resv.withLock { (context) throws(DMAError) in
                        try buffer.map(attachment, direction: .bidirectional, in: context)
                    }
                    try buffer.unmapUnlocked(attachment, mapping, direction: .bidirectional)
                } catch {
                    failures.append(error.errno.name)
                }
            }
            return failures
        }
        async let a = hammer(first)
        async let b = hammer(second)
        let (failedA, failedB) = await (a, b)
        #expect(failedA.isEmpty && failedB.isEmpty, "first: \(Set(failedA)), second: \(Set(failedB))")
        #expect(!buffer.resv.isHeld)
        try buffer.detach(first)
        try buffer.detach(second)
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("a map that finds the lock held waits for the holder and then succeeds")
    func mapWaitsForHolder() async throws {
        let rig = try Rig()
        let heap = try rig.machine.heapBuffer(name: "heap", size: 16 * 1024)
        let buffer = heap.buffer
        let attachment = try buffer.attach(try rig.nearNIC())
        let log = Shared<[String]>([])
        let holding = Flag()
        let holder = Task.detached {
            try buffer.resv.withLock { (_) throws(DMAError) in
                holding.set()
                usleep(200_000)  // keeps the lock (and its thread) while the other task asks for it
                log.value.withLock { $0.append("holder unlocks") }
            }
        }
        while !holding.isSet { try await Task.sleep(nanoseconds: 1_000_000) }
        let mapper = Task.detached { () -> String in
            do throws(DMAError) {
                let mapping = try buffer.mapUnlocked(attachment, direction: .toDevice)
                log.value.withLock { $0.append("mapper mapped") }
                try buffer.unmapUnlocked(attachment, mapping, direction: .toDevice)
                return "ok"
            } catch {
                return error.errno.name
            }
        }
        try await holder.value
        #expect(await mapper.value == "ok")
        #expect(log.value.withLock { $0 } == ["holder unlocks", "mapper mapped"])
        try buffer.detach(attachment)
        #expect(rig.machine.finish().isEmpty)
    }

    @Test("the same context taking the lock twice is EDEADLK; tryLock with it too")
    func sameContextTwice() throws {
        let resv = ReservationObject()
        let context = ReservationContext()
        try resv.lock(context)
        let again = #expect(throws: DMAError.self) { try resv.lock(context) }
        #expect(again?.errno == .EDEADLK && again?.code == .wouldDeadlock)
        let tryAgain = #expect(throws: DMAError.self) { try resv.tryLock(context) }
        #expect(tryAgain?.errno == .EDEADLK)
        #expect(resv.isHeld(by: context) && context.acquiredCount == 1)
        try resv.unlock(context)
        #expect(!resv.isHeld && context.acquiredCount == 0)
    }

    @Test("tryLock says busy while another context holds the lock, and takes it once free")
    func tryLockBusy() throws {
        let resv = ReservationObject()
        let holder = ReservationContext()
        let other = ReservationContext()
        try resv.lock(holder)
        #expect(try resv.tryLock(other) == false)
        #expect(resv.isHeld(by: holder) && !resv.isHeld(by: other))
        try resv.unlock(holder)
        #expect(try resv.tryLock(other) == true)
        try resv.unlock(other)
    }

    @Test("assertHeld compares owners: a call with another context than the holder's is refused")
    func assertHeldComparesOwners() throws {
        let rig = try Rig()
        let gpu = try rig.gpuBuffer()
        let attachment = try gpu.buffer.attach(try rig.nearNIC(), importer: RecordingImporter())
        let holder = ReservationContext()
        let stranger = ReservationContext()
        try gpu.buffer.resv.lock(holder)
        let map = #expect(throws: DMAError.self) { try gpu.buffer.map(attachment, direction: .toDevice, in: stranger) }
        #expect(map?.code == .lockNotHeld)
        #expect(throws: DMAError.self) { try gpu.buffer.pin(attachment, in: stranger) }
        #expect(throws: DMAError.self) { try gpu.evict(in: stranger) }
        #expect(throws: DMAError.self) { try gpu.buffer.invalidateMappings(in: stranger) }
        let unlock = #expect(throws: DMAError.self) { try gpu.buffer.resv.unlock(stranger) }
        #expect(unlock?.errno == .EPERM)
        #expect(attachment.mappings.isEmpty && gpu.placement == .vram)
        let mapping = try gpu.buffer.map(attachment, direction: .toDevice, in: holder)
        try gpu.buffer.unmap(attachment, mapping, direction: .toDevice, in: holder)
        try gpu.buffer.resv.unlock(holder)
    }

    @Test("wait-die: a younger context holding another lock backs off (EDEADLK) instead of waiting for an older one")
    func waitDie() async throws {
        let a = ReservationObject()
        let b = ReservationObject()
        let older = ReservationContext()
        let younger = ReservationContext()
        let holding = Flag()
        let release = Flag()
        let holder = Task.detached {
            try a.lock(older)
            holding.set()
            while !release.isSet { usleep(1000) }
            try a.unlock(older)
        }
        while !holding.isSet { try await Task.sleep(nanoseconds: 1_000_000) }
        try b.lock(younger)
        let backOff = #expect(throws: DMAError.self) { try a.lock(younger) }
        #expect(backOff?.errno == .EDEADLK)
        try b.unlock(younger)
        release.set()
        try await holder.value
        try a.lock(younger)  // holding nothing else, it may wait and take it
        try a.unlock(younger)
    }

    @Test("revoke changes state only after every importer was told: without the lock nothing changes, a retry tells")
    func revokeTellsFirst() throws {
        let rig = try Rig()
        let vfio = try rig.machine.vfioBuffer(
            name: "bar", device: "0000:09:00.0", bar: 2, ranges: [VFIOBARExporter.Range(offset: 0, length: 8192)])
        let nic = DeviceImporter(name: "nic", device: try rig.nearNIC(), dynamic: true, allowPeerToPeer: true)
        try nic.attach(vfio.buffer)
        try nic.map(vfio.buffer, direction: .bidirectional)
        let unlocked = #expect(throws: DMAError.self) { try vfio.revoke(.reset, in: ReservationContext()) }
        #expect(unlocked?.code == .lockNotHeld)
        #expect(!vfio.isRevoked && nic.invalidations == 0 && nic.mapping(of: vfio.buffer) != nil)
        try nic.deviceWrite([1], to: vfio.buffer, offset: 0)  // the BAR still decodes
        let told = try vfio.buffer.resv.withLock { (context) throws(DMAError) in try vfio.revoke(.reset, in: context) }
        #expect(told.count == 1 && nic.invalidations == 1 && vfio.isRevoked)
        #expect(nic.mapping(of: vfio.buffer) == nil)
        try vfio.restore()
        try nic.detach(vfio.buffer)
        #expect(rig.machine.finish().isEmpty)
    }
}

/// A flag one task raises and another waits for.
final class Flag: Sendable {
    private let raised = Atomic<Bool>(false)
    func set() { raised.store(true, ordering: .releasing) }
    var isSet: Bool { raised.load(ordering: .acquiring) }
}

/// A value shared between tasks, behind a lock.
final class Shared<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ initial: Value) { value = Mutex(initial) }
}

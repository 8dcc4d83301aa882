// Story 6: a VFIO BAR exported in 4 KiB ranges to a NIC; a device reset revokes it: importers are
// told, the dead mapping faults, maps fail with ENODEV until the BAR's memory is enabled again.
import DMABuf
import DMACore
import DMADevices
import DMAScenario

let machine = try SimulatedMachine.builtIn()
let vfio = try machine.vfioBuffer(
    name: "bar", device: "0000:09:00.0", bar: 2, ranges: [.init(offset: 0, length: 4096), .init(offset: 8192, length: 4096)])
let nic = DeviceImporter(name: "nic", device: try machine.dmaDevice("0000:04:00.0"), dynamic: true, allowPeerToPeer: true)
try nic.attach(vfio.buffer)
let mapping = try nic.map(vfio.buffer, direction: .bidirectional)
print("mapped:", mapping.mapType, mapping.table.segments.map(\.description))
try nic.deviceWrite([0xAB], to: vfio.buffer, offset: 4096)

let told = try vfio.buffer.resv.withLock { (context) throws(DMAError) in try vfio.revoke(.reset, in: context) }
print("reset: told \(told.count) importer(s); the NIC was invalidated \(nic.invalidations) time(s)")
func attempt(_ what: String, _ body: () throws(DMAError) -> Void) {
    do { try body(); print(what + ": ok") } catch { print(what + ":", error.errno.name, "-", error.message) }
}
attempt("NIC writes through its dead mapping") { () throws(DMAError) in try nic.deviceWrite([1], to: vfio.buffer, offset: 0) }
attempt("map while revoked") { () throws(DMAError) in _ = try nic.map(vfio.buffer, direction: .bidirectional) }
try vfio.restore()
attempt("map after restore") { () throws(DMAError) in _ = try nic.map(vfio.buffer, direction: .bidirectional) }
print("byte written before the reset:", hex(UInt64(try nic.deviceRead(from: vfio.buffer, offset: 4096, count: 1)[0])))
try nic.unmap(vfio.buffer, direction: .bidirectional)
try nic.detach(vfio.buffer)
print("DMA-API debug reports:", machine.finish().count)

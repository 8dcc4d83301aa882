// Story 4: an HFI-style NIC whose custom DMA ops hand out CPU virtual addresses cannot carry P2P.
// Handed a P2P list it refuses with EREMOTEIO. Through dma-buf amdgpu keeps P2P (the PCI route
// alone decides) and mapping the VRAM fails; once the GPU evicts the buffer, it maps system pages.
import DMABuf
import DMACore
import DMADevices
import DMAMapping
import DMAScenario

let machine = try SimulatedMachine.builtIn()
let hfi = try machine.dmaDevice("0000:07:00.0", ops: "virt")
print("ops:", hfi.ops.name, "| p2pSupported:", hfi.ops.p2pSupported)
let gpu = try machine.gpuBuffer(name: "vram", gpu: "0000:03:00.0", size: 16 << 10)
let raw = try ScatterList.peerToPeer(try gpu.cpuRanges(), provider: gpu.heap.provider)
do {
    _ = try hfi.mapScatterList(raw, direction: .toDevice)
    print("mapped?! (this must not happen)")
} catch {
    print("raw P2P list:", error.errno.name, "-", error.message)
}
let importer = DeviceImporter(name: "hfi", device: hfi, dynamic: true, allowPeerToPeer: true)
print("peer2peer after attach:", try importer.attach(gpu.buffer).peerToPeer)
do {
    _ = try importer.map(gpu.buffer, direction: .toDevice)
    print("mapped VRAM?! (this must not happen)")
} catch {
    print("VRAM map:", error.errno.name, "-", error.message)
}
let told = try gpu.buffer.resv.withLock { (context) throws(DMAError) in try gpu.evict(in: context) }
print("evicted to system memory; told:", told.count)
let mapping = try importer.map(gpu.buffer, direction: .toDevice)
print("placement:", mapping.placement, "| migrated:", mapping.migratedBytes, "bytes")
print("first DMA address (a CPU virtual address):", mapping.table.segments[0].address)
try importer.unmap(gpu.buffer, direction: .toDevice)
try importer.detach(gpu.buffer)
print("DMA-API debug reports:", machine.finish().count)

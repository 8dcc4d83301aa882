// Story 2: the NIC is on another root port; the host bridge (Intel 8086:2020) is whitelisted, so
// P2P goes through the host bridge, mapped by the NIC's IOMMU as MMIO.
import DMABuf
import DMACore
import DMADevices
import DMAScenario

let machine = try SimulatedMachine.builtIn()
let gpu = try machine.gpuBuffer(name: "vram", gpu: "0000:03:00.0", size: 64 << 10)
try machine.memory.write([1, 2, 3, 4], at: try gpu.cpuRanges()[0].start)

let nic = DeviceImporter(name: "nic", device: try machine.dmaDevice("0000:06:00.0", ops: "iommu"), dynamic: true, allowPeerToPeer: true)
let attachment = try nic.attach(gpu.buffer)
print("peer2peer after attach:", attachment.peerToPeer)
let mapping = try nic.map(gpu.buffer, direction: .bidirectional)
print("map type:", mapping.mapType, "| placement:", mapping.placement)
print("IOVA segments:", mapping.table.segments.map(\.description))
print("IOMMU pages mapped:", nic.device.iommu!.mappedPages)
print("the NIC reads:", try nic.deviceRead(from: gpu.buffer, offset: 0, count: 4))
try nic.unmap(gpu.buffer, direction: .bidirectional)
try nic.detach(gpu.buffer)
print("IOMMU pages mapped after unmap:", nic.device.iommu!.mappedPages)
print("DMA-API debug reports:", machine.finish().count)

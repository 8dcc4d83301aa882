// Story 1: GPU VRAM → RDMA NIC under the same PCIe switch: P2P by bus address, no copies.
import DMABuf
import DMACore
import DMADevices
import DMAScenario

let machine = try SimulatedMachine.builtIn()
let gpu = try machine.gpuBuffer(name: "vram", gpu: "0000:03:00.0", size: 1 << 20)
let vram = try gpu.cpuRanges()[0]
try machine.memory.write(Array("weights from the GPU".utf8), at: vram.start)

// The NIC registers the buffer as a dynamic RDMA MR (ib_umem_dmabuf_get): mlx5 maps it at
// registration. amdgpu maps VRAM at its CPU physical address through the DMA API; without an
// IOMMU that is the bus address the switch routes to the GPU.
let nic = RDMANIC(name: "mlx5_0", device: try machine.dmaDevice("0000:04:00.0", ops: "direct"))
let mr = try nic.registerMR(gpu.buffer)
let sent = try mr.read(offset: 0, count: 20)  // an RDMA send from the MR: the NIC reads VRAM
let mapping = mr.mapping!
print("verdict:", try machine.topology.verdict(provider: machine.function("0000:03:00.0").address, client: machine.function("0000:04:00.0").address))
print("map type:", mapping.mapType, "| placement:", mapping.placement, "| segments:", mapping.table.segments.map(\.description))
print("VRAM CPU address \(vram.start) is bus address \(gpu.heap.provider.busAddress(of: vram.start)) for the NIC")
print("the NIC sent:", String(decoding: sent, as: UTF8.self))
try mr.write(Array("reply".utf8), offset: 4096)  // an RDMA write lands in VRAM
print("the GPU sees:", String(decoding: try machine.memory.read(try vram.start.advanced(by: 4096), count: 5), as: UTF8.self))
print("bounced:", mapping.bouncedBytes, "bytes | migrated:", mapping.migratedBytes, "bytes")
try mr.deregister()
print("DMA-API debug reports:", machine.finish().count)

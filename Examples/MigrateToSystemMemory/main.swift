// Story 3: the NIC sits behind a second host bridge that is not whitelisted, and the CPU is not
// an AMD Zen: P2P is not supported. The GPU moves the buffer to system memory (the GTT fallback).
import DMABuf
import DMACore
import DMADevices
import DMAScenario

let machine = try SimulatedMachine.builtIn()
let explanation = try machine.topology.explain(
    provider: machine.function("0000:03:00.0").address, client: machine.function("0000:81:00.0").address)
print("kernel verdict:", explanation.verdict.mapType, "| remedy:", explanation.remedy ?? "none")

let gpu = try machine.gpuBuffer(name: "vram", gpu: "0000:03:00.0", size: 256 << 10)
try machine.memory.write(Array("model state".utf8), at: try gpu.cpuRanges()[0].start)
let nic = DeviceImporter(name: "nic", device: try machine.dmaDevice("0000:81:00.0"), dynamic: true, allowPeerToPeer: true)
print("peer2peer after attach:", try nic.attach(gpu.buffer).peerToPeer)
let mapping = try nic.map(gpu.buffer, direction: .toDevice)
print("placement:", mapping.placement, "| map type:", mapping.mapType, "| migrated:", mapping.migratedBytes, "bytes")
print("segments:", mapping.table.segments.count, "system pages")
print("the NIC reads:", String(decoding: try nic.deviceRead(from: gpu.buffer, offset: 0, count: 11), as: UTF8.self))
try nic.unmap(gpu.buffer, direction: .toDevice)
try nic.detach(gpu.buffer)
print("DMA-API debug reports:", machine.finish().count)

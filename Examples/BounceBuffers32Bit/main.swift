// Story 5: a capture card with a 32-bit DMA mask reads and writes a buffer above 4 GiB through
// swiotlb bounce buffers: map copies in, sync and unmap copy back, each as its direction says.
import DMABuf
import DMACore
import DMADevices
import DMAScenario

let machine = try SimulatedMachine.builtIn()
let heap = try machine.heapBuffer(name: "frames", size: 8192)
let page = heap.pages[0]
print("buffer page:", page.start, "| device mask:", try machine.function("0000:08:00.0").dmaMaskBits ?? 0, "bits")
let card = DeviceImporter(name: "capture", device: try machine.dmaDevice("0000:08:00.0"), dynamic: false, allowPeerToPeer: false)
try card.attach(heap.buffer)

for direction in [DMADirection.toDevice, .fromDevice, .bidirectional] {
    try machine.memory.write(Array(repeating: 0xC0, count: 16), at: page.start)  // what the CPU has
    let mapping = try card.map(heap.buffer, direction: direction)
    let seen = try card.deviceRead(from: heap.buffer, offset: 0, count: 1)[0]  // map always copied in
    try card.deviceWrite(Array(repeating: 0xD0, count: 16), to: heap.buffer, offset: 0)
    try card.unmap(heap.buffer, direction: direction)
    let after = try machine.memory.read(page.start, count: 1)[0]
    print(
        "\(direction): DMA address \(mapping.table.segments[0].address), bounced \(mapping.bouncedBytes) bytes;",
        "device saw \(hex(UInt64(seen))); CPU has \(hex(UInt64(after))) after unmap")
}
try card.detach(heap.buffer)
print("DMA-API debug reports:", machine.finish().count)

import DMACore
import Foundation
import LinuxDMABuf
import Testing

/// The pieces of `dmabuf p2p test` that read the kernel's files: published p2pmem, the block
/// devices of a PCI function, and the kprobe trace of `pci_p2pdma_map_type`, each on a folder laid
/// out as the kernel lays out sysfs and tracefs.
@Suite("P2P memory, block devices and the kernel's map-type trace")
struct P2PMemoryTests {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("p2pmem-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    func write(_ path: String, _ text: String) throws {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    func link(_ path: String, to target: String) throws {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: url.path, withDestinationPath: target)
    }

    /// Two NVMe controllers as the 7.3 kernel shows them: 03:00.0 with a published, mappable CMB;
    /// 04:00.0 with an unpublished pool and no `allocate`; and a virtio NIC with none.
    func machine() throws {
        let base = "devices/pci0000:00/0000:00:10.0"
        try write("\(base)/0000:03:00.0/p2pmem/size", "16777216\n")
        try write("\(base)/0000:03:00.0/p2pmem/available", "16711680\n")
        try write("\(base)/0000:03:00.0/p2pmem/published", "1\n")
        try write("\(base)/0000:03:00.0/p2pmem/allocate", "")
        try write("\(base)/0000:03:00.0/nvme/nvme0/dev", "259:0\n")
        try write("\(base)/0000:04:00.0/p2pmem/size", "4194304\n")
        try write("\(base)/0000:04:00.0/p2pmem/available", "4194304\n")
        try write("\(base)/0000:04:00.0/p2pmem/published", "0\n")
        try write("\(base)/0000:04:00.0/nvme/nvme1/dev", "259:1\n")
        try write("devices/pci0000:00/0000:00:05.0/virtio1/net/eth0/address", "52:54:00:12:34:56\n")
        for (bdf, path) in [("0000:03:00.0", "0000:00:10.0/0000:03:00.0"), ("0000:04:00.0", "0000:00:10.0/0000:04:00.0"), ("0000:00:05.0", "0000:00:05.0")] {
            try link("bus/pci/devices/\(bdf)", to: "../../../devices/pci0000:00/\(path)")
        }
        // /sys/block/NAME/device is the namespace's controller.
        try link("block/nvme0n1/device", to: "../../devices/pci0000:00/0000:00:10.0/0000:03:00.0/nvme/nvme0")
        try link("block/nvme1n1/device", to: "../../devices/pci0000:00/0000:00:10.0/0000:04:00.0/nvme/nvme1")
        try link("block/nvme1n2/device", to: "../../devices/pci0000:00/0000:00:10.0/0000:04:00.0/nvme/nvme1")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("block/loop0"), withIntermediateDirectories: true)
    }

    @Test("p2pmem is read as the kernel publishes it: size, available, published, and whether allocate exists")
    func publishedMemory() throws {
        try machine()
        let pools = PublishedP2PMemory.all(sysfs: root.path)
        #expect(pools.map(\.device) == ["0000:03:00.0", "0000:04:00.0"])
        #expect(pools[0] == PublishedP2PMemory(device: "0000:03:00.0", size: 16 << 20, available: 16_711_680, published: true, mappable: true))
        #expect(pools[1] == PublishedP2PMemory(device: "0000:04:00.0", size: 4 << 20, available: 4 << 20, published: false, mappable: false))
        #expect(PublishedP2PMemory.read(device: "0000:00:05.0", sysfs: root.path) == nil)
        #expect(PublishedP2PMemory.read(device: "0000:09:00.0", sysfs: root.path) == nil)
    }

    @Test("A function's block devices are the ones whose device link resolves inside it")
    func blockDevices() throws {
        try machine()
        #expect(PCIBlockDevices.of(device: "0000:03:00.0", sysfs: root.path) == ["nvme0n1"])
        #expect(PCIBlockDevices.of(device: "0000:04:00.0", sysfs: root.path) == ["nvme1n1", "nvme1n2"])
        #expect(PCIBlockDevices.of(device: "0000:00:05.0", sysfs: root.path).isEmpty)
        // The root port above both controllers is in their paths but drives neither.
        #expect(PCIBlockDevices.of(device: "0000:00:10.0", sysfs: root.path).isEmpty)
        // A prefix of another address is not that address.
        #expect(PCIBlockDevices.of(device: "0000:03:00", sysfs: root.path).isEmpty)
    }

    @Test("A transfer from a provider without p2pmem, or to a client without a block device, is refused with ENOENT before anything opens")
    func transferRefusals() throws {
        try machine()
        var log: KernelLogCursor? = nil
        let noMemory = #expect(throws: DMAError.self) {
            _ = try P2PTransferTest.run(provider: "0000:04:00.0", client: "0000:03:00.0", sysfs: root.path, trace: nil, log: &log)
        }
        #expect(noMemory?.errno == .ENOENT && noMemory?.message.contains("p2pmem/allocate") == true)
        let noBlock = #expect(throws: DMAError.self) {
            _ = try P2PTransferTest.run(provider: "0000:03:00.0", client: "0000:00:05.0", sysfs: root.path, trace: nil, log: &log)
        }
        #expect(noBlock?.errno == .ENOENT && noBlock?.message.contains("drives no block device") == true)
        let tooLarge = #expect(throws: DMAError.self) {
            _ = try P2PTransferTest.run(provider: "0000:03:00.0", client: "0000:04:00.0", length: 32 << 20, sysfs: root.path, trace: nil, log: &log)
        }
        #expect(tooLarge?.errno == .ENOMEM)
    }

    @Test("The kprobe trace: both probes written to kprobe_events, entries paired with their return, removed when dropped")
    func kprobeTrace() throws {
        try write("tracing/kprobe_events", "")
        try write("tracing/events/dmabufkit_p2p/enable", "0")
        try write("tracing/tracing_on", "0")
        try write("tracing/trace", "")
        let tracefs = root.appendingPathComponent("tracing").path
        do {
            let trace = try P2PMapTypeTrace(tracefs: tracefs)
            let events = try String(contentsOfFile: tracefs + "/kprobe_events", encoding: .utf8)
            #expect(events.contains("p:dmabufkit_p2p/entry pci_p2pdma_map_type provider=+0(+0(+0(%di))):string client=+0(+0(%si)):string"))
            #expect(events.contains("r:dmabufkit_p2p/ret pci_p2pdma_map_type ret=$retval:s32"))
            #expect(try String(contentsOfFile: tracefs + "/events/dmabufkit_p2p/enable", encoding: .utf8) == "1")
            // What 7.3 printed in the oracle guests (one pair refused, one by bus address).
            try write("tracing/trace", """
                # tracer: nop
                #
                  dmabuf-kernel-s-97      [000] .....    18.123456: entry: (pci_p2pdma_map_type+0x0/0x1a0) provider="0000:03:00.0" client="0000:07:00.1"
                  dmabuf-kernel-s-97      [000] .....    18.123470: ret: (blk_rq_dma_map_iter_start+0x1e5/0x2b0 <- pci_p2pdma_map_type) ret=2
                  dmabuf-kernel-s-97      [000] .....    18.200001: entry: (pci_p2pdma_map_type+0x0/0x1a0) provider="0000:03:00.0" client="0000:03:00.1"
                  dmabuf-kernel-s-97      [000] .....    18.200010: ret: (blk_rq_dma_map_iter_start+0x1e5/0x2b0 <- pci_p2pdma_map_type) ret=3

                """)
            let verdicts = trace.verdicts()
            #expect(verdicts.map(\.provider) == ["0000:03:00.0", "0000:03:00.0"])
            #expect(verdicts.map(\.client) == ["0000:07:00.1", "0000:03:00.1"])
            #expect(verdicts.map { P2PMapTypeTrace.mapType(kernelValue: $0.value) } == [.notSupported, .busAddress])
        }
        let after = try String(contentsOfFile: tracefs + "/kprobe_events", encoding: .utf8)
        #expect(after.hasSuffix("-:dmabufkit_p2p/entry\n-:dmabufkit_p2p/ret\n"))
        #expect(P2PMapTypeTrace.mapType(kernelValue: 4) == .throughHostBridge)
        #expect(P2PMapTypeTrace.mapType(kernelValue: 0) == nil && P2PMapTypeTrace.mapType(kernelValue: 1) == nil)
    }

    @Test("Without tracefs the trace is refused with ENOENT and says how to mount it")
    func kprobeWithoutTracefs() {
        let error = #expect(throws: DMAError.self) { _ = try P2PMapTypeTrace(tracefs: root.appendingPathComponent("none").path) }
        #expect(error?.errno == .ENOENT && error?.message.contains("mount -t tracefs") == true)
    }
}

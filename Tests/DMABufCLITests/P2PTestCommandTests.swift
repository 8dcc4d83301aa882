@testable import DMABufCLI
import DMACore
import Foundation
import LinuxDMABuf
import PCI
import Testing

/// `dmabuf p2p test` and `dmabuf topo --verify`: how the kernel's answer is held against the
/// model's, what a machine with nothing to test is told, and the running kernel's facts that the
/// live `topo` adds.
@Suite("p2p test and topo --verify")
struct P2PTestCommandTests {
    static func outcome(_ result: P2PTransferOutcome.Result, errno: String? = nil, traced: P2PMapType? = nil) -> P2PTransferOutcome {
        P2PTransferOutcome(
            provider: "0000:03:00.0", client: "0000:04:00.0", blockDevice: "nvme1n1", length: 8192, result: result, errno: errno,
            kernelMapType: traced?.rawValue, kernelLog: [])
    }

    static func verdict(_ type: P2PMapType) -> P2PVerdict { P2PVerdict(mapType: type, distance: type == .notSupported ? -1 : 4, acsUnknown: false) }

    @Test(
        "The kernel's answer against the model's: the traced map type must be equal; untraced, a refusal means not-supported and a transfer a route",
        arguments: [
            (outcome(.transferred, traced: .busAddress), P2PMapType.busAddress, "agree"),
            (outcome(.transferred, traced: .throughHostBridge), .busAddress, "disagree"),
            (outcome(.refused, errno: "EINVAL", traced: .notSupported), .notSupported, "agree"),
            (outcome(.bytesWrong, traced: .busAddress), .busAddress, "agree"),
            (outcome(.refused, errno: "EINVAL"), .notSupported, "agree"),
            (outcome(.refused, errno: "EINVAL"), .throughHostBridge, "disagree"),
            (outcome(.transferred), .throughHostBridge, "agree"),
            (outcome(.transferred), .notSupported, "disagree"),
            (outcome(.failed, errno: "EIO"), .busAddress, "inconclusive"),
        ])
    func judgement(kernel: P2PTransferOutcome, model: P2PMapType, expected: String) {
        let judged = P2PJudgement(kernel: kernel, model: Self.verdict(model))
        #expect(judged.verdict == expected, "\(judged.summary)")
        #expect(judged.summary.contains("model: \(model.rawValue)"))
    }

    @Test("Nothing to test: a kernel without CONFIG_PCI_P2PDMA, no p2pmem, p2pmem without allocate, no block-device client")
    func nothingToTest() {
        let noP2PDMA = KernelConfig(source: "/boot/config-6.12", parsing: "CONFIG_DMA_SHARED_BUFFER=y\n# CONFIG_PCI_P2PDMA is not set\n")
        let withP2PDMA = KernelConfig(source: "/proc/config.gz", parsing: "CONFIG_PCI_P2PDMA=y\n")
        let pool = PublishedP2PMemory(device: "0000:03:00.0", size: 16 << 20, available: 16 << 20, published: true, mappable: true)
        let unmappable = PublishedP2PMemory(device: "0000:03:00.0", size: 16 << 20, available: 16 << 20, published: true, mappable: false)
        let a = P2PVerifier.nothingToTest(sysfs: "/sys", providers: [], clients: ["0000:04:00.0"], config: noP2PDMA)
        #expect(a?.contains("without CONFIG_PCI_P2PDMA (/boot/config-6.12)") == true)
        let b = P2PVerifier.nothingToTest(sysfs: "/sys", providers: [], clients: ["0000:04:00.0"], config: withP2PDMA)
        #expect(b?.contains("publishes peer-to-peer memory") == true)
        let c = P2PVerifier.nothingToTest(sysfs: "/sys", providers: [unmappable], clients: ["0000:04:00.0"], config: withP2PDMA)
        #expect(c?.contains("no p2pmem/allocate") == true)
        let d = P2PVerifier.nothingToTest(sysfs: "/sys", providers: [pool], clients: [], config: withP2PDMA)
        #expect(d?.contains("drives a block device") == true)
        #expect(P2PVerifier.nothingToTest(sysfs: "/sys", providers: [pool], clients: ["0000:04:00.0"], config: withP2PDMA) == nil)
    }

    @Test("The live topo says when the running kernel cannot do P2PDMA at all; a copy lists its p2pmem and says nothing of this kernel")
    func runningKernelFacts() throws {
        let noP2PDMA = KernelConfig(source: "/proc/config.gz", parsing: "CONFIG_DMA_SHARED_BUFFER=y\n")
        let live = renderRunningKernelFacts(sysfs: "/sys", config: noP2PDMA)
        #expect(live.contains("is built without CONFIG_PCI_P2PDMA (/proc/config.gz): every P2P pair is impossible on it"))
        let with = renderRunningKernelFacts(sysfs: "/sys/", config: KernelConfig(source: "/boot/config-7.3", parsing: "CONFIG_PCI_P2PDMA=y\n"))
        #expect(with.contains("has CONFIG_PCI_P2PDMA=y (/boot/config-7.3)"))
        #expect(renderRunningKernelFacts(sysfs: "/sys", config: nil).contains("is not readable"))
        #expect(renderRunningKernelFacts(sysfs: nil, config: noP2PDMA).isEmpty)

        let root = FileManager.default.temporaryDirectory.appendingPathComponent("p2pmem-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = root.appendingPathComponent("devices/pci0000:00/0000:03:00.0/p2pmem")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, value) in [("size", "16777216"), ("available", "16711680"), ("published", "1"), ("allocate", "")] {
            try Data((value + "\n").utf8).write(to: folder.appendingPathComponent(name))
        }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("bus/pci/devices"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: root.appendingPathComponent("bus/pci/devices/0000:03:00.0").path, withDestinationPath: "../../../devices/pci0000:00/0000:03:00.0")
        let copy = renderRunningKernelFacts(sysfs: root.path, config: noP2PDMA)
        #expect(copy.contains("0000:03:00.0: 16 MiB"))
        #expect(copy.contains("published"))
        #expect(!copy.contains("CONFIG_PCI_P2PDMA"))
    }

    @Test("The tool: --verify on a YAML file is bad input; a tree with no p2pmem has nothing to test; p2p test names the missing device")
    func tool() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PCITests/Fixtures/kernel-73/switch-epyc-noiommu/sys").path
        let yaml = try runDMABuf(["topo", "--verify", "--file", "/nonexistent.yaml"])
        #expect(yaml.status == 2)
        let copy = try runDMABuf(["topo", "--verify", "--sysfs", fixture, "--cpu", "amd:0x17"])
        #expect(copy.status == 0, "\(copy.stderr)")
        #expect(copy.stdout.contains("nothing to test here"))
        let json = try runDMABuf(["topo", "--verify", "--sysfs", fixture, "--cpu", "amd:0x17", "--json"])
        #expect(json.status == 0 && json.stdout.contains("\"nothingToTest\""))
        let missing = try runDMABuf(["p2p", "test", "0000:03:00.0", "0000:09:00.0", "--sysfs", fixture])
        #expect(missing.status == 2 && missing.stderr.contains("CLIENT 0000:09:00.0 is not a PCI device"), "\(missing.stderr)")
        let noMemory = try runDMABuf(["p2p", "test", "0000:03:00.0", "0000:04:00.0", "--sysfs", fixture])
        #expect(noMemory.status == 2 && noMemory.stderr.contains("publishes no peer-to-peer memory"), "\(noMemory.stderr)")
    }
}

import DMABuf
import DMACore
import DMADevices
import DMAMapping
import DMAScenario

/// The built-in machine and a few devices on it.
struct Rig {
    let machine: SimulatedMachine
    init(rules: KernelRules = .newest) throws { machine = try SimulatedMachine.builtIn(rules: rules) }

    /// The NIC under the GPU's switch (bus-address P2P).
    func nearNIC(ops: String = "direct") throws -> DMADevice { try machine.dmaDevice("0000:04:00.0", ops: ops) }
    /// The NIC behind the other host bridge (P2P not supported).
    func farNIC(ops: String = "direct") throws -> DMADevice { try machine.dmaDevice("0000:81:00.0", ops: ops) }
    /// The NIC on another root port of the whitelisted host bridge (P2P through the host bridge).
    func bridgeNIC(ops: String = "iommu") throws -> DMADevice { try machine.dmaDevice("0000:06:00.0", ops: ops) }
    func gpuBuffer(_ size: UInt64 = 64 << 10) throws -> GPUVRAMExporter {
        try machine.gpuBuffer(name: "vram", gpu: "0000:03:00.0", size: size)
    }
}

/// A dynamic importer that records what it was told and drops nothing (a careless importer).
final class RecordingImporter: DMABufImporter, @unchecked Sendable {
    // @unchecked: only touched from the test's own task.
    var told = 0
    let allowPeerToPeer: Bool
    let canInvalidate: Bool
    init(allowPeerToPeer: Bool = true, canInvalidate: Bool = true) {
        self.allowPeerToPeer = allowPeerToPeer
        self.canInvalidate = canInvalidate
    }
    func invalidateMappings(_ attachment: DMABufAttachment, in context: ReservationContext) { told += 1 }
}

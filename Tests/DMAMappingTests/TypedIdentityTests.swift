import DMACore
import DMAMapping
import Testing

/// Issue [N] item 7: a device is a PCI function, named by a `PCIAddress` parsed once where the
/// device is made (`pci_name`, `drivers/pci/probe.c`: `DDDD:BB:DD.F`), never a string that the
/// topology re-parses at each P2P question.
@Suite("Typed identity: devices by PCI address")
struct TypedIdentityTests {
    /// Before: each of these made a device whose every P2P question was silently "not supported".
    @Test(
        "A device named with a malformed PCI address is refused where it is made (EINVAL)",
        arguments: ["0000:04:00.O", "04:00", "lonely", "0000:04:20.0", "0000:04:00.8", "0000:4:00.0", ""])
    func malformedNameRefused(name: String) throws {
        let machine = try Machine()
        let error = #expect(throws: DMAError.self) {
            try DMADevice(name: name, memory: machine.memory, ops: DirectDMAOps(), topology: UniformP2PTopology(.busAddress))
        }
        #expect(error?.errno == .EINVAL && error?.code == .invalidArgument)
    }

    /// Before: the short and the long name were two strings, so the owner of a BAR named
    /// `03:00.0` was a stranger to its own `0000:03:00.0` provider.
    @Test("The short and the long form name one device, the owner of its own BAR")
    func shortAndLongFormsAreOneDevice() throws {
        let machine = try Machine()
        let short = try DMADevice(
            name: "03:00.0", memory: machine.memory, ops: DirectDMAOps(), topology: UniformP2PTopology(.notSupported))
        #expect(short.pciAddress == machine.vram.owner)
        #expect(short.name == "0000:03:00.0")
        #expect(short.p2pMapType(to: machine.vram) == .busAddress)
        let other = try DMADevice(
            pciAddress: try PCIAddress(domain: 0, bus: 4, device: 0, function: 0), memory: machine.memory,
            ops: DirectDMAOps(), topology: UniformP2PTopology(.notSupported))
        #expect(other.p2pMapType(to: machine.vram) == .notSupported)
    }

    @Test("A PCI address lives in DMACore: parsed, printed in the kernel's form, ordered by devfn")
    func addressInCore() throws {
        let address = try PCIAddress(parsing: "0000:0A:1f.7")
        #expect(address.description == "0000:0a:1f.7" && address.short == "0a:1f.7")
        #expect(address.devfn == 0x1f << 3 | 7)
        #expect(try PCIAddress(parsing: "0a:1f.7") == address)
        #expect(try PCIAddress(parsing: "0000:0a:1f.6") < address)
        #expect(throws: DMAError.self) { try PCIAddress(domain: 0, bus: 0, device: 32, function: 0) }
    }
}

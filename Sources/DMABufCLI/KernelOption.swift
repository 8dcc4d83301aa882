import ArgumentParser
import DMACore
import Foundation
import LinuxDMABuf
import PCI

/// `--kernel VERSION|auto`: the kernel whose rules a command follows (docs/kernel-versions.md).
/// Without it the commands follow the newest rules (7.3) and print exactly what they always did.
struct KernelOption: ParsableArguments {
    @Option(
        name: .customLong("kernel"),
        help: ArgumentHelp(
            "Follow the rules of this kernel: MAJOR.MINOR (6.12, 7.1), MAJOR.MINOR+move-notify (CONFIG_DMABUF_MOVE_NOTIFY=y, before 7.1), or auto (the running kernel and its config; the newest, 7.3, when it cannot be read). Default: the newest, 7.3.",
            valueName: "VERSION|auto"))
    var kernel: String?

    init() {}

    func validate() throws {
        if let kernel, kernel != "auto" {
            do { _ = try KernelRules(parsing: kernel) } catch { throw ValidationError(error.message) }
        }
    }

    /// The rules named, `nil` when `--kernel` is not given.
    func rules(procRoot: String = "/proc", bootRoot: String = "/boot") throws -> KernelRules? {
        guard let kernel else { return nil }
        if kernel == "auto" { return KernelConfig.runningRules(procRoot: procRoot, bootRoot: bootRoot) }
        do { return try KernelRules(parsing: kernel) } catch { throw ValidationError(error.message) }
    }
}

/// A JSON object with `kernelRules` added beside the value's own keys (the value must encode a
/// keyed object); the key is left out when `rules` is `nil`, so the default output is unchanged.
struct WithKernelRules<Value: Encodable>: Encodable {
    let value: Value
    let rules: KernelRules?
    private enum CodingKeys: String, CodingKey { case kernelRules }

    func encode(to encoder: any Encoder) throws {
        try value.encode(to: encoder)
        if let rules {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(rules, forKey: .kernelRules)
        }
    }
}

/// One line for people: the rules a command followed and what they change.
func renderKernelRules(_ rules: KernelRules) -> String {
    var out = "Kernel rules: Linux \(rules)"
    out += rules.everyMapPins
        ? "; every map of a GPU buffer pins it in system memory (GTT), so VRAM is never shared peer-to-peer"
        : "; GPU VRAM can be shared peer-to-peer"
    out += "; P2P through the host bridge is mapped with \(rules.mmioMapCall)"
    out += rules.has(.vfioDMABufExport) ? "; VFIO dma-buf export exists" : "; no VFIO dma-buf export (6.19)"
    out += "; the P2PDMA host-bridge whitelist has \(P2PHostBridgeWhitelist.entries(in: rules.version).count) entries"
    out += rules.has(.p2pAMDZenCPU) ? " and AMD Zen CPUs route through any host bridge" : " and no CPU rule (cpu_supports_p2pdma, 5.9)"
    return out + ".\n"
}

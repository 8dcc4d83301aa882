import DMACore
import PCI

/// Whether a transfer between two devices will be zero-copy, as `dmabuf doctor` judges it.
public enum DoctorVerdict: String, Sendable, Hashable, Codable, Comparable {
    /// Peer-to-peer: the client's DMA reaches the provider's memory directly.
    case zeroCopy = "zero-copy"
    /// It works, but bytes are copied: the exporter migrates the buffer to system memory, or
    /// system-memory DMA bounces through swiotlb.
    case degraded
    /// It cannot work peer-to-peer and nothing moves the memory for it.
    case no

    private var rank: Int { self == .zeroCopy ? 0 : self == .degraded ? 1 : 2 }
    /// `zero-copy` < `degraded` < `no`.
    /// - Parameters:
    ///   - a: a verdict.
    ///   - b: another.
    public static func < (a: DoctorVerdict, b: DoctorVerdict) -> Bool { a.rank < b.rank }
}

/// What to change, and what it costs.
public struct DoctorRemedy: Sendable, Hashable, Codable {
    /// The exact kernel parameter or command.
    public let action: String
    /// What it costs or weakens.
    public let cost: String
}

/// One reason behind a verdict: what the doctor found, where, and what would change it.
public struct DoctorReason: Sendable, Hashable, Codable {
    /// `no` and `degraded` reasons decide the verdict; `info` ones say what else was checked.
    public enum Effect: String, Sendable, Hashable, Codable {
        /// Blocks zero-copy with nothing to fall back to.
        case no
        /// Makes the transfer copy.
        case degraded
        /// Checked, does not stand in the way.
        case info
    }
    /// Its effect.
    public let effect: Effect
    /// A short name a script can match (`kernel-no-p2pdma`, `acs-redirect`, `dma-mask`).
    public let code: String
    /// The reason in one sentence, with the kernel rule behind it.
    public let text: String
    /// The machine file(s) it was read from.
    public let source: String
    /// The remedy, when the facts support one.
    public let remedy: DoctorRemedy?
}

/// What a degraded transfer copies.
public struct DoctorCopies: Sendable, Hashable, Codable {
    /// `migrate` (the exporter moves the buffer to system memory) or `bounce` (swiotlb copies).
    public let kind: String
    /// How many bytes per transfer, in words.
    public let bytesPerTransfer: String
}

/// One ordered pair judged: the provider's memory, the client's DMA.
public struct DoctorPairReport: Sendable, Hashable, Codable {
    /// The device whose memory is shared.
    public let provider: String
    /// The device that does the DMA (a PCI function or an RDMA device's name).
    public let client: String
    /// The verdict.
    public let verdict: DoctorVerdict
    /// The P2P route the kernel's rules give (`bus-address`, `through-host-bridge`,
    /// `not-supported`), `nil` when no PCI route exists (a software RDMA client).
    public let route: String?
    /// What a degraded transfer copies (the first cause), `nil` otherwise.
    public let copies: DoctorCopies?
    /// Every reason, deciding ones first.
    public let reasons: [DoctorReason]
}

/// `dmabuf doctor`'s report: the facts, then one verdict per pair.
public struct DoctorReport: Sendable, Codable {
    /// The kernel's facts.
    public let kernel: DoctorKernelFacts
    /// The CPU.
    public let cpu: DoctorFact
    /// A confidential guest, when detected.
    public let confidentialGuest: DoctorFact?
    /// What was read about confidential computing: the markers, the kernel log, an unknown.
    public let confidential: DoctorConfidentialFacts
    /// The endpoints.
    public let devices: [DoctorDeviceFacts]
    /// The RDMA devices.
    public let rdma: [DoctorRDMAFacts]
    /// The peer-memory stack.
    public let stack: DoctorStackFacts
    /// The pairs judged.
    public let pairs: [DoctorPairReport]
    /// How many pairs got each verdict.
    public let counts: [String: Int]
}

/// The verdict engine of `dmabuf doctor`: from the facts of one machine, whether a transfer from a
/// provider's memory to a client's DMA is zero-copy, and why.
public enum Doctor {
    /// A GPU driver that, refused P2P, moves the buffer to system memory instead of failing:
    /// amdgpu (`amdgpu_dma_buf.c`: a BO that cannot be shared peer-to-peer is placed in GTT) and
    /// xe (`xe_dma_buf.c`: migrated to TT). NVIDIA's open driver exports VRAM only.
    static let migratingDrivers: Set<String> = ["amdgpu", "xe"]

    /// A device name: a PCI function (`0000:03:00.0`, or `03:00.0` in domain 0) or an RDMA
    /// device (`rxe0`).
    /// - Parameters:
    ///   - name: what the user typed.
    ///   - facts: the machine.
    /// - Returns: the sysfs name of the PCI function, or the RDMA device's name.
    /// - Throws: `ENODEV` when the machine has no such endpoint.
    public static func resolve(_ name: String, in facts: DoctorFacts) throws(DMAError) -> String {
        if facts.rdma.contains(where: { $0.name == name }) { return name }
        if let address = try? PCIAddress(parsing: name), facts.topology.function(address) != nil { return address.description }
        let known = facts.devices.map(\.device) + facts.rdma.map(\.name)
        throw DMAError(
            .notFound, .ENODEV,
            "'\(ErrorText.printable(name))' is not a PCI device or RDMA device of this machine (endpoints: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
    }

    /// The pairs to judge: the one given, or every provider (a GPU, an NVMe controller, an
    /// accelerator, a device with p2pmem) against every other endpoint and RDMA device.
    /// - Parameter facts: the machine.
    public static func pairs(_ facts: DoctorFacts) -> [(provider: String, client: String)] {
        let providers = facts.devices.filter { $0.kind != .nic || $0.p2pmem != nil }.map(\.device)
        let clients = facts.devices.map(\.device) + facts.rdma.map(\.name)
        return providers.flatMap { provider in clients.filter { $0 != provider }.map { (provider, $0) } }
    }

    /// Judges the given pairs (all of ``pairs(_:)`` when `nil`).
    /// - Parameters:
    ///   - facts: the machine.
    ///   - asked: the (provider, client) pairs, as ``resolve(_:in:)`` names them.
    public static func report(_ facts: DoctorFacts, pairs asked: [(provider: String, client: String)]? = nil) -> DoctorReport {
        let judged = (asked ?? pairs(facts)).map { judge(provider: $0.provider, client: $0.client, facts) }
        var counts: [String: Int] = [:]
        for pair in judged { counts[pair.verdict.rawValue, default: 0] += 1 }
        return DoctorReport(
            kernel: facts.kernel, cpu: facts.cpu, confidentialGuest: facts.confidentialGuest, confidential: facts.confidential, devices: facts.devices,
            rdma: facts.rdma, stack: facts.stack, pairs: judged, counts: counts)
    }

    /// One pair: every reason, then the verdict they make.
    /// - Parameters:
    ///   - provider: the device whose memory is shared.
    ///   - client: the device that does the DMA, or an RDMA device's name.
    ///   - facts: the machine.
    public static func judge(provider: String, client: String, _ facts: DoctorFacts) -> DoctorPairReport {
        var reasons: [DoctorReason] = []
        func add(_ effect: DoctorReason.Effect, _ code: String, _ text: String, _ source: String, _ remedy: DoctorRemedy? = nil) {
            reasons.append(DoctorReason(effect: effect, code: code, text: text, source: source, remedy: remedy))
        }
        let providerFacts = facts.device(provider)
        let providerFunction = (try? PCIAddress(parsing: provider)).flatMap { facts.topology.function($0) }
        let migrates = providerFacts?.kind == .gpu && providerFacts?.driver.map(migratingDrivers.contains) == true
        // Reasons that stop P2P itself: a migrating exporter turns them into a copy.
        var p2pBlocked = false
        func block(_ code: String, _ text: String, _ source: String, _ remedy: DoctorRemedy? = nil) {
            p2pBlocked = true
            add(.no, code, text, source, remedy)
        }

        // The client: an RDMA device stands for its PCI parent; a software one has none.
        var clientBDF: String? = client
        if let device = facts.rdma.first(where: { $0.name == client }) {
            if let parent = device.pciParent {
                clientBDF = parent
                add(.info, "rdma-device", "\(client) is the RDMA device of \(parent)", device.source)
            } else {
                clientBDF = nil
                add(
                    .no, "software-rdma",
                    "\(client) is a software RDMA device\(device.netdev.map { " on \($0)" } ?? "") (rdma_rxe or siw): it has no PCI function, so no DMA engine that could reach a peer's BAR, and its kernel refuses dma-buf memory regions (EOPNOTSUPP)",
                    device.source,
                    DoctorRemedy(action: "use a hardware RDMA NIC (one whose /sys/class/infiniband/NAME/device is a PCI function)", cost: "new hardware"))
            }
        }
        let clientFacts = clientBDF.flatMap(facts.device)

        // The provider's memory: what exports it.
        if let providerFacts {
            let bdf = providerFacts.device
            if providerFacts.kind == .gpu {
                if providerFacts.driver == nil {
                    add(.no, "no-driver", "no driver is bound to the GPU \(bdf): nothing exports its memory", "/sys/bus/pci/devices/\(bdf)/driver")
                } else if providerFacts.driver == "nvidia" {
                    if facts.stack.nvidiaOpenKernelModules == false {
                        add(
                            .no, "nvidia-proprietary",
                            "the NVIDIA driver is the proprietary flavour (\(facts.stack.nvidiaDriver ?? "")): only the open kernel modules export GPU memory as a dma-buf",
                            "/proc/driver/nvidia/version",
                            DoctorRemedy(action: "install NVIDIA's open kernel modules of the same version (nvidia-open), then reboot", cost: "a driver reinstall and a reboot; Turing or newer GPUs only"))
                    } else if let line = facts.stack.nvidiaDriver {
                        add(.info, "nvidia-open", "the NVIDIA driver is the open kernel modules (\(line)), which export VRAM as a dma-buf", "/proc/driver/nvidia/version")
                    }
                } else {
                    add(
                        .info, "exporter", "\(providerFacts.driver!) exports the GPU's memory" + (migrates ? "; refused P2P it moves the buffer to system memory" : ""),
                        "/sys/bus/pci/devices/\(bdf)/driver")
                }
            } else if facts.kernel.pciP2PDMA.value != "not set" {
                if let memory = providerFacts.p2pmem {
                    if memory.published {
                        add(.info, "p2pmem", "\(bdf) publishes \(memory.size) bytes of peer-to-peer memory", "/sys/bus/pci/devices/\(bdf)/p2pmem/published")
                    } else {
                        add(.no, "p2pmem-unpublished", "\(bdf) has p2pmem but its driver did not publish it (pci_p2pmem_publish)", "/sys/bus/pci/devices/\(bdf)/p2pmem/published")
                    }
                } else {
                    add(
                        .no, "no-p2pmem",
                        "\(bdf) shares no memory: its driver registered none for P2P (no p2pmem/ folder; pci_p2pdma_add_resource, drivers/pci/p2pdma.c), as an NVMe controller without a controller memory buffer",
                        "/sys/bus/pci/devices/\(bdf)/p2pmem")
                }
            }
        } else if providerFunction == nil {
            add(.no, "no-provider", "\(provider) is not a PCI function: only a PCI device's memory can be a P2P provider", "/sys/bus/pci/devices")
        }

        // The kernel: without CONFIG_PCI_P2PDMA there is no P2P at all.
        let p2pdma = facts.kernel.pciP2PDMA
        if p2pdma.value == "not set" {
            block(
                "kernel-no-p2pdma",
                "the kernel \(facts.kernel.release?.value ?? "") is built without CONFIG_PCI_P2PDMA: drivers/pci/p2pdma.c is not there, so no device publishes p2pmem and every pair is refused, whatever the topology",
                p2pdma.source,
                DoctorRemedy(action: "boot a kernel built with CONFIG_PCI_P2PDMA=y (Debian's 7.x kernels have it)", cost: "a different kernel and a reboot"))
        } else if p2pdma.value == "unknown" {
            add(.info, "kernel-config-unknown", "the kernel's configuration is not readable (/proc/config.gz, /boot/config-RELEASE, /proc/kallsyms): whether it has CONFIG_PCI_P2PDMA is unknown", p2pdma.source)
        } else {
            add(.info, "kernel-p2pdma", "CONFIG_PCI_P2PDMA=\(p2pdma.value)", p2pdma.source)
        }

        // The topology: the kernel's rules (drivers/pci/p2pdma.c).
        var route: P2PMapType?
        if let clientBDF, let providerAddress = try? PCIAddress(parsing: provider), let clientAddress = try? PCIAddress(parsing: clientBDF),
            let explanation = try? facts.topology.explain(provider: providerAddress, client: clientAddress)
        {
            route = explanation.verdict.mapType
            judgeRoute(explanation, facts, block: block, add: add)
        }

        // The DMA mask against the provider's BAR, on a P2P route.
        if let route, route != .notSupported, let clientFacts, let bits = clientFacts.dmaMaskBits, bits < 64,
            let bar = providerFunction.flatMap({ sharedBAR($0, p2pmem: providerFacts?.p2pmem) })
        {
            let limit = bits >= 64 ? UInt64.max : (UInt64(1) << UInt64(bits)) - 1
            let translated = route == .throughHostBridge && ["DMA", "DMA-FQ"].contains(clientFacts.domainType.value)
            let end = (route == .busAddress ? bar.busStart.rawValue : bar.cpuStart.rawValue) &+ bar.size &- 1
            let maskSource = "/sys/bus/pci/devices/\(clientFacts.device)/dma_mask_bits, /sys/bus/pci/devices/\(provider)/resource"
            if translated {
                add(.info, "dma-mask", "\(clientFacts.device)'s \(bits)-bit DMA mask is met through its IOMMU \(clientFacts.domainType.value) domain (an IOVA below the mask)", maskSource)
            } else if end > limit {
                let where_ = "BAR\(bar.index) of \(provider) ends at 0x\(String(end, radix: 16))"
                if route == .busAddress {
                    block(
                        "dma-mask",
                        "\(clientFacts.device) has a \(bits)-bit DMA mask and \(where_): the kernel hands it the bus address unchecked (pci_p2pdma_bus_addr_map, drivers/pci/p2pdma.c), which the device cannot address",
                        maskSource)
                } else {
                    let group = clientFacts.iommuGroup
                    let remedy =
                        group.map {
                            DoctorRemedy(
                                action: "give \(clientFacts.device) a translating IOMMU domain: unbind its driver, echo DMA > /sys/kernel/iommu_groups/\($0)/type, bind it again (or boot without iommu=pt)",
                                cost: "every DMA of that device is translated by the IOMMU (IOTLB misses, a map and unmap per transfer)")
                        }
                        ?? DoctorRemedy(
                            action: "boot with the IOMMU on and translating (intel_iommu=on or amd_iommu=on, without iommu=pt), so the client gets an IOVA below its mask",
                            cost: "every DMA is translated (IOTLB misses, a map and unmap per transfer), and the kernel turns on ACS redirect on root ports, which sends more pairs through the host bridge")
                    block(
                        "dma-mask",
                        "\(clientFacts.device) has a \(bits)-bit DMA mask and \(where_), and no IOMMU translates it (domain \(clientFacts.domainType.value)): dma_map_phys refuses MMIO above the mask and never bounces it (kernel/dma/direct.h, DMA_ATTR_MMIO)",
                        maskSource, remedy)
                }
            } else {
                add(.info, "dma-mask", "\(clientFacts.device)'s \(bits)-bit DMA mask reaches BAR\(bar.index) of \(provider)", maskSource)
            }
        }

        // The IOMMU domain of each device.
        for device in [providerFacts, clientFacts].compactMap({ $0 }) {
            let group = device.iommuGroup.map { "group \($0), " } ?? ""
            add(.info, "iommu-domain", "\(device.device): IOMMU \(group)domain \(device.domainType.value)", device.domainType.source)
        }

        // Migration: an exporter that moves the buffer when P2P is refused, and pinning before 7.1.
        var copies: DoctorCopies?
        if migrates, let driver = providerFacts?.driver {
            if p2pBlocked {
                reasons = reasons.map { reason in
                    reason.effect == .no && reason.code != "software-rdma"
                        ? DoctorReason(effect: .degraded, code: reason.code, text: reason.text, source: reason.source, remedy: reason.remedy) : reason
                }
                add(.degraded, "migrates", "\(driver) moves the buffer from VRAM to system memory for this client (the whole buffer is copied at each move), and the client reads system memory", "/sys/bus/pci/devices/\(provider)/driver")
                copies = DoctorCopies(kind: "migrate", bytesPerTransfer: "the whole buffer, at each move to system memory")
            } else if let move = facts.kernel.moveNotify, move.value == MoveNotifyConfig.off.rawValue {
                add(
                    .degraded, "move-notify-off",
                    "CONFIG_DMABUF_MOVE_NOTIFY is not set on a kernel before 7.1: every importer pins, and \(driver) pins in system memory (GTT) only, so the buffer migrates out of VRAM",
                    move.source,
                    DoctorRemedy(action: "boot Linux 7.1 or newer, or a kernel with CONFIG_DMABUF_MOVE_NOTIFY=y", cost: "a different kernel and a reboot"))
                copies = DoctorCopies(kind: "migrate", bytesPerTransfer: "the whole buffer, when it is pinned")
            }
        }
        // Forced bouncing of system memory (a migrated buffer lands there).
        if copies != nil || route != nil {
            let bounced = copies != nil
            if facts.kernel.swiotlbForced {
                add(
                    bounced ? .degraded : .info, "swiotlb-force",
                    bounced
                        ? "swiotlb=force: every system-memory DMA bounces through the software IOTLB (kernel/dma/swiotlb.c)"
                        : "swiotlb=force bounces system memory only; P2P memory is MMIO, never bounced (DMA_ATTR_MMIO)",
                    "/proc/cmdline", bounced ? DoctorRemedy(action: "remove swiotlb=force from the kernel command line", cost: "none beyond what it was added to debug") : nil)
                if bounced { copies = DoctorCopies(kind: "bounce", bytesPerTransfer: "every byte of every transfer, once per direction") }
            }
            if let guest = facts.confidentialGuest {
                add(
                    bounced ? .degraded : .info, "confidential-guest",
                    "\(guest.value): device DMA of private memory always bounces through shared swiotlb buffers" + (bounced ? "" : "; P2P MMIO is not bounced"),
                    guest.source)
                if bounced { copies = DoctorCopies(kind: "bounce", bytesPerTransfer: "every byte of every transfer, once per direction") }
            } else if let unknown = facts.confidential.unknown {
                // Plain SEV and SEV-ES leave no mark in /proc or /sys (no cpuinfo flag in a guest:
                // early_detect_mem_encrypt in arch/x86/kernel/cpu/amd.c clears them), only the log.
                add(
                    .info, "confidential-unknown",
                    "\(unknown.value): plain SEV and SEV-ES leave no mark an unprivileged process can read, and the kernel log was not readable; in such a guest every system-memory DMA bounces through swiotlb"
                        + (bounced ? "" : " (P2P MMIO would not)"),
                    unknown.source,
                    DoctorRemedy(
                        action: "as root: dmesg | grep -i 'memory encryption' (a line naming SEV or TDX means every system-memory DMA bounces), or run dmabuf doctor --capture as root",
                        cost: "none: it only reads; the kernel log needs root or CAP_SYSLOG while kernel.dmesg_restrict = 1"))
            }
        }

        // The RDMA peer-memory stack, for a GPU provider.
        if providerFacts?.kind == .gpu, providerFacts?.driver == "nvidia", clientFacts?.kind == .nic || facts.rdma.contains(where: { $0.name == client }) {
            add(
                .info, "peer-memory",
                "nvidia_peermem is \(facts.stack.nvidiaPeermem ? "" : "not ")loaded and memory_peers is \(facts.stack.memoryPeers ? "present" : "absent"): the dma-buf path (ibv_reg_dmabuf_mr) needs neither",
                "/proc/modules, /sys/kernel/mm/memory_peers")
        }

        let order: [DoctorReason.Effect: Int] = [.no: 0, .degraded: 1, .info: 2]
        reasons = reasons.enumerated().sorted { (order[$0.element.effect]!, $0.offset) < (order[$1.element.effect]!, $1.offset) }.map(\.element)
        let verdict: DoctorVerdict = reasons.contains { $0.effect == .no } ? .no : reasons.contains { $0.effect == .degraded } ? .degraded : .zeroCopy
        return DoctorPairReport(
            provider: provider, client: client, verdict: verdict, route: route?.rawValue, copies: verdict == .degraded ? copies : nil,
            reasons: reasons)
    }

    /// The route's reasons: ACS redirect on the path, the host bridge and the CPU.
    private static func judgeRoute(
        _ e: P2PExplanation, _ facts: DoctorFacts, block: (String, String, String, DoctorRemedy?) -> Void,
        add: (DoctorReason.Effect, String, String, String, DoctorRemedy?) -> Void
    ) {
        let configs = "/sys/bus/pci/devices/BDF/config"
        let acs = e.acsRedirect.map(\.description)
        var why = ""
        if !acs.isEmpty {
            why = "ACS redirect is set on \(acs.joined(separator: ", ")) (read from config space, as the kernel set it)"
            if let iommu = facts.kernel.iommuParameters {
                why += "; the kernel turns it on at every port with ACS once an IOMMU driver asks for it (\(iommu); identity domains with iommu=pt too; pci_request_acs and pci_enable_acs, drivers/pci/pci.c)"
            }
        }
        let acsRemedy = DoctorRemedy(
            action: "add the kernel parameter pci=disable_acs_redir=\(acs.joined(separator: ";"))",
            cost: "weakens IOMMU isolation: devices below those ports reach each other without the IOMMU checking it (the kernel may put them in one IOMMU group)")
        let hostBridge = e.providerHostBridge.whitelisted && (e.sameHostBridge || e.clientHostBridge.whitelisted)
            ? "host bridge \(e.providerHostBridge.ids ?? e.providerHostBridge.name) is on the P2PDMA whitelist"
            : "the host bridge (\(e.providerHostBridge.ids ?? "no identity device")) is not on the P2PDMA whitelist"
        // The host-bridge rules of the machine's release (drivers/pci/p2pdma.c): an AMD Zen before
        // 5.9 has no cpu_supports_p2pdma, and a host bridge may be listed only from a later release.
        let kernel = facts.topology.kernel
        let zenTooOld = facts.topology.cpuRuleMissing
        let cpuClause =
            zenTooOld
            ? "the CPU (\(e.cpu)) is an AMD Zen, but Linux \(kernel) has no cpu_supports_p2pdma (it came in 5.9)"
            : "the CPU (\(e.cpu)) is not an AMD Zen or newer"
        let listedLater = [e.providerHostBridge, e.clientHostBridge].lazy
            .compactMap { facts.topology.hostBridgeDevice($0.name) }
            .compactMap { P2PHostBridgeWhitelist.anyRelease(vendor: $0.vendor, device: $0.device) }
            .first { $0.introduced > kernel && $0.removed == nil }
        let newerKernel: DoctorRemedy? =
            zenTooOld
            ? DoctorRemedy(action: "boot Linux 5.9 or newer: an AMD Zen or newer CPU routes P2P through any host bridge there (cpu_supports_p2pdma)", cost: "a different kernel and a reboot")
            : listedLater.map {
                DoctorRemedy(
                    action: "boot Linux \($0.introduced) or newer, whose P2PDMA whitelist lists host bridge \($0.ids) (\($0.comment)); this machine runs \(kernel)",
                    cost: "a different kernel and a reboot")
            }
        switch e.verdict.mapType {
        case .busAddress:
            add(.info, "route", "bus address: \(e.commonUpstream?.description ?? "a common upstream bridge") is upstream of both and no ACS redirect on the path, so the switch routes the transfer", configs, nil)
        case .throughHostBridge:
            var text = "through the host bridge: "
            text += e.commonUpstream == nil ? "no common upstream bridge" : why
            text += "; allowed because " + (e.cpuSupportsP2P ? "the CPU (\(e.cpu)) is an AMD Zen or newer (cpu_supports_p2pdma)" : hostBridge)
            add(.info, "route", text, "\(configs), /proc/cpuinfo", e.commonUpstream != nil && !acs.isEmpty ? acsRemedy : nil)
        case .notSupported:
            if e.commonUpstream != nil, !acs.isEmpty {
                block("acs-redirect", why + ", so the transfer must go up to the host bridge, where " + hostBridge + " and " + cpuClause + " (drivers/pci/p2pdma.c)", configs, acsRemedy)
            } else {
                block(
                    "host-bridge",
                    "no common upstream bridge, \(e.sameHostBridge ? "" : "two host bridges, ")\(hostBridge) and \(cpuClause), so the kernel refuses the pair (drivers/pci/p2pdma.c)",
                    "\(configs), /proc/cpuinfo",
                    newerKernel
                        ?? DoctorRemedy(action: "place both devices below one PCIe switch (a common upstream bridge routes by bus address)", cost: "moving hardware between slots"))
            }
        }
        if !e.acsUnknown.isEmpty {
            add(.info, "acs-unknown", "ACS state unknown on \(e.acsUnknown.map(\.description).joined(separator: ", ")) (config space beyond 64 bytes needs root): taken as redirecting", configs, nil)
        }
    }

    /// The BAR a provider shares: the largest memory BAR at least as large as its p2pmem (an NVMe
    /// controller memory buffer), or its largest (a GPU's VRAM aperture).
    static func sharedBAR(_ function: PCIFunction, p2pmem: PublishedP2PMemory?) -> PCIBAR? {
        let candidates = function.bars.filter { $0.size >= (p2pmem?.size ?? 0) }
        return candidates.max { $0.size < $1.size }
    }
}

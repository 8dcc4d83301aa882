import DMACore
import Glibc
import PCI

/// A machine's root folder as `dmabuf doctor` reads it: the live `/`, or a captured copy holding
/// `sys/`, `proc/` and `boot/` (what `dmabuf doctor --capture` writes). Every path the doctor
/// reports is the machine's own (`/proc/cmdline`), never the copy's, so a diagnosis of a capture
/// reads exactly as the diagnosis of the machine it came from.
public struct DoctorRoot: Sendable, Hashable {
    /// The folder (`/` for the live machine).
    public let path: String

    /// A root folder; a trailing `/` is dropped.
    /// - Parameter path: the folder (`/`, or a capture).
    public init(_ path: String) {
        var path = path
        while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        self.path = path.isEmpty ? "/" : path
    }

    /// The live machine.
    public static let live = DoctorRoot("/")

    /// Where the machine's file `absolute` (`/proc/cmdline`) is under this root.
    /// - Parameter absolute: the machine's path.
    public func file(_ absolute: String) -> String { path == "/" ? absolute : path + absolute }

    /// The machine's path of a file under this root (the root's prefix removed).
    func machinePath(_ local: String) -> String {
        guard path != "/", local.hasPrefix(path + "/") else { return local }
        return String(local.dropFirst(path.count))
    }

    /// The text of a machine file, without its final newline; `nil` when unreadable.
    func text(_ absolute: String, limit: Int = 1 << 20) -> String? {
        guard case .success(let bytes) = SystemCalls.readFile(file(absolute), limit: limit) else { return nil }
        var text = String(decoding: bytes, as: UTF8.self)
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    /// Where a link of the machine leads, every link on the way resolved (`realpath(3)`); `nil`
    /// when absent. Only its last components are meaningful for a copy whose folders are links.
    func linkTarget(_ absolute: String) -> String? {
        guard case .success = SystemCalls.readLink(file(absolute)) else { return nil }
        return PCIBlockDevices.realPath(file(absolute))
    }

    /// Whether a machine file or folder exists.
    func exists(_ absolute: String) -> Bool { access(file(absolute), F_OK) == 0 }

    /// The names in a machine folder, sorted; empty when it is absent.
    func list(_ absolute: String) -> [String] {
        guard case .success(let names) = SystemCalls.listDirectory(file(absolute)) else { return [] }
        return names.sorted()
    }
}

/// One fact the doctor read, with the machine file it came from.
public struct DoctorFact: Sendable, Hashable, Codable {
    /// The value as read (or derived, when `source` says so).
    public let value: String
    /// The machine file (`/proc/cmdline`), or how it was derived.
    public let source: String

    /// Creates it.
    /// - Parameters:
    ///   - value: the value.
    ///   - source: the machine file, or how it was derived.
    public init(_ value: String, source: String) {
        self.value = value
        self.source = source
    }
}

/// The kernel's side of the diagnosis: release, the configuration options that decide P2P, and
/// the command-line parameters that change DMA (`Documentation/admin-guide/kernel-parameters.txt`).
public struct DoctorKernelFacts: Sendable, Hashable, Codable {
    /// `uname -r` (`/proc/sys/kernel/osrelease`).
    public var release: DoctorFact?
    /// The file the configuration came from (`/proc/config.gz`, `/boot/config-RELEASE`), or
    /// `/proc/kallsyms` when neither exists and only symbols could be looked at; `nil` when none.
    public var configSource: String?
    /// `CONFIG_PCI_P2PDMA`: `y`, `not set`, or `unknown` (`drivers/pci/Kconfig`; without it
    /// `drivers/pci/p2pdma.c` is not built, no device publishes p2pmem and no pair can be P2P).
    public var pciP2PDMA: DoctorFact
    /// `CONFIG_DMABUF_MOVE_NOTIFY` as [K] reads it (`KernelConfig.moveNotify(release:)`).
    public var moveNotify: DoctorFact?
    /// The IOMMU default domain the configuration picks (`CONFIG_IOMMU_DEFAULT_PASSTHROUGH`,
    /// `_DMA_LAZY`, `_DMA_STRICT` in `drivers/iommu/Kconfig`): `identity`, `DMA-FQ` or `DMA`.
    public var configIOMMUDefault: DoctorFact?
    /// The whole kernel command line (`/proc/cmdline`).
    public var commandLine: DoctorFact?
    /// The parameters of the command line that change DMA or P2P, in their order.
    public var dmaParameters: [String]

    /// The value of a command-line parameter (`iommu=pt` gives `pt` for `iommu`), the last one
    /// winning as the kernel's `parse_args` applies them in order; `nil` when absent.
    /// - Parameter name: the parameter's name, before `=`.
    public func parameter(_ name: String) -> String? {
        var found: String?
        for word in (commandLine?.value ?? "").split(separator: " ") {
            let parts = word.split(separator: "=", maxSplits: 1)
            if parts.first.map(String.init) == name { found = parts.count == 2 ? String(parts[1]) : "" }
        }
        return found
    }

    /// Every value of a comma-separated parameter (`pci=` takes several options, `swiotlb=` too).
    /// - Parameter name: the parameter's name, before `=`.
    public func options(_ name: String) -> [String] {
        (commandLine?.value ?? "").split(separator: " ").flatMap { word -> [String] in
            let parts = word.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0] == Substring(name) else { return [] }
            // pci=disable_acs_redir=a;b carries ';' inside one option; options split on ','.
            return parts[1].split(separator: ",").map(String.init)
        }
    }

    /// `swiotlb=force` (`kernel/dma/swiotlb.c`, `setup_io_tlb_npages`): every streaming DMA of
    /// system memory bounces through the software IOTLB.
    public var swiotlbForced: Bool { options("swiotlb").contains("force") }

    /// The IOMMU the command line asks for, as one phrase (`intel_iommu=on iommu=pt`), or `nil`.
    public var iommuParameters: String? {
        let words = dmaParameters.filter { $0.hasPrefix("iommu") || $0.hasPrefix("intel_iommu") || $0.hasPrefix("amd_iommu") }
        return words.isEmpty ? nil : words.joined(separator: " ")
    }
}

/// One P2P-capable PCI endpoint and what the running system decided for it.
public struct DoctorDeviceFacts: Sendable, Hashable, Codable {
    /// The kind the doctor treats it as.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// A GPU (PCI class 0x03): exports VRAM as a dma-buf.
        case gpu
        /// A network controller (class 0x02): imports as an RDMA NIC.
        case nic
        /// An NVMe controller (class 0x010802): its controller memory buffer may be p2pmem.
        case nvme
        /// A processing accelerator (class 0x12).
        case accelerator
    }

    /// The device (`0000:03:00.0`).
    public var device: String
    /// Its kind.
    public var kind: Kind
    /// `vendor:device` and the class name.
    public var ids: String
    /// The bound driver (the basename of `/sys/bus/pci/devices/BDF/driver`), `nil` when none.
    public var driver: String?
    /// `dma_mask_bits` as the driver set it.
    public var dmaMaskBits: Int?
    /// The IOMMU group (the `iommu_group` link), `nil` when the device has none.
    public var iommuGroup: Int?
    /// The group's domain type (`/sys/kernel/iommu_groups/N/type`: `identity`, `DMA`, `DMA-FQ`,
    /// `blocked`, `unmanaged`), or `none` without a group; its source says when it was derived.
    public var domainType: DoctorFact
    /// Its published p2pmem, when its driver registered some (`p2pmem/` folder).
    public var p2pmem: PublishedP2PMemory?
}

/// An RDMA device (`/sys/class/infiniband/NAME`).
public struct DoctorRDMAFacts: Sendable, Hashable, Codable {
    /// Its name (`mlx5_0`, `rxe0`).
    public var name: String
    /// The PCI function behind it (its `device` link), `nil` for a software device (`rdma_rxe`,
    /// `siw`), which lives under `/sys/devices/virtual/infiniband` and moves bytes with the CPU.
    public var pciParent: String?
    /// The network device a software device is bound to (its `parent` attribute).
    public var netdev: String?
    /// Where it was read.
    public var source: String
}

/// The peer-memory stack: what lets an RDMA NIC reach GPU memory.
public struct DoctorStackFacts: Sendable, Hashable, Codable {
    /// The first line of `/proc/driver/nvidia/version`, when the NVIDIA driver is loaded.
    public var nvidiaDriver: String?
    /// Whether it is NVIDIA's open kernel modules (the only flavour that exports dma-bufs).
    public var nvidiaOpenKernelModules: Bool?
    /// Whether `nvidia_peermem` is loaded (`/proc/modules`): the older peer-memory path.
    public var nvidiaPeermem: Bool
    /// Whether MLNX_OFED's peer-memory core is present (`/sys/kernel/mm/memory_peers`).
    public var memoryPeers: Bool
}

/// Everything the doctor read from a root folder, and the PCI topology it loaded there.
public struct DoctorFacts: Sendable {
    /// The root read.
    public let root: DoctorRoot
    /// The kernel.
    public var kernel: DoctorKernelFacts
    /// The CPU (`/proc/cpuinfo`), as the P2P rules read it.
    public var cpu: DoctorFact
    /// A confidential-computing guest: the first marker of ``DoctorConfidentialFacts/evidence``
    /// that proves one (s390 PV, powerpc SVM, Arm CCA, Intel TDX, AMD SEV-SNP, the kernel log's
    /// SEV/SEV-ES/TDX line). Every streaming DMA of its private memory bounces through swiotlb.
    public var confidentialGuest: DoctorFact?
    /// Everything read about confidential computing, with the kernel log's state and an
    /// `unknown` when an AMD SEV or SEV-ES guest cannot be ruled out without root.
    public var confidential: DoctorConfidentialFacts
    /// The P2P-capable endpoints, in address order.
    public var devices: [DoctorDeviceFacts]
    /// The RDMA devices.
    public var rdma: [DoctorRDMAFacts]
    /// The peer-memory stack.
    public var stack: DoctorStackFacts
    /// The PCI topology of `/sys` (nil only in facts built by hand without one).
    public let topology: PCITopology

    /// The command-line parameters the doctor reports.
    static let dmaParameterNames: Set<String> = [
        "iommu", "intel_iommu", "amd_iommu", "iommu.passthrough", "iommu.strict", "pci", "swiotlb", "mem_encrypt",
    ]

    /// Kernel symbols that stand for the options when no configuration file exists: present only
    /// when the code is built (`drivers/pci/p2pdma.c` exports `pci_p2pdma_add_resource`).
    static let p2pdmaSymbol = "pci_p2pdma_add_resource"

    /// Reads every fact under `root`.
    /// - Parameter root: the live machine or a capture.
    /// - Throws: `TopologyLoadError` from the sysfs loader when `ROOT/sys` is not a PCI sysfs tree.
    public static func gather(root: DoctorRoot) throws -> DoctorFacts {
        var kernel = DoctorKernelFacts(pciP2PDMA: DoctorFact("unknown", source: "no configuration readable"), dmaParameters: [])
        let release = KernelConfig.release(procRoot: root.file("/proc"))
        kernel.release = release.map { DoctorFact($0, source: "/proc/sys/kernel/osrelease") }
        if let config = KernelConfig.read(procRoot: root.file("/proc"), bootRoot: root.file("/boot")) {
            let source = root.machinePath(config.source)
            kernel.configSource = source
            kernel.pciP2PDMA = DoctorFact(config.value("CONFIG_PCI_P2PDMA"), source: source)
            kernel.moveNotify = DoctorFact(config.moveNotify(release: release).rawValue, source: source)
            for (option, type) in [
                ("CONFIG_IOMMU_DEFAULT_PASSTHROUGH", "identity"), ("CONFIG_IOMMU_DEFAULT_DMA_LAZY", "DMA-FQ"),
                ("CONFIG_IOMMU_DEFAULT_DMA_STRICT", "DMA"),
            ] where config.value(option) == "y" {
                kernel.configIOMMUDefault = DoctorFact(type, source: "\(source) (\(option))")
            }
        } else if let symbols = root.text("/proc/kallsyms", limit: 256 << 20) {
            kernel.configSource = "/proc/kallsyms"
            let present = symbols.split(separator: "\n").contains { $0.hasSuffix(" " + p2pdmaSymbol) || $0.contains(" \(p2pdmaSymbol)\t") }
            kernel.pciP2PDMA = DoctorFact(present ? "y" : "not set", source: "/proc/kallsyms (\(p2pdmaSymbol) \(present ? "present" : "absent"))")
        }
        if let line = root.text("/proc/cmdline") {
            kernel.commandLine = DoctorFact(line, source: "/proc/cmdline")
            kernel.dmaParameters = line.split(separator: " ").map(String.init).filter {
                dmaParameterNames.contains(String($0.split(separator: "=", maxSplits: 1)[0]))
            }
        }
        let cpuText = root.text("/proc/cpuinfo") ?? ""
        let cpuInfo = CPUInfo.parse(procCPUInfo: cpuText) ?? CPUInfo(vendor: .other, family: 0)
        let cpu = DoctorFact(cpuInfo.description, source: cpuText.isEmpty ? "unknown (/proc/cpuinfo unreadable)" : "/proc/cpuinfo")
        let confidential = DoctorConfidential.gather(root: root, cpuText: cpuText, cpu: cpuInfo)

        // The P2PDMA rules of the machine's own release (the newest when it cannot be read).
        let topology = try SysfsTopologyLoader.load(root: root.file("/sys"), cpu: cpuInfo)
            .following(KernelConfig.runningVersion(procRoot: root.file("/proc")))
        let devices = topology.functions.compactMap { function -> DoctorDeviceFacts? in
            guard !function.isBridge, let kind = kind(of: function) else { return nil }
            let bdf = function.address.description
            let groupLink = root.linkTarget("/sys/bus/pci/devices/\(bdf)/iommu_group")
            let group = groupLink.flatMap { Int($0.split(separator: "/").last ?? "") }
            let domain: DoctorFact
            if let group {
                let typeFile = "/sys/kernel/iommu_groups/\(group)/type"
                domain = root.text(typeFile).map { DoctorFact($0, source: typeFile) }
                    ?? DoctorFact("unknown", source: "\(typeFile) unreadable")
            } else if let iommu = kernel.iommuParameters, !iommu.contains("=off") {
                domain = DoctorFact("unknown", source: "/sys/bus/pci/devices/\(bdf)/iommu_group absent, though the command line asks for an IOMMU (\(iommu))")
            } else {
                domain = DoctorFact("none", source: "/sys/bus/pci/devices/\(bdf)/iommu_group absent: no IOMMU translates this device")
            }
            return DoctorDeviceFacts(
                device: bdf, kind: kind, ids: "\(function.ids) \(function.className)", driver: function.driver,
                dmaMaskBits: function.dmaMaskBits, iommuGroup: group, domainType: domain,
                p2pmem: PublishedP2PMemory.read(device: bdf, sysfs: root.file("/sys")))
        }
        let rdma = root.list("/sys/class/infiniband").map { name -> DoctorRDMAFacts in
            let folder = "/sys/class/infiniband/\(name)"
            let parent = root.linkTarget(folder + "/device").flatMap { target in
                target.split(separator: "/").last(where: PCIBlockDevices.isPCIFunctionName).map(String.init)
            }
            return DoctorRDMAFacts(
                name: name, pciParent: parent, netdev: root.text(folder + "/parent"),
                source: parent == nil ? "\(folder) (no device link)" : "\(folder)/device")
        }
        let nvidia = root.text("/proc/driver/nvidia/version").flatMap { $0.split(separator: "\n").first.map(String.init) }
        let modules = root.text("/proc/modules", limit: 4 << 20) ?? ""
        let stack = DoctorStackFacts(
            nvidiaDriver: nvidia, nvidiaOpenKernelModules: nvidia.map { $0.contains("Open Kernel Module") },
            nvidiaPeermem: modules.split(separator: "\n").contains { $0.hasPrefix("nvidia_peermem ") },
            memoryPeers: root.exists("/sys/kernel/mm/memory_peers"))
        return DoctorFacts(
            root: root, kernel: kernel, cpu: cpu, confidentialGuest: confidential.guest, confidential: confidential.facts, devices: devices, rdma: rdma, stack: stack,
            topology: topology)
    }

    /// The endpoint kinds that take part in P2P, by PCI class (`include/linux/pci_ids.h`).
    static func kind(of function: PCIFunction) -> DoctorDeviceFacts.Kind? {
        switch function.baseClass {
        case 0x03: .gpu
        case 0x02: .nic
        case 0x12: .accelerator
        case 0x01 where function.classCode >> 8 == 0x0108: .nvme
        default: nil
        }
    }

    /// The facts of one device, by address.
    /// - Parameter bdf: its sysfs name (`0000:03:00.0`).
    public func device(_ bdf: String) -> DoctorDeviceFacts? { devices.first { $0.device == bdf } }
}

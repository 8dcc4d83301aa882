import DMACore
import Foundation

/// The six stories of DESIGN.md §4 that the model tells, as scenarios on the built-in machine
/// (``BuiltInTopology``). `dmabuf demo` runs them; `docs/scenarios.md` explains each.
public struct Story: Sendable {
    /// 1…6.
    public let number: Int
    /// One line.
    public let title: String
    /// What the kernel does in this situation.
    public let kernelBehaviour: String
    /// The steps whose outcomes the demo's summary shows (indices into the scenario's steps; the
    /// first step that has a field gives it).
    public let keySteps: [Int]
    /// The scenario.
    public let yaml: String
    /// The rule the story needs (story 6: VFIO dma-buf export, 6.19); under an older kernel its
    /// buffer cannot be made and the story is the refusal.
    var requires: KernelRule? = nil
    /// What is missing before ``requires``' release, for the kernel's behaviour line.
    var missingFeature: String? = nil
    /// What changes when every map pins (`CONFIG_DMABUF_MOVE_NOTIFY` off, before 7.1): the
    /// kernel's behaviour, and expectations of the scenario replaced (old text, new text).
    var whenMapsPin: (kernel: String, replacements: [(String, String)])? = nil

    /// Parses the scenario.
    public func scenario() throws -> Scenario { try Scenario.parse(yaml, file: "story \(number)") }

    /// The scenario with the outcomes `rules`' kernel gives (the same as ``yaml`` under the
    /// newest rules).
    public func yaml(for rules: KernelRules) -> String {
        guard rules.everyMapPins, let variant = whenMapsPin else { return yaml }
        var text = yaml
        for (old, new) in variant.replacements { text = text.replacingOccurrences(of: old, with: new) }
        return text
    }

    /// The scenario under `rules`.
    public func scenario(for rules: KernelRules) throws -> Scenario {
        var scenario = try Scenario.parse(yaml(for: rules), file: "story \(number)")
        scenario.kernel = rules
        return scenario
    }

    /// Whether the story can happen at all in `rules`' kernel.
    public func exists(in rules: KernelRules) -> Bool { requires.map(rules.has) ?? true }

    /// What the kernel does in this situation under `rules`.
    public func kernelBehaviour(for rules: KernelRules) -> String {
        if let requires, !rules.has(requires), let missing = missingFeature {
            return "\(missing) does not exist in Linux \(rules.version) (it came in \(requires.introduced)): this story cannot happen there"
        }
        if rules.everyMapPins, let variant = whenMapsPin { return variant.kernel }
        return kernelBehaviour
    }

    /// Every story, in order.
    public static let all: [Story] = [story1, story2, story3, story4, story5, story6]

    static let story1 = Story(
        number: 1, title: "GPU VRAM to an RDMA NIC under the same PCIe switch",
        kernelBehaviour: "P2P by bus address through the switch; no IOMMU, no copy", keySteps: [0],
        yaml: """
            title: "Story 1: GPU VRAM → RDMA NIC under the same PCIe switch"
            topology: builtin
            buffers:
              - {name: vram, exporter: gpu-vram, device: "0000:03:00.0", size: 2MiB, pattern: 7}
            importers:
              - {name: nic, device: "0000:04:00.0", kind: rdma-dynamic, ops: direct}
            steps:
              # mlx5 maps the MR at registration (mlx5_ib_init_dmabuf_mr): VRAM, no copy.
              - attach: {importer: nic, buffer: vram,
                  expect: {peerToPeer: true, placement: vram, mapType: bus-address, bouncedBytes: 0, migratedBytes: 0}}
              # The NIC sends from the MR and reads the GPU's bytes.
              - device-read: {importer: nic, buffer: vram, expectPattern: 7}
              # An RDMA write lands straight in VRAM; the GPU (the CPU here) sees it.
              - device-write: {importer: nic, buffer: vram, offset: 4096, length: 64KiB, pattern: 9}
              - cpu-read: {buffer: vram, offset: 4096, length: 64KiB, expectPattern: 9, expect: {placement: vram}}
              - detach: {importer: nic, buffer: vram}
            """,
        whenMapsPin: (
            kernel: "CONFIG_DMABUF_MOVE_NOTIFY off: the MR's map pins the buffer and amdgpu pins in GTT only, so the VRAM migrates to system memory; no P2P",
            replacements: [
                ("expect: {peerToPeer: true, placement: vram, mapType: bus-address, bouncedBytes: 0, migratedBytes: 0}",
                 "expect: {peerToPeer: false, placement: system, mapType: host, bouncedBytes: 0, migratedBytes: 2097152}"),
                ("expectPattern: 9, expect: {placement: vram}", "expectPattern: 9, expect: {placement: system}"),
            ]))

    static let story2 = Story(
        number: 2, title: "The same NIC on another root port of a whitelisted host bridge",
        kernelBehaviour: "P2P through the host bridge (Intel 8086:2020 is whitelisted), mapped as MMIO by the IOMMU", keySteps: [1],
        yaml: """
            title: "Story 2: GPU VRAM → RDMA NIC on another root port, whitelisted host bridge"
            topology: builtin
            buffers:
              - {name: vram, exporter: gpu-vram, device: "0000:03:00.0", size: 1MiB, pattern: 3}
            importers:
              - {name: nic, device: "0000:06:00.0", kind: device, dynamic: true, allowPeerToPeer: true, ops: iommu}
            steps:
              - attach: {importer: nic, buffer: vram, expect: {peerToPeer: true}}
              - map: {importer: nic, buffer: vram, expect: {peerToPeer: true, placement: vram, mapType: through-host-bridge, migratedBytes: 0}}
              - device-read: {importer: nic, buffer: vram, expectPattern: 3}
              - unmap: {importer: nic, buffer: vram}
              - detach: {importer: nic, buffer: vram}
            """,
        whenMapsPin: (
            kernel: "CONFIG_DMABUF_MOVE_NOTIFY off: the map pins the buffer and amdgpu pins in GTT only, so the VRAM migrates to system memory; no P2P",
            replacements: [
                ("expect: {peerToPeer: true, placement: vram, mapType: through-host-bridge, migratedBytes: 0}",
                 "expect: {peerToPeer: false, placement: system, mapType: host, migratedBytes: 1048576}")
            ]))

    static let story3 = Story(
        number: 3, title: "A NIC behind a non-whitelisted host bridge",
        kernelBehaviour: "P2P not supported: amdgpu clears peer2peer and moves the buffer to system memory (GTT)", keySteps: [1],
        yaml: """
            title: "Story 3: GPU VRAM → RDMA NIC behind another, non-whitelisted host bridge"
            topology: builtin
            buffers:
              - {name: vram, exporter: gpu-vram, device: "0000:03:00.0", size: 1MiB, pattern: 5}
            importers:
              - {name: nic, device: "0000:81:00.0", kind: device, dynamic: true, allowPeerToPeer: true, ops: iommu}
              - {name: gpu-peer, device: "0000:04:00.0", kind: device, dynamic: true, allowPeerToPeer: true}
            steps:
              - attach: {importer: nic, buffer: vram, expect: {peerToPeer: false}}
              - map: {importer: nic, buffer: vram, expect: {peerToPeer: false, placement: system, mapType: host, migratedBytes: 1048576}}
              - device-read: {importer: nic, buffer: vram, expectPattern: 5}
              - cpu-read: {buffer: vram, expectPattern: 5, expect: {placement: system}}
              # A close importer attached now still gets system memory: the buffer has moved.
              - attach: {importer: gpu-peer, buffer: vram, expect: {peerToPeer: true}}
              - map: {importer: gpu-peer, buffer: vram, expect: {placement: system, mapType: host, migratedBytes: 0}}
              - unmap: {importer: gpu-peer, buffer: vram}
              - detach: {importer: gpu-peer, buffer: vram}
              - unmap: {importer: nic, buffer: vram}
              - detach: {importer: nic, buffer: vram}
            """)

    static let story4 = Story(
        number: 4, title: "An HFI-style NIC whose custom DMA ops cannot carry P2P",
        kernelBehaviour: "a raw P2P list is refused with EREMOTEIO; through dma-buf amdgpu keeps P2P (the PCI route alone decides) and mapping the VRAM fails with ENOMEM, as these ops cannot map MMIO; once the buffer is evicted to system memory they map its pages", keySteps: [0, 2, 3, 4],
        yaml: """
            title: "Story 4: HFI-style NIC with virt ops (CPU addresses, not P2P capable)"
            topology: builtin
            buffers:
              - {name: vram, exporter: gpu-vram, device: "0000:03:00.0", size: 256KiB, pattern: 11}
            importers:
              - {name: hfi, device: "0000:07:00.0", kind: device, dynamic: true, allowPeerToPeer: true, ops: virt}
            steps:
              # Handed the VRAM P2P list directly, the ops refuse it: nothing is mapped, nothing crashes.
              - raw-map: {importer: hfi, buffer: vram, expect: {ok: false, errno: EREMOTEIO}}
              # amdgpu asks the PCI route alone (pci_p2pdma_distance), not the ops: peer2peer stays.
              - attach: {importer: hfi, buffer: vram, expect: {peerToPeer: true}}
              # VRAM is mapped with dma_map_resource / dma_map_phys(DMA_ATTR_MMIO), which these ops cannot do.
              - map: {importer: hfi, buffer: vram, expect: {ok: false, errno: ENOMEM}}
              # Once the buffer is in system memory (GTT), the ops map its pages.
              - evict: {buffer: vram}
              - map: {importer: hfi, buffer: vram, expect: {placement: system, mapType: host}}
              - device-read: {importer: hfi, buffer: vram, expectPattern: 11}
              - unmap: {importer: hfi, buffer: vram}
              - detach: {importer: hfi, buffer: vram}
            """,
        whenMapsPin: (
            kernel: "a raw P2P list is refused with EREMOTEIO; CONFIG_DMABUF_MOVE_NOTIFY off: the map pins and amdgpu pins in GTT, so the NIC gets system pages its ops can map",
            replacements: [
                ("map: {importer: hfi, buffer: vram, expect: {ok: false, errno: ENOMEM}}",
                 "map: {importer: hfi, buffer: vram, expect: {placement: system, mapType: host, migratedBytes: 262144}}"),
                // Pinned by its map, the buffer cannot be evicted: the importer unmaps and maps again.
                ("- evict: {buffer: vram}", "- unmap: {importer: hfi, buffer: vram}"),
            ]))

    static let story5 = Story(
        number: 5, title: "A device with a 32-bit DMA mask",
        kernelBehaviour: "swiotlb bounce buffers, copied per direction at map, sync and unmap", keySteps: [1],
        yaml: """
            title: "Story 5: a 32-bit DMA mask device gets bounce buffers"
            topology: builtin
            buffers:
              - {name: frames, exporter: system-heap, size: 64KiB, pattern: 21}
            importers:
              - {name: capture, device: "0000:08:00.0", kind: device, ops: direct}
            steps:
              # DMA_TO_DEVICE: map copies the CPU's bytes into the bounce buffer; the device reads them.
              - attach: {importer: capture, buffer: frames}
              - map: {importer: capture, buffer: frames, direction: to-device, expect: {placement: system, mapType: host, bouncedBytes: 65536}}
              - device-read: {importer: capture, buffer: frames, expectPattern: 21}
              - unmap: {importer: capture, buffer: frames, direction: to-device}
              # DMA_FROM_DEVICE: the device writes into the bounce buffer; sync for the CPU copies it back.
              - map: {importer: capture, buffer: frames, direction: from-device, expect: {bouncedBytes: 65536}}
              - device-write: {importer: capture, buffer: frames, pattern: 22}
              - sync: {importer: capture, buffer: frames, for: cpu, direction: from-device}
              - cpu-read: {buffer: frames, expectPattern: 22}
              - unmap: {importer: capture, buffer: frames, direction: from-device}
              # DMA_BIDIRECTIONAL: the CPU writes, syncs for the device; the device reads and writes back.
              - cpu-write: {buffer: frames, pattern: 23}
              - map: {importer: capture, buffer: frames, direction: bidirectional}
              - device-read: {importer: capture, buffer: frames, expectPattern: 23}
              - device-write: {importer: capture, buffer: frames, offset: 8192, length: 4096, pattern: 24}
              - unmap: {importer: capture, buffer: frames, direction: bidirectional}
              - cpu-read: {buffer: frames, offset: 8192, length: 4096, expectPattern: 24}
              - detach: {importer: capture, buffer: frames}
            """)

    static let story6 = Story(
        number: 6, title: "A VFIO BAR exported to NICs, revoked by a device reset",
        kernelBehaviour: "importers are told (invalidate_mappings); their mappings die; maps fail with ENODEV until memory is enabled again",
        keySteps: [5, 7],
        yaml: """
            title: "Story 6: VFIO BAR exported at 4 KiB ranges, revoked by a reset, restored"
            topology: builtin
            buffers:
              - {name: bar, exporter: vfio-bar, device: "0000:09:00.0", bar: 2,
                 ranges: [{offset: 0, length: 4KiB}, {offset: 64KiB, length: 4KiB}, {offset: 1MiB, length: 8KiB}]}
            importers:
              - {name: nic, device: "0000:04:00.0", kind: device, dynamic: true, allowPeerToPeer: true}
              - {name: mr, device: "0000:04:00.0", kind: rdma-dynamic}
              - {name: static-nic, device: "0000:04:00.0", kind: device, dynamic: false}
            \(story6Steps)
            """,
        requires: .vfioDMABufExport, missingFeature: "VFIO dma-buf export (VFIO_DEVICE_FEATURE_DMA_BUF answers ENOTTY)",
        whenMapsPin: (
            kernel:
                "without CONFIG_DMABUF_MOVE_NOTIFY (6.19, 7.0) every map pins first, and VFIO's pin refuses (vfio_pci_dma_buf_pin, EOPNOTSUPP): nothing can map the BAR; the reset still tells the attached importers",
            replacements: [(story6Steps, story6StepsWhenMapsPin)]
        ))

    /// Story 6's steps under the newest rules.
    static let story6Steps = """
            steps:
              # A static importer cannot do P2P, so VFIO refuses it.
              - attach: {importer: static-nic, buffer: bar, expect: {ok: false, errno: EOPNOTSUPP}}
              - attach: {importer: nic, buffer: bar, expect: {peerToPeer: true}}
              - map: {importer: nic, buffer: bar, expect: {placement: bar, mapType: bus-address, segments: 3}}
              - attach: {importer: mr, buffer: bar}
              - device-write: {importer: mr, buffer: bar, byte: 0x5a}
              # The device is reset: every dynamic importer is told, and the BAR stops decoding.
              - revoke: {buffer: bar, reason: reset, expect: {notified: [mr, nic]}}
              # A device that still uses its dead mapping gets no memory: a bus error.
              - device-write: {importer: nic, buffer: bar, length: 4KiB, expect: {ok: false, errno: EIO}}
              - map: {importer: nic, buffer: bar, expect: {ok: false, errno: ENODEV}}
              - device-write: {importer: mr, buffer: bar, length: 4KiB, expect: {ok: false, errno: ENODEV}}
              # Memory is enabled again: maps work, the MR faults in again.
              - restore: {buffer: bar}
              - map: {importer: nic, buffer: bar, expect: {mapType: bus-address}}
              - device-read: {importer: mr, buffer: bar, expectByte: 0x5a}
              - unmap: {importer: nic, buffer: bar}
              - detach: {importer: nic, buffer: bar}
              - detach: {importer: mr, buffer: bar}
            """

    /// Story 6's steps where every map pins (6.19 and 7.0 without `CONFIG_DMABUF_MOVE_NOTIFY`,
    /// `dma_buf_map_attachment` in `drivers/dma-buf/dma-buf.c`; `vfio_pci_dma_buf_pin` in
    /// `drivers/vfio/pci/vfio_pci_dmabuf.c` refuses every pin until 7.1 drops it).
    static let story6StepsWhenMapsPin = """
            steps:
              # A static importer cannot do P2P, so VFIO refuses it.
              - attach: {importer: static-nic, buffer: bar, expect: {ok: false, errno: EOPNOTSUPP}}
              - attach: {importer: nic, buffer: bar, expect: {peerToPeer: true}}
              # Without MOVE_NOTIFY the map pins first, and VFIO's pin refuses.
              - map: {importer: nic, buffer: bar, expect: {ok: false, errno: EOPNOTSUPP}}
              # mlx5 maps the MR at registration: the same refusal fails the registration.
              - attach: {importer: mr, buffer: bar, expect: {ok: false, errno: EOPNOTSUPP}}
              - device-write: {importer: nic, buffer: bar, length: 4KiB, expect: {ok: false, errno: ENODEV}}
              # The device is reset: the one attached importer is told.
              - revoke: {buffer: bar, reason: reset, expect: {notified: [nic]}}
              - device-write: {importer: nic, buffer: bar, length: 4KiB, expect: {ok: false, errno: ENODEV}}
              - map: {importer: nic, buffer: bar, expect: {ok: false, errno: EOPNOTSUPP}}
              - restore: {buffer: bar}
              - detach: {importer: nic, buffer: bar}
            """
}

import DMACore
import PCI

/// The machine of the stories (DESIGN.md §4), as a topology file:
///
/// ```
/// pci0000:00  host bridge 00:00.0 Intel 8086:2020 (Skylake-E: on the P2PDMA whitelist)
///   00:01.0 root port ─ 01:00.0 switch ─┬ 02:00.0 ─ 03:00.0 GPU (64 GiB VRAM BAR)
///                                        ├ 02:01.0 ─ 04:00.0 RDMA NIC
///                                        └ 02:02.0 ─ 09:00.0 VFIO passthrough accelerator (16 MiB BAR)
///   00:02.0 root port ─ 06:00.0 RDMA NIC (another root port: through the host bridge)
///   00:03.0 root port ─ 07:00.0 HFI-style NIC (custom ops, not P2P capable)
///   00:04.0 root port ─ 08:00.0 capture card with a 32-bit DMA mask
/// pci0000:80  host bridge 80:00.0 Intel 8086:0d57 (not whitelisted)
///   80:01.0 root port ─ 81:00.0 RDMA NIC (another host bridge: P2P not supported)
/// ```
/// The CPU is Intel family 6, so the host-bridge route depends on the whitelist.
public enum BuiltInTopology {
    /// The YAML text.
    public static let yaml = """
        # The built-in machine of the DMABufKit stories (docs/topology.md describes the format).
        cpu: intel:0x6
        devices:
          - {bdf: "0000:00:00.0", vendor: 0x8086, device: 0x2020, class: 0x060000}
          - {bdf: "0000:00:01.0", vendor: 0x8086, device: 0x2030, class: 0x060400, port: root-port, acs: 0x0}
          - {bdf: "0000:01:00.0", vendor: 0x10b5, device: 0x9781, class: 0x060400, parent: "0000:00:01.0", port: upstream-port}
          - {bdf: "0000:02:00.0", vendor: 0x10b5, device: 0x9781, class: 0x060400, parent: "0000:01:00.0", port: downstream-port, acs: 0x0}
          - {bdf: "0000:02:01.0", vendor: 0x10b5, device: 0x9781, class: 0x060400, parent: "0000:01:00.0", port: downstream-port, acs: 0x0}
          - {bdf: "0000:02:02.0", vendor: 0x10b5, device: 0x9781, class: 0x060400, parent: "0000:01:00.0", port: downstream-port, acs: 0x0}
          - {bdf: "0000:03:00.0", vendor: 0x1002, device: 0x740f, class: 0x038000, parent: "0000:02:00.0", port: endpoint,
             dmaMask: 44, driver: amdgpu, bars: [{index: 0, start: 0x200000000000, size: 64GiB}, {index: 5, start: 0xf0000000, size: 1MiB, bits: 32, prefetchable: false}]}
          - {bdf: "0000:04:00.0", vendor: 0x15b3, device: 0x101d, class: 0x020000, parent: "0000:02:01.0", port: endpoint,
             dmaMask: 64, driver: mlx5_core, bars: [{index: 0, start: 0x210000000000, size: 32MiB}]}
          - {bdf: "0000:09:00.0", vendor: 0x1dd8, device: 0x1002, class: 0x120000, parent: "0000:02:02.0", port: endpoint,
             dmaMask: 64, driver: vfio-pci, bars: [{index: 2, start: 0x220000000000, size: 16MiB}]}
          - {bdf: "0000:00:02.0", vendor: 0x8086, device: 0x2031, class: 0x060400, port: root-port, acs: 0x0}
          - {bdf: "0000:06:00.0", vendor: 0x15b3, device: 0x101d, class: 0x020000, parent: "0000:00:02.0", port: endpoint,
             dmaMask: 64, driver: mlx5_core, bars: [{index: 0, start: 0x230000000000, size: 32MiB}]}
          - {bdf: "0000:00:03.0", vendor: 0x8086, device: 0x2032, class: 0x060400, port: root-port, acs: 0x0}
          - {bdf: "0000:07:00.0", vendor: 0x8086, device: 0x24f0, class: 0x020800, parent: "0000:00:03.0", port: endpoint,
             dmaMask: 64, driver: hfi1, bars: [{index: 0, start: 0x240000000000, size: 64MiB}]}
          - {bdf: "0000:00:04.0", vendor: 0x8086, device: 0x2033, class: 0x060400, port: root-port, acs: 0x0}
          - {bdf: "0000:08:00.0", vendor: 0x1cd7, device: 0x0010, class: 0x048000, parent: "0000:00:04.0", port: endpoint,
             dmaMask: 32, driver: capture, bars: [{index: 0, start: 0xe0000000, size: 1MiB, bits: 32, prefetchable: false}]}
          - {bdf: "0000:80:00.0", vendor: 0x8086, device: 0x0d57, class: 0x060000}
          - {bdf: "0000:80:01.0", vendor: 0x8086, device: 0x1234, class: 0x060400, port: root-port, acs: 0x0}
          - {bdf: "0000:81:00.0", vendor: 0x15b3, device: 0x101d, class: 0x020000, parent: "0000:80:01.0", port: endpoint,
             dmaMask: 64, driver: mlx5_core, bars: [{index: 0, start: 0x250000000000, size: 32MiB}]}
        """

    /// Loads it.
    public static func load() throws -> PCITopology {
        try YAMLTopology.load(yaml, file: "built-in topology", cpu: CPUInfo(vendor: .intel, family: 6))
    }
}

/// debugfs `dma_buf/bufinfo` texts as each kernel's `dma_buf_debug_show`
/// (`drivers/dma-buf/dma-buf.c`) prints them, byte for byte in layout: tabs, zero padding to 8
/// digits, hex flags and mode, `Total N devices attached` and a blank line after each buffer, a
/// blank line before `Total N objects, M bytes`. Written as escapes so every tab is visible.
enum BufInfoFixtures {
    /// The header of 5.3 to 6.1 (`%-8s` columns, no `name`).
    static let headerWithoutName = "size    \tflags   \tmode    \tcount   \texp_name\tino     "
    /// The header of 6.2 and later (`\tname` added with `<none>`).
    static let headerWithName = "size    \tflags   \tmode    \tcount   \texp_name\tino     \tname"

    static func text(_ header: String, _ blocks: [String], objects: Int, bytes: Int) -> String {
        "\nDma-buf Objects:\n" + header + "\n" + blocks.joined() + "\nTotal \(objects) objects, \(bytes) bytes\n"
    }

    /// Linux 5.4 (an Android-style camera and GPU): empty name with its trailing tab, fences as
    /// `Exclusive fence: DRIVER TIMELINE signalled` / `Shared fence: ...` without a seqno.
    static let linux54 = text(headerWithoutName, [
        "00032768\t00000002\t00080003\t00000003\ti915\t00000017\t\n"
            + "\tExclusive fence: i915 rcs0 signalled\n"
            + "\tShared fence: i915 bcs0 unsignalled\n"
            + "\tAttached Devices:\n"
            + "\t0000:00:02.0\n"
            + "Total 1 devices attached\n\n",
        "01048576\t00000002\t00080003\t00000001\tion\t00000021\tcamera-preview\n"
            + "\tAttached Devices:\n"
            + "Total 0 devices attached\n\n",
    ], objects: 2, bytes: 1_081_344)

    /// Linux 5.0 to 5.2: rows without a name column at all.
    static let linux50 = text("size    \tflags   \tmode    \tcount   \texp_name\tino     ", [
        "00004096\t00000002\t00080003\t00000002\tdrm\t00000005\n"
            + "\tAttached Devices:\n"
            + "\t0000:01:00.0\n"
            + "Total 1 devices attached\n\n",
    ], objects: 1, bytes: 4096)

    /// Linux 5.18 (`dma_resv_describe`, before usages): `Exclusive fence:DRIVER TIMELINE seq N`.
    static let linux518 = text(headerWithoutName, [
        "00065536\t00000002\t00080003\t00000002\tamdgpu\t00000102\t\n"
            + "\tExclusive fence:amdgpu gfx_0.0.0 seq 4711 signalled\n"
            + "\tShared fence:amdgpu sdma0 seq 12 unsignalled\n"
            + "\tAttached Devices:\n"
            + "\t0000:0b:00.0\n"
            + "\t0000:0c:00.0\n"
            + "Total 2 devices attached\n\n",
    ], objects: 1, bytes: 65536)

    /// Linux 6.1 (Debian bookworm): usages (`write`, `read`, `bookkeep`), empty names.
    static let linux61 = text(headerWithoutName, [
        "00016384\t00000002\t00080003\t00000003\tdrm\t00000001\tprobe-vgem\n"
            + "\twrite fence:stub stub seq 0 signalled\n"
            + "\tAttached Devices:\n"
            + "Total 0 devices attached\n\n",
        "00016384\t00000002\t00080003\t00000002\tvirtio_gpu\t00000002\t\n"
            + "\tread fence:virtio_gpu virtio_gpu-fence seq 9 unsignalled\n"
            + "\tbookkeep fence:drm_sched gfx seq 3 signalled\n"
            + "\tAttached Devices:\n"
            + "\tvgem\n"
            + "Total 1 devices attached\n\n",
    ], objects: 2, bytes: 32768)

    /// Linux 6.12 (Debian trixie), the kernel tier's probe: four buffers (81,920 bytes), newest
    /// first; the heap and udmabuf buffers imported into vgem; names and `<none>`.
    static let linux612 = text(headerWithName, [
        "00032768\t00000002\t00080003\t00000002\tsystem\t00000004\tprobe-heap-system\n"
            + "\twrite fence:stub stub seq 0 signalled\n"
            + "\tAttached Devices:\n"
            + "\tvgem\n"
            + "Total 1 devices attached\n\n",
        "00016384\t00000002\t00080003\t00000001\tudmabuf\t00000003\t<none>\n"
            + "\tAttached Devices:\n"
            + "\tvgem\n"
            + "Total 1 devices attached\n\n",
        "00016384\t00000002\t00080003\t00000003\tvirtio_gpu\t00000002\tprobe-virtio_gpu\n"
            + "\tAttached Devices:\n"
            + "Total 0 devices attached\n\n",
        "00016384\t00000002\t00080003\t00000003\tdrm\t00000001\tprobe-vgem\n"
            + "\twrite fence:stub stub seq 0 signalled\n"
            + "\tAttached Devices:\n"
            + "Total 0 devices attached\n\n",
    ], objects: 4, bytes: 81920)

    /// Linux 7.3 (Debian trixie-backports): a VFIO export of an NVMe CMB (no attached device), a
    /// heap buffer attached to two PCI devices whose fds are all closed (held by the kernel),
    /// a name with a space, an unsignalled `kernel` fence.
    static let linux73 = text(headerWithName, [
        "16777216\t00000002\t00080003\t00000001\tvfio_pci_core\t00000009\t<none>\n"
            + "\tAttached Devices:\n"
            + "Total 0 devices attached\n\n",
        "00065536\t00000002\t00080003\t00000002\tsystem\t00000008\tnic rx ring\n"
            + "\tkernel fence:nvme 0000:04:00.0 seq 17 unsignalled\n"
            + "\tAttached Devices:\n"
            + "\t0000:03:00.0\n"
            + "\t0000:04:00.0\n"
            + "Total 2 devices attached\n\n",
        "00016384\t00000002\t00080003\t00000004\tudmabuf\t00000007\tshared\n"
            + "\tAttached Devices:\n"
            + "Total 0 devices attached\n\n",
    ], objects: 3, bytes: 16_859_136)
}

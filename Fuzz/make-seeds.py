#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (Fuzz/corpus/<target>/) from the project's own
fixtures, stories and documentation. Run from the repository root: python3 Fuzz/make-seeds.py"""
import os, re, struct, textwrap

out = "Fuzz/corpus"
fixtures = "Tests/PCITests/Fixtures"

def write(target, name, data):
    os.makedirs(f"{out}/{target}", exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(f"{out}/{target}/{name}", "wb") as f:
        f.write(data)

# config-space: real config files of the fixture trees, a 64-byte (non-root) read, a looping chain.
picks = [("qemu-q35", "0000:00:00.0"), ("qemu-q35", "0000:00:10.0"), ("qemu-q35", "0000:02:00.0"),
         ("h200-vm", "0000:00:02.0")]
for tree, bdf in picks:
    link = os.readlink(f"{fixtures}/{tree}/bus/pci/devices/{bdf}") if os.path.islink(f"{fixtures}/{tree}/bus/pci/devices/{bdf}") \
        else open(f"{fixtures}/{tree}/bus/pci/devices/{bdf}").read().strip()
    path = os.path.normpath(os.path.join(f"{fixtures}/{tree}/bus/pci/devices", link))
    config = open(f"{path}/config", "rb").read()
    write("config-space", f"{tree}-{bdf.replace(':', '_')}", config)
    if bdf == "0000:00:10.0":
        write("config-space", "non-root-64-bytes", config[:64])
loop = bytearray(4096)
loop[0x06] = 0x10; loop[0x34] = 0x40; loop[0x40] = 0x10; loop[0x41] = 0x40  # standard list loops on itself
struct.pack_into("<I", loop, 0x100, 0x0001_0000 | (0x110 << 20))
struct.pack_into("<I", loop, 0x110, 0x0001_0000 | (0x100 << 20))
write("config-space", "looping-chains", bytes(loop))

# sysfs: a manifest (Fuzz/Targets/SysfsManifest.swift) of a few devices of the q35 fixture.
def manifest(tree, bdfs):
    root = f"{fixtures}/{tree}"
    records = []
    def rec(kind, path, content):
        p = path.encode()
        records.append(bytes([ord(kind), len(p)]) + p + struct.pack("<H", len(content)) + content)
    keep = {"vendor", "device", "class", "config", "resource", "dma_mask_bits", "numa_node", "driver"}
    for bdf in bdfs:
        entry = f"bus/pci/devices/{bdf}"
        target = os.readlink(f"{root}/{entry}") if os.path.islink(f"{root}/{entry}") else open(f"{root}/{entry}").read().strip()
        rec("L", entry, target.encode())
        folder = os.path.normpath(os.path.join(os.path.dirname(f"{root}/{entry}"), target))
        rel = os.path.relpath(folder, root)
        rec("D", rel, b"")
        for name in sorted(os.listdir(folder)):
            if name not in keep:
                continue
            full = f"{folder}/{name}"
            if os.path.islink(full):
                rec("L", f"{rel}/{name}", os.readlink(full).encode())
            elif os.path.isfile(full):
                data = open(full, "rb").read()
                if name == "config":
                    data = data[:256] + data[256:].rstrip(b"\0")  # the tail of zeros is what a short read gives
                rec("F", f"{rel}/{name}", data)
    return b"".join(records)
write("sysfs", "q35-switch-path", manifest("qemu-q35", ["0000:00:00.0", "0000:00:10.0", "0000:02:00.0"]))
write("sysfs", "h200-vm-two", manifest("h200-vm", ["0000:00:00.0", "0000:00:02.0"]))
# Shapes the kernel tier met on Linux 7.3 under QEMU (Tests/PCITests/Fixtures/kernel-73): a
# root port, a switch's upstream and downstream ports and NVMe endpoints with controller memory
# buffers behind them, and a second host bridge.
write("sysfs", "k73-switch-nvme", manifest("kernel-73/switch-skylake-iommu/sys",
      ["0000:00:10.0", "0000:01:00.0", "0000:02:00.0", "0000:02:01.0", "0000:03:00.0", "0000:04:00.0"]))
write("sysfs", "k73-oracle-epyc", manifest("kernel-73/oracle-epyc-iommu/sys", ["0000:00:00.0", "0000:00:01.0"]))
# An Intel VMD domain (devices below pci10000:e0 with no upstream bridge in Linux), a link to itself
# and a two-link loop, as raw records.
def records(entries):
    out = b""
    for kind, path, content in entries:
        p = path.encode(); c = content.encode() if isinstance(content, str) else content
        out += bytes([ord(kind), len(p)]) + p + struct.pack("<H", len(c)) + c
    return out
vmd = "devices/pci0000:00/0000:00:05.0/pci10000:e0/10000:e0:00.0"
write("sysfs", "vmd-domain", records([
    ("D", "devices/pci0000:00/0000:00:05.0", ""), ("F", "devices/pci0000:00/0000:00:05.0/vendor", "0x8086\n"),
    ("F", "devices/pci0000:00/0000:00:05.0/class", "0x010400\n"),
    ("D", vmd, ""), ("F", f"{vmd}/vendor", "0x144d\n"), ("F", f"{vmd}/class", "0x010802\n"),
    ("F", f"{vmd}/resource", "0x00000000d1000000 0x00000000d1003fff 0x0000000000140204\n"),
    ("L", "bus/pci/devices/0000:00:05.0", "../../../devices/pci0000:00/0000:00:05.0"),
    ("L", "bus/pci/devices/10000:e0:00.0", f"../../../{vmd}")]))
write("sysfs", "link-loops", records([
    ("L", "bus/pci/devices/0000:00:01.0", "0000:00:01.0"),
    ("L", "bus/pci/devices/0000:00:02.0", "../../../devices/pci0000:00/0000:00:02.0"),
    ("L", "devices/pci0000:00/0000:00:02.0", "../../bus/pci/devices/0000:00:02.0")]))

# topology-yaml: the built-in topology and the annotated example of docs/topology.md.
swift = open("Sources/DMAScenario/BuiltInTopology.swift").read()
m = re.search(r'static let yaml = """\n(.*?)\n\s*"""', swift, re.S)
write("topology-yaml", "built-in", textwrap.dedent(m.group(1)) + "\n")
doc = open("docs/topology.md").read()
for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc, re.S)[:2]):
    write("topology-yaml", f"docs-topology-{i}", block)

# scenario-yaml: the six stories and the examples of docs/scenarios.md.
stories = open("Sources/DMAScenario/Stories.swift").read()
for i, block in enumerate(re.findall(r'yaml: """\n(.*?)\n\s*"""', stories, re.S)):
    write("scenario-yaml", f"story-{i + 1}", textwrap.dedent(block) + "\n")
doc = open("docs/scenarios.md").read()
for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc, re.S)[:1]):
    write("scenario-yaml", f"docs-scenarios-{i}", block)

# Huge sizes: a buffer of 2^62 bytes, one of 6 GiB and a step length past its buffer.
write("scenario-yaml", "huge-sizes", """topology: builtin
buffers:
  - {name: big, exporter: system-heap, size: 4611686018427387904}
  - {name: six, exporter: gpu-vram, device: "0000:03:00.0", size: 6GiB, pattern: 1}
importers:
  - {name: nic, device: "0000:04:00.0", kind: rdma-dynamic, ops: iommu}
steps:
  - attach: {importer: nic, buffer: six}
  - device-read: {importer: nic, buffer: six, offset: 6GiB, length: 18446744073709551615}
""")
# fdinfo: what the kernels of the kernel tier and a GPU machine print.
write("fdinfo", "vgem", "pos:\t0\nflags:\t02000002\nmnt_id:\t12\nino:\t1\nsize:\t16384\ncount:\t3\nexp_name:\tdrm\nname:\tprobe-vgem\n")
write("fdinfo", "nv-dmabuf", "pos:\t0\nflags:\t02000002\nmnt_id:\t12\nino:\t1\nsize:\t67108864\ncount:\t1\nexp_name:\tnv_dmabuf\n")
write("fdinfo", "memfd", "pos:\t0\nflags:\t02100002\nmnt_id:\t1\nino:\t2051\n")
write("fdinfo", "odd-name", "name:\twith spaces: and colon\nexp_name:\tsystem\nsize:\tx\n")
# debugfs dma_buf/bufinfo (the same target): 6.12 with names, a fence and an attachment; 5.4 with
# an empty name and Exclusive/Shared fences.
write("fdinfo", "bufinfo-6.12", "\nDma-buf Objects:\nsize    \tflags   \tmode    \tcount   \texp_name\tino     \tname\n"
      "00032768\t00000002\t00080003\t00000002\tsystem\t00000004\tprobe-heap-system\n\twrite fence:stub stub seq 0 signalled\n"
      "\tAttached Devices:\n\tvgem\nTotal 1 devices attached\n\n"
      "00016384\t00000002\t00080003\t00000001\tudmabuf\t00000003\t<none>\n\tAttached Devices:\nTotal 0 devices attached\n\n"
      "\nTotal 2 objects, 49152 bytes\n")
write("fdinfo", "bufinfo-5.4", "\nDma-buf Objects:\nsize    \tflags   \tmode    \tcount   \texp_name\tino     \n"
      "00032768\t00000002\t00080003\t00000003\ti915\t00000017\t\n\tExclusive fence: i915 rcs0 signalled\n"
      "\tShared fence: i915 bcs0 unsignalled\n\tAttached Devices:\n\t0000:00:02.0\nTotal 1 devices attached\n\n"
      "\nTotal 1 objects, 32768 bytes\n")

#!/usr/bin/env python3
"""Writes a sysfs copy of a machine with 1,024 PCIe endpoints, laid out as
drivers/pci/pci-sysfs.c lays out /sys: bus/pci/devices/* are symbolic links into
devices/pci0000:00/..., and every function has vendor, device, class, config (4096 bytes),
resource, dma_mask_bits and numa_node.

The machine: host bridge 00:00.0 (Intel 8086:2020, on the P2PDMA whitelist), 8 root ports, each
with a PCIe switch of 16 downstream ports, each with one 8-function endpoint (a NIC with a 32 MiB
64-bit prefetchable BAR 0 per function): 8 x 16 x 8 = 1,024 endpoints, 1,169 functions in all.
Bridges carry their bus numbers, so `lspci -t` draws the same tree. Downstream ports of odd
switches set ACS redirect (RR|CR), so the verdicts are a mix of bus-address and through the host
bridge.

With DOMAINS above 1 the same machine is repeated in PCI domains 0000, 0001, ... (host bridges
pci0000:00, pci0001:00, ...), each with its own BARs: `make-sysfs.py DIR 7 16 8 5` writes the
5,115 functions of the scaling rows.

Usage: make-sysfs.py DIR [ROOT_PORTS [PORTS_PER_SWITCH [FUNCTIONS [DOMAINS]]]]
"""
import os
import struct
import sys



def config(vendor, device, class_code, port=None, acs=None, bars=(), buses=None):
    b = bytearray(4096)
    struct.pack_into("<HH", b, 0, vendor, device)
    b[0x09] = class_code & 0xFF
    b[0x0A] = (class_code >> 8) & 0xFF
    b[0x0B] = class_code >> 16
    bridge = class_code >> 8 == 0x0604
    b[0x0E] = 1 if bridge else 0
    if bridge and buses:
        b[0x18], b[0x19], b[0x1A] = buses  # primary, secondary, subordinate
    if port is not None:
        struct.pack_into("<H", b, 0x06, 0x10)  # capability list
        b[0x34] = 0x40
        b[0x40] = 0x10  # PCI Express capability
        b[0x41] = 0
        struct.pack_into("<H", b, 0x42, (port << 4) | 2)
    for index, start in bars:
        struct.pack_into("<I", b, 0x10 + 4 * index, (start & 0xFFFFFFFF) | 0xC)  # 64-bit prefetchable
        struct.pack_into("<I", b, 0x14 + 4 * index, start >> 32)
    if acs is not None:
        struct.pack_into("<I", b, 0x100, 0x0001000D)  # ACS, version 1, end of chain
        struct.pack_into("<HH", b, 0x104, 0x005F, acs)
    return bytes(b)


def machine(add, dom, root_ports, per_switch, functions, bar_base, bar_size, count):
    """One host bridge pciDOM:00 and its tree; returns the next free BAR address."""
    HOST = "pci%s:00" % dom
    host = dom + ":00:00.0"
    add([HOST, host], host, 0x8086, 0x2020, 0x060000, config(0x8086, 0x2020, 0x060000))
    bus = 0
    for r in range(root_ports):
        rp = dom + ":00:%02x.0" % (r + 1)
        up_bus = bus + 1
        down_bus = bus + 2
        last = down_bus + per_switch
        add([HOST, rp], rp, 0x8086, 0x2030 + r, 0x060400,
            config(0x8086, 0x2030 + r, 0x060400, port=4, acs=0, buses=(0, up_bus, last)))
        up = dom + ":%02x:00.0" % up_bus
        add([HOST, rp, up], up, 0x10B5, 0x9781, 0x060400,
            config(0x10B5, 0x9781, 0x060400, port=5, buses=(up_bus, down_bus, last)))
        for p in range(per_switch):
            dp = dom + ":%02x:%02x.0" % (down_bus, p)
            ep_bus = down_bus + 1 + p
            acs = 0x000C if r % 2 else 0
            add([HOST, rp, up, dp], dp, 0x10B5, 0x9781, 0x060400,
                config(0x10B5, 0x9781, 0x060400, port=6, acs=acs, buses=(down_bus, ep_bus, ep_bus)))
            for fn in range(functions):
                ep = dom + ":%02x:00.%d" % (ep_bus, fn)
                bars = [(0, bar_base, bar_size)]
                bar_base += bar_size
                add([HOST, rp, up, dp, ep], ep, 0x15B3, 0x101D, 0x020000,
                    config(0x15B3, 0x101D, 0x020000, port=0, bars=[(0, bars[0][1])]), bars)
                count["endpoints"] += 1
        bus = last
    return bar_base


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    root_ports = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    per_switch = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    functions = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    domains = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    links = os.path.join(root, "bus/pci/devices")
    os.makedirs(links, exist_ok=True)
    count = {"functions": 0, "endpoints": 0}

    def add(path, bdf, vendor, device, class_code, cfg, bars=()):
        folder = os.path.join(root, "devices", *path)
        os.makedirs(folder, exist_ok=True)
        files = {
            "vendor": "0x%04x\n" % vendor,
            "device": "0x%04x\n" % device,
            "class": "0x%06x\n" % class_code,
            "dma_mask_bits": "64\n",
            "numa_node": "-1\n",
        }
        lines = []
        for i in range(13):
            bar = next((b for b in bars if b[0] == i), None)
            if bar:
                lines.append("0x%016x 0x%016x 0x%016x" % (bar[1], bar[1] + bar[2] - 1, 0x14220C))
            else:
                lines.append("0x%016x 0x%016x 0x%016x" % (0, 0, 0))
        files["resource"] = "\n".join(lines) + "\n"
        for name, text in files.items():
            with open(os.path.join(folder, name), "w") as f:
                f.write(text)
        with open(os.path.join(folder, "config"), "wb") as f:
            f.write(cfg)
        os.symlink("../../../devices/" + "/".join(path), os.path.join(links, bdf))
        count["functions"] += 1

    bar_base = 0x4000_0000_0000
    bar_size = 32 << 20
    for domain in range(domains):
        bar_base = machine(add, "%04x" % domain, root_ports, per_switch, functions, bar_base, bar_size, count)
    print("%s: %d functions, %d endpoints" % (root, count["functions"], count["endpoints"]))


main()

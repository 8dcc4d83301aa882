#!/usr/bin/env python3
"""Writes a YAML topology file (docs/topology.md) of N devices for the scaling rows.

  tree:  host bridge 0000:00:00.0, root ports 00:01.0, 00:01.1, ... each with up to 256 NIC
         functions (a 2 MiB 64-bit BAR each) on its own bus; N devices in all.
  chain: N bridges, each the parent of the next (the deepest tree a file can describe).

Usage: make-topology.py FILE [N [tree|chain]]
"""
import sys

if len(sys.argv) < 2:
    sys.exit(__doc__)
path = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
shape = sys.argv[3] if len(sys.argv) > 3 else "tree"


def bdf(bus, devfn, domain=0):
    return "%04x:%02x:%02x.%d" % (domain, bus, devfn >> 3, devfn & 7)


lines = ["# %d devices (%s), written by Benchmarks/scripts/make-topology.py" % (count, shape), "cpu: intel:0x6", "devices:"]
if shape == "chain":
    for i in range(count):
        parent = '"%s"' % bdf((i - 1) >> 8, (i - 1) & 0xFF) if i else "null"
        lines.append('  - {bdf: "%s", vendor: 0x10b5, device: 0x9781, class: 0x060400, parent: %s, port: downstream-port}'
                     % (bdf(i >> 8, i & 0xFF), parent))
elif shape == "tree":
    lines.append('  - {bdf: "%s", vendor: 0x8086, device: 0x2020, class: 0x060000}' % bdf(0, 0))
    written = 1
    port = 0
    bar = 0x4000_0000_0000
    while written < count:
        port += 1
        if port > 255:
            sys.exit("make-topology.py: at most about 65,000 devices in the tree shape")
        rp = bdf(0, port)
        lines.append('  - {bdf: "%s", vendor: 0x8086, device: 0x2030, class: 0x060400, port: root-port, acs: 0x0}' % rp)
        written += 1
        for fn in range(256):
            if written == count:
                break
            lines.append('  - {bdf: "%s", vendor: 0x15b3, device: 0x101d, class: 0x020000, parent: "%s", port: endpoint, '
                         'dmaMask: 64, bars: [{index: 0, start: 0x%x, size: 2MiB}]}' % (bdf(port, fn), rp, bar))
            bar += 2 << 20
            written += 1
else:
    sys.exit(__doc__)
with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
print("%s: %d devices (%s)" % (path, count, shape))

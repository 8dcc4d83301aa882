#!/usr/bin/env python3
"""Writes a `dmabuf simulate` scenario of N steps (10,000 by default) on the built-in machine:
rounds of attach, map, device access, unmap and detach, alternating a bus-address P2P importer
(the RDMA NIC under the GPU's switch, direct ops) and a through-the-host-bridge importer (the NIC
on another root port, IOMMU ops), with CPU writes and reads of the buffer between rounds.

Usage: make-scenario.py FILE [STEPS]
"""
import sys

if len(sys.argv) < 2:
    sys.exit(__doc__)
path = sys.argv[1]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
rounds = [
    ["attach: {importer: near, buffer: vram}",
     "map: {importer: near, buffer: vram, expect: {mapType: bus-address}}",
     "device-read: {importer: near, buffer: vram, offset: 0, length: 4KiB}",
     "unmap: {importer: near, buffer: vram}",
     "detach: {importer: near, buffer: vram}"],
    ["attach: {importer: far, buffer: vram}",
     "map: {importer: far, buffer: vram, expect: {mapType: through-host-bridge}}",
     "device-write: {importer: far, buffer: vram, offset: 8KiB, length: 4KiB, byte: 0xa5}",
     "unmap: {importer: far, buffer: vram}",
     "detach: {importer: far, buffer: vram}"],
    ["cpu-write: {buffer: vram, offset: 0, length: 4KiB, byte: 0x5a}",
     "cpu-read: {buffer: vram, offset: 0, length: 4KiB, expectByte: 0x5a}"],
]
lines = [
    'title: "Benchmark: %d steps of attach, map, access, unmap, detach"' % steps,
    "topology: builtin",
    "buffers:",
    '  - {name: vram, exporter: gpu-vram, device: "0000:03:00.0", size: 64KiB}',
    "importers:",
    '  - {name: near, device: "0000:04:00.0", kind: device, dynamic: true, allowPeerToPeer: true, ops: direct}',
    '  - {name: far, device: "0000:06:00.0", kind: device, dynamic: true, allowPeerToPeer: true, ops: iommu}',
    "steps:",
]
written = 0
r = 0
while written < steps:
    for step in rounds[r % len(rounds)]:
        if written == steps:
            break
        lines.append("  - " + step)
        written += 1
    r += 1
with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
print("%s: %d steps" % (path, written))

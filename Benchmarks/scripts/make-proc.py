#!/usr/bin/env python3
"""A /proc copy for the census row (issue [M] item 6): PROCS processes, each with FDS dma-buf fds
and a maps file of a busy process (60 ordinary lines and one dma-buf mapping in eight), the fds
drawn from a pool of shared buffers (each buffer held by about four processes), laid out as
`dma_buf_show_fdinfo` and `/proc/PID/maps` print them.

usage: make-proc.py DIR [PROCS] [FDS]
"""
import os
import sys

root = sys.argv[1]
procs = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
fds = int(sys.argv[3]) if len(sys.argv) > 3 else 64
pool = max(1, procs * fds // 4)
exporters = ["amdgpu", "system", "udmabuf", "drm"]
os.makedirs(root, exist_ok=True)
for p in range(procs):
    pid = 1000 + p
    base = os.path.join(root, str(pid))
    os.makedirs(os.path.join(base, "fd"))
    os.makedirs(os.path.join(base, "fdinfo"))
    with open(os.path.join(base, "comm"), "w") as f:
        f.write("worker%d\n" % p)
    maps = []
    for i in range(60):
        start = 0x7f0000000000 + i * 0x10000
        maps.append("%x-%x r-xp 00000000 08:01 %d /usr/lib/x86_64-linux-gnu/libfoo%d.so\n" % (start, start + 0x10000, 100000 + i, i))
    for n in range(fds):
        ino = (p * fds + n * 7) % pool + 1
        size = 4096 * (1 + ino % 64)
        fd = 3 + n
        os.symlink("/dmabuf:buf%d" % ino, os.path.join(base, "fd", str(fd)))
        with open(os.path.join(base, "fdinfo", str(fd)), "w") as f:
            f.write("pos:\t0\nflags:\t02000002\nmnt_id:\t12\nino:\t%d\nsize:\t%d\ncount:\t4\nexp_name:\t%s\nname:\tbuf%d\n"
                    % (ino, size, exporters[ino % 4], ino))
        if n % 8 == 0:
            start = 0x7e0000000000 + n * 0x100000
            maps.append("%x-%x rw-s 00000000 00:0c %d /dmabuf:buf%d\n" % (start, start + size, ino, ino))
    with open(os.path.join(base, "maps"), "w") as f:
        f.writelines(maps)

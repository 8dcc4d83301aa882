#!/usr/bin/env python3
"""Reads the percentiles that `swift package benchmark --format histogramPercentiles` wrote and
prints every row of BENCHMARKS.md with its ratio to the baseline measured in the same run.
Medians (p50) throughout. Exit code 0 whatever the goals say: a missed goal is a finding, reported.

Usage: report.py DIR [DIR ...]

With several folders (one per run, `BENCH_RUNS=N make bench`), each row is printed from the run
whose ratio is the median of the runs (the goal judged on that run), followed by every run's ratio.
"""
import glob
import os
import re
import sys

SEGMENTS = 262_144
SCALE = {"ns": 1, "us": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "K": 1e3, "M": 1e6, "G": 1e9}
PATTERN = re.compile(r"^[^.]*\.DMABufBenchmarks\.(.+)\.(\w+)\.histogram\.percentiles\.tsv$")


def load(folder):
    values = {}
    for path in glob.glob(os.path.join(folder, "*.histogram.percentiles.tsv")):
        m = PATTERN.match(os.path.basename(path))
        if not m:
            continue
        name, metric = m.group(1).replace("_", " "), m.group(2)
        with open(path) as f:
            lines = f.read().splitlines()
        # The header names the unit the tool scaled to: "(ns) *", "(K) *", "(M) *" or "*".
        unit = re.search(r"\((\w+)\) \*$", lines[0])
        scale = SCALE.get(unit.group(1), 1) if unit else 1
        rows = [line.split("\t") for line in lines[1:] if line]
        values[(name, metric)] = {int(p): float(v) * scale for p, v in rows}
    return values


def rows_for(v):
    """Every row of the table from one run's percentiles."""

    def p50(name, metric="wallClock"):
        key = (name, metric)
        return v[key][50] if key in v else None

    rows = []

    def row(what, value, baseline, ratio, goal, met):
        verdict = "" if met is None else ("met" if met else "missed")
        rows.append((what, value, baseline, ratio, goal, verdict))

    # 1. map + unmap, 262,144 x 4 KiB
    c = p50("C map+unmap 262144 segments")
    p2p = p50("Direct P2P map+unmap 262144 segments")
    host = p50("Direct host map+unmap 262144 segments")
    iommu = p50("IOMMU host map+unmap 262144 segments")
    if c and p2p:
        allocs = p50("Direct P2P map+unmap 262144 segments", "mallocCountTotal") or 0
        row("map+unmap 1 GiB as 262,144 x 4 KiB, bus-address P2P, direct ops",
            "%.2f ms (%.2f ns/seg), %d mallocs (%.5f/seg)" % (p2p / 1e6, p2p / SEGMENTS, allocs, allocs / SEGMENTS),
            "C: %.2f ms (%.2f ns/seg)" % (c / 1e6, c / SEGMENTS), "%.2fx" % (p2p / c), "<= 1.5x, 0 allocs/seg",
            p2p / c <= 1.5 and allocs / SEGMENTS < 0.01)
    if c and host:
        allocs = p50("Direct host map+unmap 262144 segments", "mallocCountTotal") or 0
        row("map+unmap 1 GiB as 262,144 x 4 KiB, host RAM, direct ops",
            "%.2f ms (%.2f ns/seg), %d mallocs (%.5f/seg)" % (host / 1e6, host / SEGMENTS, allocs, allocs / SEGMENTS),
            "C: %.2f ms" % (c / 1e6), "%.2fx" % (host / c), "(reported)", None)
    if iommu and host and p2p:
        allocs = p50("IOMMU host map+unmap 262144 segments", "mallocCountTotal") or 0
        row("map+unmap 1 GiB as 262,144 x 4 KiB, host RAM, IOMMU ops",
            "%.2f ms (%.1f ns/seg), %d mallocs (%.3f/seg)" % (iommu / 1e6, iommu / SEGMENTS, allocs, allocs / SEGMENTS),
            "direct host: %.2f ms; direct P2P: %.2f ms; C: %.2f ms" % (host / 1e6, p2p / 1e6, c / 1e6),
            "%.2fx direct host, %.1fx direct P2P, %.1fx C" % (iommu / host, iommu / p2p, iommu / c),
            "<= 5x direct", iommu / host <= 5)

    # 3. swiotlb
    for kib in (4, 16, 64, 256):
        # Both are timed over 1 MiB of back-to-back copies (Mapping.swift, copiesPerIteration).
        copies = 1024 // kib
        mc = p50("memcpy %d KiB" % kib)
        sync = p50("swiotlb sync %d KiB" % kib)
        mc = mc / copies if mc else mc
        sync = sync / copies if sync else sync
        mu = p50("swiotlb map+unmap %d KiB" % kib)
        if not (mc and sync and mu):
            continue
        gbs = lambda ns: kib * 1024 / ns  # bytes per ns = GB/s
        row("swiotlb bounce copy (sync) %d KiB" % kib, "%.2f GB/s (%.0f ns)" % (gbs(sync), sync),
            "memcpy: %.2f GB/s (%.0f ns)" % (gbs(mc), mc), "%.1f%% of memcpy" % (100 * mc / sync),
            ">= 80% of memcpy", mc / sync >= 0.8)
        row("swiotlb map+unmap %d KiB" % kib, "%.2f GB/s (%.0f ns)" % (gbs(mu), mu),
            "memcpy: %.2f GB/s" % gbs(mc), "%.1f%% of memcpy" % (100 * mc / mu), "(reported)", None)

    # 4. provider lookup
    look = {n: p50("provider lookup x1024 among %d BARs" % n) for n in (1000, 10000, 100000)}
    scan = {n: p50("linear scan x1024 among %d BARs" % n) for n in (1000, 10000, 100000)}
    for n in (1000, 10000, 100000):
        if look[n] and scan[n]:
            row("provider lookup among %d BARs" % n, "%.1f ns/lookup" % (look[n] / 1024),
                "linear scan (C): %.1f ns/lookup" % (scan[n] / 1024), "%.0fx faster" % (scan[n] / look[n]),
                "(reported)", None)
    if look[1000] and look[100000]:
        r = look[100000] / look[1000]
        row("provider lookup, 100k vs 1k BARs", "%.1f ns vs %.1f ns" % (look[100000] / 1024, look[1000] / 1024),
            "the 1k lookup", "%.2fx" % r, "<= 2x (O(log n))", r <= 2)

    # 5. sysfs
    load_ = p50("sysfs load 1024 endpoints")
    all_ = p50("sysfs load + every pair verdict 1024 endpoints")
    lspci = p50("lspci -t 1024 endpoints")
    if load_ and lspci:
        row("load the 1,024-endpoint sysfs copy", "%.1f ms" % (load_ / 1e6), "lspci -t: %.1f ms" % (lspci / 1e6),
            "%.2fx lspci" % (load_ / lspci), "faster than lspci", load_ < lspci)
    if all_ and lspci:
        row("load + all 1,048,576 pair verdicts", "%.1f ms (%.0f ns/pair after load)" % (all_ / 1e6, (all_ - (load_ or 0)) / 1024**2),
            "lspci -t: %.1f ms (computes no pair)" % (lspci / 1e6), "%.2fx lspci" % (all_ / lspci), "(reported)", None)
    big = p50("cached verdict x1024 1024-endpoint topology")
    small = p50("cached verdict x1024 built-in topology")
    if big and small:
        row("cached pair verdict, 1,169 vs 18 functions", "%.1f ns/query" % (big / 1024),
            "built-in (18 functions): %.1f ns/query" % (small / 1024), "%.2fx" % (big / small), "O(1): ~1x", big / small <= 2)

    # 6. simulate
    sim = p50("simulate 10000 steps")
    if sim:
        peak = p50("simulate 10000 steps", "peakMemoryResident")
        allocs = p50("simulate 10000 steps", "mallocCountTotal")
        row("dmabuf simulate, 10,000 steps (parse + run)",
            "%.0f ms, %.0f steps/s, peak RSS %.0f MB, %d mallocs" % (sim / 1e6, 10000 / (sim / 1e9), (peak or 0) / 1e6, allocs or 0),
            "-", "-", "report", None)

    # 7. scale (issue [O]): the large input's cost per item against the small one's, same run.
    for what, big, small, nb, ns, unit in [
        ("YAML topology load + export", "scale topology load+export 10000 devices", "scale topology load+export 1000 devices", 10000, 1000, "device"),
        ("sysfs load + export", "scale sysfs load+export 5115 functions", "scale sysfs load+export 1169 functions", 5115, 1169, "function"),
        ("simulate, parse only", "scale simulate parse 100000 steps", "scale simulate parse 10000 steps", 100000, 10000, "step"),
        ("simulate, parse + run", "scale simulate 100000 steps", "scale simulate 10000 steps", 100000, 10000, "step"),
        ("simulate, heap with a pattern read back", "scale simulate heap 6 GiB with a pattern", "scale simulate heap 64 MiB with a pattern", 96, 1, "64 MiB"),
    ]:
        b, s_ = p50(big), p50(small)
        if b and s_:
            peak = p50(big, "peakMemoryResident") or 0
            ratio = (b / nb) / (s_ / ns)
            row("%s, %s %ss" % (what, format(nb, ","), unit) if unit != "64 MiB" else "%s, 6 GiB" % what,
                "%.0f ms (%.2f us/%s), peak RSS %.0f MB" % (b / 1e6, b / nb / 1e3, unit, peak / 1e6),
                "%s %ss: %.0f ms" % (format(ns, ","), unit, s_ / 1e6) if unit != "64 MiB" else "64 MiB: %.0f ms" % (s_ / 1e6),
                "%.2fx per %s" % (ratio, unit), "<= 2x per item (near-linear)", ratio <= 2)
    vram = p50("scale simulate device read 32 GiB VRAM")
    if vram:
        row("simulate, device read of a 32 GiB VRAM buffer, checked", "%.0f ms, peak RSS %.0f MB" % (
            vram / 1e6, (p50("scale simulate device read 32 GiB VRAM", "peakMemoryResident") or 0) / 1e6), "-", "-", "completes", None)

    # 8. the census (issue [M]): dmabuf ls's read of a 2,000-process /proc copy against a C loop.
    census, c_census = p50("census 2000x64"), p50("C census 2000x64")
    if census and c_census:
        peak = p50("census 2000x64", "peakMemoryResident") or 0
        c_peak = p50("C census 2000x64", "peakMemoryResident") or 0
        row("dmabuf ls census, 2,000 processes x 64 dma-buf fds (/proc copy)",
            "%.0f ms, peak RSS %.0f MB" % (census / 1e6, peak / 1e6),
            "C: %.0f ms, peak RSS %.0f MB" % (c_census / 1e6, c_peak / 1e6), "%.2fx" % (census / c_census),
            "<= 1.5x, memory bounded", census / c_census <= 1.5)

    return rows


def first_number(text):
    m = re.search(r"[0-9]+(?:\.[0-9]+)?", text.replace(",", ""))
    return float(m.group(0)) if m else 0.0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    runs = []
    for folder in sys.argv[1:]:
        v = load(folder)
        if not v:
            sys.exit("report.py: no percentile files in %s" % folder)
        runs.append(rows_for(v))
    if len(runs) == 1:
        print("| what | measured (median) | baseline, same run | ratio | goal | |")
        print("|---|---|---|---|---|---|")
        for r in runs[0]:
            print("| " + " | ".join(r) + " |")
        return
    print("| what | measured (median run of %d) | baseline, same run | ratio (median run; every run) | goal | |" % len(runs))
    print("|---|---|---|---|---|---|")
    for what in [r[0] for r in runs[0]]:
        same = [r for rows in runs for r in rows if r[0] == what]
        # The median run: by the ratio where there is one, else by the measured value.
        key = (lambda r: first_number(r[3])) if same[0][3] != "-" else (lambda r: first_number(r[1]))
        ordered = sorted(same, key=key)
        median = ordered[(len(ordered) - 1) // 2]
        every = ", ".join(r[3].split(" ")[0] if r[3] != "-" else r[1].split(",")[0] for r in same)
        ratio = "%s (runs: %s)" % (median[3], every) if median[3] != "-" else "- (runs: %s)" % every
        print("| " + " | ".join((median[0], median[1], median[2], ratio, median[4], median[5])) + " |")


main()

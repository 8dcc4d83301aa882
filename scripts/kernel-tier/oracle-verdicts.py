#!/usr/bin/env python3
"""Turns one oracle guest's `dmabuf topo --verify --kprobe --json` report into verdicts.tsv (the
columns of the notes' runs, which KernelOracleTests reads) and prints its counts on one line:
pairs, agreeing, disagreeing, bus-address/through-host-bridge, refused. Exits 1 when the report is
missing, a pair disagrees or is inconclusive, or fewer pairs were asked than expected.

usage: oracle-verdicts.py VERIFY.json VERDICTS.tsv EXPECTED_PAIRS
"""
import json
import sys

report_path, tsv_path, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    with open(report_path) as f:
        report = json.load(f)
except (OSError, ValueError) as error:
    print(f"no report from the guest ({error})")
    sys.exit(1)
names = {"bus-address": "bus_addr", "through-host-bridge": "thru_host_bridge", "not-supported": "not_supported"}
outcomes = {"transferred": "ok", "bytes-wrong": "dma_lost", "refused": "refused_EINVAL", "failed": "failed"}
rows = []
for pair in report["pairs"]:
    kernel = pair["kernel"]
    kernel_type = kernel.get("kernelMapType")
    outcome = outcomes[kernel["result"]]
    if kernel["result"] == "refused" and kernel.get("errno") != "EINVAL":
        outcome = "refused_" + str(kernel.get("errno"))
    rows.append([pair["provider"], pair["client"], names.get(kernel_type, str(kernel_type)), outcome,
                 kernel.get("errno") or "0", str(kernel["result"] == "transferred"), names[pair["model"]],
                 pair["verdict"], " | ".join(kernel.get("kernelLog", [])) or "-"])
with open(tsv_path, "w") as f:
    f.write("provider\tclient\tkernel_map_type\toutcome\terrno\tbytes_correct\tmodel_map_type\tverdict\tdmesg_warning\n")
    for row in sorted(rows):
        f.write("\t".join(row) + "\n")
agree = sum(1 for r in rows if r[7] == "agree")
routed = sum(1 for r in rows if r[2] in ("bus_addr", "thru_host_bridge"))
bus = sum(1 for r in rows if r[2] == "bus_addr")
refused = sum(1 for r in rows if r[3].startswith("refused"))
print(f"{len(rows):6d} {agree:6d} {len(rows) - agree:9d} {bus:4d}/{routed - bus:<4d} {refused:6d}")
sys.exit(0 if rows and agree == len(rows) and len(rows) >= expected else 1)

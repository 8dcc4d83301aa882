#!/usr/bin/env python3
"""Holds one oracle guest's `dmabuf doctor --json` to what the guest's kernel did, and the host's
diagnosis of the guest's `--capture` to the guest's own. Prints one line; exits 1 on a failure.

usage: doctor-check.py GUEST_DOCTOR.json HOST_DOCTOR.json|- VERIFY.json RXE_EXPECTED(0|1)
(- when the guest made no capture)

- With CONFIG_PCI_P2PDMA=y (7.3): for every ordered pair of two different controllers that the
  kernel judged (`topo --verify`), the doctor says zero-copy exactly when the kernel's map type
  was bus address or through the host bridge.
- Without it (6.12): `topo --verify` found nothing to test because of the configuration, and every
  doctor pair of two NVMe controllers is `no`, its first reason the kernel configuration.
- Either way: a software RDMA device (rxe0 on dummy0), when the guest made one, is reported with no
  PCI parent and every pair with it as client is `no` (software-rdma); and the host's JSON for
  the capture equals the guest's.
"""
import json
import sys

guest_path, host_path, verify_path, rxe_expected = sys.argv[1:5]
problems = []


def load(path):
    """The JSON of a file, or None with the reason added to the problems."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        problems.append(f"{path}: unreadable ({error})")
        return None


guest, verify = load(guest_path), load(verify_path)
host = load(host_path) if host_path != "-" else None
if guest is None or verify is None:
    print("doctor: FAIL: " + " | ".join(problems))
    sys.exit(1)

pairs = {(p["provider"], p["client"]): p for p in guest["pairs"]}
p2pdma = guest["kernel"]["pciP2PDMA"]["value"]
summary = []
if p2pdma == "y":
    agree = disagree = 0
    for judged in verify["pairs"]:
        if judged["provider"] == judged["client"]:
            continue
        kernel_p2p = judged["kernel"].get("kernelMapType") in ("bus-address", "through-host-bridge")
        doctor = pairs.get((judged["provider"], judged["client"]))
        if doctor is None:
            problems.append(f"{judged['provider']} <- {judged['client']}: the doctor did not judge it")
            disagree += 1
        elif (doctor["verdict"] == "zero-copy") == kernel_p2p:
            agree += 1
        else:
            problems.append(f"{judged['provider']} <- {judged['client']}: kernel {judged['kernel'].get('kernelMapType')}, doctor {doctor['verdict']}")
            disagree += 1
    if agree == 0:
        problems.append("no pair compared")
    summary.append(f"{agree} pairs agree with the kernel, {disagree} disagree")
else:
    nothing = verify.get("nothingToTest") or ""
    if "CONFIG_PCI_P2PDMA" not in nothing:
        problems.append(f"topo --verify did not blame the configuration: {nothing!r}")
    nvme = {d["device"] for d in guest["devices"] if d["kind"] == "nvme"}
    judged = [p for p in guest["pairs"] if p["provider"] in nvme and p["client"] in nvme]
    wrong = [p for p in judged if p["verdict"] != "no" or p["reasons"][0]["code"] != "kernel-no-p2pdma"]
    if not judged:
        problems.append("no NVMe pair judged")
    problems += [f"{p['provider']} <- {p['client']}: {p['verdict']}, first reason {p['reasons'][0]['code']}" for p in wrong]
    summary.append(f"{len(judged) - len(wrong)} of {len(judged)} NVMe pairs no because of CONFIG_PCI_P2PDMA ({guest['kernel']['pciP2PDMA']['source']})")

software = [r["name"] for r in guest["rdma"] if r.get("pciParent") is None]
if software:
    to_software = [p for p in guest["pairs"] if p["client"] in software]
    bad = [p for p in to_software if p["verdict"] != "no" or p["reasons"][0]["code"] != "software-rdma"]
    problems += [f"{p['provider']} <- {p['client']}: {p['verdict']}" for p in bad]
    summary.append(f"{','.join(software)} (software RDMA) no for {len(to_software) - len(bad)} of {len(to_software)} providers")
elif rxe_expected == "1":
    problems.append("the guest made rxe0, but the doctor reported no software RDMA device")
else:
    summary.append("no software RDMA device asked for")

if host is not None:
    if host == guest:
        summary.append("capture on the host: same JSON")
    else:
        problems.append("the host's diagnosis of the capture differs from the guest's")

print("doctor: " + "; ".join(summary) + ("" if not problems else " -- FAIL: " + " | ".join(problems[:5])))
sys.exit(1 if problems else 0)

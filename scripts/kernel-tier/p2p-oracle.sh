#!/usr/bin/env bash
# The P2P oracle tier: the real Linux 7.3 kernel judges every ordered pair of NVMe controllers of
# one q35 guest whose controller memory buffers (16 MiB, BAR 2, published as p2pmem by the nvme
# driver) sit where the P2P rules differ: two functions under one switch port, different ports of
# one switch, a switch nested in a switch, different root ports, a multifunction device on a root
# port, the root bus, a conventional PCI bridge and a second host bridge (pxb-pcie). The guest is
# booted with an AMD Zen CPU (EPYC, family 0x17) and an Intel one (Skylake-Client), each without an
# IOMMU, with intel-iommu, and with intel-iommu plus iommu=pt; the Intel one once more with
# pci=disable_acs_redir=0000:00:12.0 (the doctor's remedy, applied). In each guest `dmabuf topo --verify
# --kprobe` compares the kernel's pci_p2pdma_map_type (a kprobe) and the transfer's outcome with
# the model computed from the guest's own /sys; the tier fails on any disagreement, on a guest that
# reports no pair, or when fewer pairs were asked than the topology has.
# Each run's tree, cpuinfo and verdicts land in OUT/RUN (the layout of
# Tests/PCITests/Fixtures/kernel-73, where KernelOracleTests reads them without booting).
#
# In every guest `dmabuf doctor --json` is held to the same verdicts (doctor-check.py), after a
# software RDMA device (rdma_rxe on a dummy link) is made; its --capture is diagnosed again on the
# host and must give the same JSON. A kernel without CONFIG_PCI_P2PDMA (6.12) boots one guest, in
# which every NVMe pair must be `no` because of the configuration.
#
# usage: p2p-oracle.sh KERNEL_ROOT RELEASE SELFTEST_BINARY OUT
# Environment: KTIER_ORACLE_RUNS (space-separated RUN names to boot; default all seven),
# KTIER_TIMEOUT (seconds per guest, default 300).
set -euo pipefail
root=$1 release=$2 binary=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
timeout_s=${KTIER_TIMEOUT:-300}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The topology: NAME BUS ADDR (a controller each; addr with .F is a function of a multifunction slot).
topology=(
  -device pcie-root-port,id=rp1,bus=pcie.0,addr=0x10,chassis=1,slot=1
  -device x3130-upstream,id=up1,bus=rp1
  -device xio3130-downstream,id=dn1,bus=up1,chassis=11,slot=0
  -device xio3130-downstream,id=dn2,bus=up1,chassis=12,slot=1
  -device xio3130-downstream,id=dn3,bus=up1,chassis=13,slot=2
  -device x3130-upstream,id=up2,bus=dn3
  -device xio3130-downstream,id=dn31,bus=up2,chassis=14,slot=0
  -device xio3130-downstream,id=dn32,bus=up2,chassis=15,slot=1
  -device pcie-root-port,id=rp2,bus=pcie.0,addr=0x11,chassis=2,slot=2
  -device pcie-root-port,id=rp3,bus=pcie.0,addr=0x12,chassis=3,slot=3
  -device pci-bridge,id=pb1,bus=pcie.0,addr=0x7,chassis_nr=7
  -device pxb-pcie,id=pxb1,bus_nr=0x40,bus=pcie.0,addr=0x8
  -device pcie-root-port,id=rp4,bus=pxb1,chassis=4,slot=4
)
controllers=(
  "dn1 0x0.0,multifunction=on" "dn1 0x0.1"
  "dn2 0x0"
  "dn31 0x0" "dn32 0x0"
  "rp2 0x0"
  "rp3 0x0.0,multifunction=on" "rp3 0x0.1"
  "pcie.0 0x5"
  "pb1 0x1"
  "rp4 0x0"
)
n=0
for controller in "${controllers[@]}"; do
  read -r bus addr <<< "$controller"
  # A small namespace with bytes of its own, so a transfer that lands wrong shows.
  python3 -c "import sys; sys.stdout.buffer.write(bytes((i * 7 + $n * 31 + 1) & 0xff for i in range(1 << 20)))" > "$work/nvme$n.img"
  topology+=(-drive "if=none,id=nvd$n,file=$work/nvme$n.img,format=raw"
    -device "nvme,serial=oracle$n,cmb_size_mb=16,drive=nvd$n,bus=$bus,addr=$addr")
  n=$((n + 1))
done
pairs_expected=$((n * n))

mkdir -p "$work/overlay/etc" "$work/overlay/bin"
echo "$n" > "$work/overlay/etc/nvme-count"
# iproute2's rdma tool (it adds a soft-RoCE device: rdma link add rxe0 type rxe netdev dummy0) with
# the shared libraries it needs, for the doctor's software RDMA check.
rxe=0
if command -v rdma > /dev/null; then
  rxe=1
  cp "$(command -v rdma)" "$work/overlay/bin/rdma"
  ldd "$(command -v rdma)" | awk '/=> \// { print $3 } /^\t\/lib64\// { print $1 }' | while read -r lib; do
    mkdir -p "$work/overlay$(dirname "$lib")" && cp -L "$lib" "$work/overlay$lib"
  done
fi
# Before 6.15 rdma_rxe asks the crypto API for "crc32" when a device is added (rxe_icrc_init), and
# without the algorithm's module loaded that fails with ENOENT (no modprobe in the guest); later
# kernels use the crc32 library and have no crc32_generic module.
crc=()
ls "$root/lib/modules/$release/kernel/crypto/crc32_generic.ko"* > /dev/null 2>&1 && crc=(crc32_generic)
KTIER_OVERLAY="$work/overlay" "$here/build-initramfs.sh" "$root" "$release" "$binary" "$work/initramfs.cpio" "$here/init-p2p" nvme rdma_rxe dummy "${crc[@]}"
# A kernel without CONFIG_PCI_P2PDMA (Debian's 6.12) publishes no p2pmem: its guest checks that the
# tools say so (topo --verify: nothing to test, because of the configuration; the doctor: every
# pair no, for that reason) instead of comparing map types.
p2pdma=1
grep -q '^CONFIG_PCI_P2PDMA=y' "$root/boot/config-$release" || p2pdma=0

all_runs="epyc-noiommu epyc-iommu epyc-iommu-pt skylake-noiommu skylake-iommu skylake-iommu-pt skylake-iommu-acs"
[ "$p2pdma" = 1 ] || all_runs="epyc-noiommu"
failures=0
printf '%-20s %-16s %-12s %6s %6s %9s %9s %6s\n' run cpu iommu pairs agree disagree bus/host refused
for run in ${KTIER_ORACLE_RUNS:-$all_runs}; do
  cpu_model=EPYC
  case "$run" in skylake-*) cpu_model=Skylake-Client ;; esac
  iommu_args=() append="console=ttyS0 quiet panic=-1 mitigations=off"
  case "$run" in
    *-iommu) iommu_args=(-device intel-iommu,intremap=off); append+=" intel_iommu=on iommu=nopt" ;;
    *-iommu-pt) iommu_args=(-device intel-iommu,intremap=off); append+=" intel_iommu=on iommu=pt" ;;
    # The remedy the doctor gives for the two functions below root port 00:12.0, applied.
    *-iommu-acs) iommu_args=(-device intel-iommu,intremap=off); append+=" intel_iommu=on iommu=nopt pci=disable_acs_redir=0000:00:12.0" ;;
  esac
  # One guest per kernel also prints the doctor in text and captures what it reads.
  if [ "$run" = skylake-iommu ] || [ "$p2pdma" = 0 ]; then append+=" ktier.doctor=full"; fi
  dest="$out/$run"
  rm -rf "$dest" && mkdir -p "$dest"
  log="$dest/guest.log"
  started=$(date +%s)
  set +e
  timeout "$timeout_s" qemu-system-x86_64 -machine q35 -accel tcg -cpu "$cpu_model" -smp 1 -m 1024 -nographic \
    -no-reboot -net none "${iommu_args[@]}" -kernel "$root/boot/vmlinuz-$release" -initrd "$work/initramfs.cpio" \
    -append "$append" "${topology[@]}" < /dev/null 2> "$dest/qemu.stderr" \
    | sed -f "$here/console.sed" > "$log"
  qemu_status=${PIPESTATUS[0]}
  set -e
  seconds=$(( $(date +%s) - started ))
  { echo "qemu-system-x86_64 -machine q35 -accel tcg -cpu $cpu_model -smp 1 -m 1024 -nographic -no-reboot -net none ${iommu_args[*]} -kernel vmlinuz-$release -initrd initramfs.cpio -append '$append' ${topology[*]}" | sed "s|$work/||g"; } > "$dest/qemu-cmd.txt"
  sed -n '/^P2P-JSON-BEGIN$/,/^P2P-JSON-END$/p' "$log" | sed '1d;$d' | base64 -d > "$dest/verify.json" 2>/dev/null || true
  sed -n '/^P2P-TREE-BEGIN$/,/^P2P-TREE-END$/p' "$log" | sed '1d;$d' | base64 -d 2>/dev/null | tar -xzf - -C "$dest" 2>/dev/null || true
  sed -n 's/^P2P-TEXT //p' "$log" > "$dest/transcript.txt"
  verify_status=$(sed -n 's/^P2P-VERIFY-EXIT \([0-9]*\) .*/\1/p' "$log" | tail -n1)
  if [ "$p2pdma" = 1 ]; then
    summary=$(python3 "$here/oracle-verdicts.py" "$dest/verify.json" "$dest/verdicts.tsv" "$pairs_expected" 2>&1) && ok=1 || ok=0
  else
    summary="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("nothingToTest") or "a report with pairs")' "$dest/verify.json" 2>&1 | cut -c1-90)..."
    ok=1
  fi
  # The doctor: its JSON from the guest, its capture diagnosed again here, both held to the kernel.
  sed -n '/^DOCTOR-JSON-BEGIN$/,/^DOCTOR-JSON-END$/p' "$log" | sed '1d;$d' | base64 -d 2>/dev/null | gunzip -c > "$dest/doctor.json" 2>/dev/null || true
  host_json=-
  if grep -q '^DOCTOR-CAPTURE-BEGIN$' "$log"; then
    rm -rf "$dest/doctor-capture" && mkdir -p "$dest/doctor-capture"
    sed -n '/^DOCTOR-CAPTURE-BEGIN$/,/^DOCTOR-CAPTURE-END$/p' "$log" | sed '1d;$d' | base64 -d 2>/dev/null | tar -xzf - -C "$dest/doctor-capture" 2>/dev/null || true
    host_json="$dest/doctor-host.json"
    "$binary" --cli doctor --json --root "$dest/doctor-capture" > "$host_json" 2> "$dest/doctor-host.err" || true
  fi
  doctor_summary=$(python3 "$here/doctor-check.py" "$dest/doctor.json" "$host_json" "$dest/verify.json" "$rxe" 2>&1) && doctor_ok=1 || doctor_ok=0
  iommu=${run#*-}
  printf '%-20s %-16s %-12s %s   (%s s, verify exit %s, qemu %s)\n' "$run" "$cpu_model" "$iommu" "$summary" "$seconds" "${verify_status:-none}" "$qemu_status"
  echo "  $doctor_summary"
  if [ "$ok" -ne 1 ] || [ "$doctor_ok" -ne 1 ] || [ "${verify_status:-x}" != 0 ] || [ ! -d "$dest/sys/bus/pci/devices" ]; then
    failures=$((failures + 1))
    echo "p2p-oracle: FAIL: $run (log $log)"
    grep -E '^(KTIER|P2P-ERR|P2P-VERIFY|DOCTOR-.*EXIT)' "$log" | head -20 >&2 || true
  fi
done
[ "$failures" -eq 0 ]

#!/usr/bin/env bash
# The kernel tier (make test-kernel): the real kernel as the judge, on Debian's 6.12 and 7.3.
#  1. installs what is missing (QEMU, busybox, cpio, xz, kmod, the libdrm and zlib headers);
#  2. fetches both kernels into the cache folder (fetch-kernel.sh), never installing them;
#  3. builds dmabuf-kernel-selftest as a fully static binary (its own scratch folder); it is also
#     the dmabuf tool (`--cli`) inside the guests;
#  4. story 7 on each kernel: packs the binary with busybox and the DRM modules into an initramfs
#     (build-initramfs.sh), boots it under QEMU with software emulation (TCG; KVM is not used), a
#     virtio-gpu device and no network, and parses the guest's KTEST lines (check-results.sh): a
#     series fails when a check fails, when an expected check is missing, or when the guest never
#     reports. The checks assert what differs between the two kernels (config facts);
#  5. the P2P oracle on 7.3 (p2p-oracle.sh): seven guests in which the kernel judges every pair of
#     NVMe controller memory buffers and the model must agree on every one;
#     In each, `dmabuf doctor --json` must agree with the kernel pair by pair, judge a software
#     RDMA device (rdma_rxe on a dummy link) `no`, and give the same JSON from its --capture on
#     the host; one more guest on 6.12 (no CONFIG_PCI_P2PDMA) must find every NVMe pair `no`;
#  6. the VFIO guest on 7.3 (vfio.sh): VFIO_DEVICE_FEATURE_DMA_BUF's errno for a table of range
#     sets against the model's VFIO exporter.
# Environment: KTIER_DIR (cache, default .build-kernel), KTIER_TIMEOUT (seconds per guest, default
# 600), KTIER_KERNELS (default "6.12 7.3"), KTIER_ORACLE (0 skips step 5), KTIER_ORACLE_RUNS, KTIER_VFIO (0 skips step 6),
# SWIFT (default swift).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=scripts/kernel-tier
cache=${KTIER_DIR:-.build-kernel}
timeout_s=${KTIER_TIMEOUT:-600}
swift=${SWIFT:-swift}
started=$(date +%s)
stamp() { echo "kernel-tier: [$(( $(date +%s) - started )) s] $*"; }
# Prints a check-results.sh output file (its lines tagged [TAG], then its closing line followed
# by NOTE) and adds the closing line ("kernel-tier: N passed, M failed") to the totals.
tally() {
  local tag=$1 file=$2 note=$3 closing
  sed -e '$d' -e "s/^/[$tag] /" "$file"
  closing=$(tail -n 1 "$file")
  echo "$closing$note"
  total_passed=$((total_passed + $(echo "$closing" | sed -n 's/.*: \([0-9]*\) passed.*/\1/p')))
  total_failed=$((total_failed + $(echo "$closing" | sed -n 's/.*, \([0-9]*\) failed.*/\1/p')))
}

"$here/test-console-sed.sh"
scripts/ensure-packages.sh qemu-system-x86 busybox-static cpio xz-utils kmod libdrm-dev zlib1g-dev python3
mkdir -p "$cache"

declare -A releases
for series in ${KTIER_KERNELS:-6.12 7.3}; do
  releases[$series]=$("$here/fetch-kernel.sh" "$cache" "$series")
  stamp "kernel $series: ${releases[$series]}"
done

"$swift" build -c release --scratch-path .build-static -Xswiftc -static-executable --product dmabuf-kernel-selftest
bin_dir=$("$swift" build -c release --scratch-path .build-static -Xswiftc -static-executable --show-bin-path)
strip -o "$cache/dmabuf-kernel-selftest" "$bin_dir/dmabuf-kernel-selftest"
stamp "static self-test built ($(du -m "$cache/dmabuf-kernel-selftest" | cut -f1) MiB stripped)"

total_passed=0 total_failed=0 status=0
for series in ${KTIER_KERNELS:-6.12 7.3}; do
  release=${releases[$series]}
  root="$cache/kernel-$series/root"
  "$here/build-initramfs.sh" "$root" "$release" "$cache/dmabuf-kernel-selftest" "$cache/initramfs-$series.cpio"
  log="$cache/guest-$series.log"
  boot_started=$(date +%s)
  set +e
  timeout "$timeout_s" qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot -net none \
    -device virtio-gpu-pci -kernel "$root/boot/vmlinuz-$release" -initrd "$cache/initramfs-$series.cpio" \
    -append "console=ttyS0 quiet panic=-1" < /dev/null \
    | sed -f "$here/console.sed" > "$log"
  qemu_status=${PIPESTATUS[0]}
  set -e
  stamp "story 7 on $release: guest ran $(( $(date +%s) - boot_started )) s (qemu status $qemu_status; log $log)"
  [ "$qemu_status" -eq 124 ] && echo "kernel-tier: the $series guest did not finish within $timeout_s s" >&2
  set +e
  "$here/check-results.sh" "$log" "$here/expected-checks.txt" > "$cache/results-$series.txt"
  series_status=$?
  set -e
  tally "$series" "$cache/results-$series.txt" " ($release)"
  [ "$series_status" -eq 0 ] || status=1
done

if [ "${KTIER_ORACLE:-1}" != 0 ] && [ -n "${releases[7.3]:-}" ]; then
  oracle_started=$(date +%s)
  set +e
  KTIER_TIMEOUT=${KTIER_ORACLE_TIMEOUT:-300} "$here/p2p-oracle.sh" "$cache/kernel-7.3/root" "${releases[7.3]}" \
    "$cache/dmabuf-kernel-selftest" "$cache/p2p-oracle" | tee "$cache/p2p-oracle.txt"
  oracle_status=${PIPESTATUS[0]}
  set -e
  runs=$(grep -cE '^(epyc|skylake)-' "$cache/p2p-oracle.txt" || true)
  bad=$(grep -c 'p2p-oracle: FAIL' "$cache/p2p-oracle.txt" || true)
  stamp "P2P oracle: $runs guests in $(( $(date +%s) - oracle_started )) s (trees and verdicts in $cache/p2p-oracle)"
  if [ "$oracle_status" -ne 0 ]; then
    status=1
    [ "$bad" -gt 0 ] || bad=1
  fi
  total_passed=$((total_passed + runs - bad))
  total_failed=$((total_failed + bad))
fi
# The doctor on 6.12: one guest of the oracle's topology on a kernel without CONFIG_PCI_P2PDMA.
if [ "${KTIER_ORACLE:-1}" != 0 ] && [ -n "${releases[6.12]:-}" ]; then
  doctor_started=$(date +%s)
  set +e
  KTIER_ORACLE_RUNS=epyc-noiommu KTIER_TIMEOUT=${KTIER_ORACLE_TIMEOUT:-300} "$here/p2p-oracle.sh" "$cache/kernel-6.12/root" \
    "${releases[6.12]}" "$cache/dmabuf-kernel-selftest" "$cache/p2p-oracle-6.12" | tee "$cache/p2p-oracle-6.12.txt"
  doctor_status=${PIPESTATUS[0]}
  set -e
  stamp "doctor on ${releases[6.12]}: 1 guest in $(( $(date +%s) - doctor_started )) s (in $cache/p2p-oracle-6.12)"
  if [ "$doctor_status" -eq 0 ]; then total_passed=$((total_passed + 1)); else total_failed=$((total_failed + 1)); status=1; fi
fi
if [ "${KTIER_VFIO:-1}" != 0 ] && [ -n "${releases[7.3]:-}" ]; then
  vfio_started=$(date +%s)
  set +e
  KTIER_TIMEOUT=${KTIER_ORACLE_TIMEOUT:-300} "$here/vfio.sh" "$cache/kernel-7.3/root" "${releases[7.3]}" \
    "$cache/dmabuf-kernel-selftest" "$cache/vfio" > "$cache/vfio.txt"
  vfio_status=$?
  set -e
  tally vfio "$cache/vfio.txt" " (VFIO guest and table in $(( $(date +%s) - vfio_started )) s, rows in $cache/vfio/vfio-table.txt)"
  [ "$vfio_status" -eq 0 ] || status=1
fi
stamp "done"
# The closing line: kernel-tier: N passed, M failed.
echo "kernel-tier: $total_passed passed, $total_failed failed"
exit "$status"

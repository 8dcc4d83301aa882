#!/usr/bin/env bash
# The kernel tier (make test-kernel): story 7 of docs/DESIGN.md on a real Linux kernel.
#  1. installs what is missing (QEMU, busybox, cpio, xz, kmod, the libdrm and zlib headers);
#  2. fetches a Debian 6.12 kernel into the cache folder (fetch-kernel.sh), never installing it;
#  3. builds dmabuf-kernel-selftest as a fully static binary (its own scratch folder);
#  4. packs it with busybox and the DRM modules into an initramfs (build-initramfs.sh);
#  5. boots it under QEMU with software emulation (TCG; KVM is not used), a virtio-gpu device and
#     no network, and parses the guest's KTEST lines (check-results.sh): the target fails when a
#     check fails, when an expected check is missing, or when the guest never reports.
# Environment: KTIER_DIR (cache, default .build-kernel), KTIER_TIMEOUT (seconds for the guest,
# default 600), SWIFT (default swift).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=scripts/kernel-tier
cache=${KTIER_DIR:-.build-kernel}
timeout_s=${KTIER_TIMEOUT:-600}
swift=${SWIFT:-swift}
started=$(date +%s)
stamp() { echo "kernel-tier: [$(( $(date +%s) - started )) s] $*"; }

scripts/ensure-packages.sh qemu-system-x86 busybox-static cpio xz-utils kmod libdrm-dev zlib1g-dev
mkdir -p "$cache"

release=$("$here/fetch-kernel.sh" "$cache")
root="$cache/kernel/root"
stamp "kernel $release"

"$swift" build -c release --scratch-path .build-static -Xswiftc -static-executable --product dmabuf-kernel-selftest
bin_dir=$("$swift" build -c release --scratch-path .build-static -Xswiftc -static-executable --show-bin-path)
strip -o "$cache/dmabuf-kernel-selftest" "$bin_dir/dmabuf-kernel-selftest"
stamp "static self-test built ($(du -m "$cache/dmabuf-kernel-selftest" | cut -f1) MiB stripped)"

"$here/build-initramfs.sh" "$root" "$release" "$cache/dmabuf-kernel-selftest" "$cache/initramfs.cpio"
stamp "initramfs packed"

log="$cache/guest.log"
boot_started=$(date +%s)
set +e
timeout "$timeout_s" qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot -net none \
  -device virtio-gpu-pci -kernel "$root/boot/vmlinuz-$release" -initrd "$cache/initramfs.cpio" \
  -append "console=ttyS0 quiet panic=-1" < /dev/null \
  | sed -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' > "$log"
qemu_status=${PIPESTATUS[0]}
set -e
stamp "guest ran $(( $(date +%s) - boot_started )) s (qemu status $qemu_status; log $log)"
if [ "$qemu_status" -eq 124 ]; then
  echo "kernel-tier: the guest did not finish within $timeout_s s" >&2
fi
set +e
"$here/check-results.sh" "$log" "$here/expected-checks.txt" > "$cache/results.txt"
status=$?
set -e
head -n -1 "$cache/results.txt"
stamp "done"
# The closing line: kernel-tier: N passed, M failed.
tail -n 1 "$cache/results.txt"
exit "$status"

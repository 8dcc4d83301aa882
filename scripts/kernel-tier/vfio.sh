#!/usr/bin/env bash
# The VFIO tier: Linux 7.3 with QEMU's intel-iommu and one NVMe controller with a 16 MiB controller
# memory buffer (BAR 2) at 00:04.0 and an e1000e (BAR 2: I/O ports) at 00:05.0, bound to vfio-pci in
# the guest. For each row of a table of good
# and bad range sets (Sources/KernelSelfTest/VFIOChecks.swift) the real VFIO_DEVICE_FEATURE_DMA_BUF
# errno must equal the model's VFIOBARExporter's; a vgem import of a real export must be refused as
# the model refuses a static importer. Writes OUT/vfio-table.txt (name | input | kernel | model)
# and OUT/guest-vfio.log; the closing line is check-results.sh's.
#
# usage: vfio.sh KERNEL_ROOT RELEASE SELFTEST_BINARY OUT
set -euo pipefail
root=$1 release=$2 binary=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
timeout_s=${KTIER_TIMEOUT:-300}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/build-initramfs.sh" "$root" "$release" "$binary" "$work/initramfs.cpio" "$here/init-vfio" vfio-pci vfio_iommu_type1 vgem
python3 -c "import sys; sys.stdout.buffer.write(bytes(1 << 20))" > "$work/nvme.img"
log="$out/guest-vfio.log"
set +e
timeout "$timeout_s" qemu-system-x86_64 -machine q35 -accel tcg -cpu Skylake-Client -smp 1 -m 1024 -nographic -no-reboot \
  -net none -device intel-iommu,intremap=off -kernel "$root/boot/vmlinuz-$release" -initrd "$work/initramfs.cpio" \
  -append "console=ttyS0 quiet panic=-1 mitigations=off intel_iommu=on" \
  -drive "if=none,id=nvd0,file=$work/nvme.img,format=raw" -device nvme,serial=vfio0,cmb_size_mb=16,drive=nvd0,addr=0x4 \
  -device e1000e,addr=0x5,romfile= \
  < /dev/null 2> "$out/qemu-vfio.stderr" | sed -f "$here/console.sed" > "$log"
set -e
sed -n 's/^VFIO-ROW //p' "$log" > "$out/vfio-table.txt"
"$here/check-results.sh" "$log" "$here/expected-checks-vfio.txt"

#!/usr/bin/env bash
# Packs the kernel tier's initramfs: busybox, the static self-test binary, the kernel's config and
# the DRM modules it needs (vgem, virtio-gpu and their dependencies, decompressed from .ko.xz so
# busybox insmod can load them, in the order modprobe --show-depends gives) as an uncompressed
# newc cpio (faster to unpack under software emulation than gzip).
#
# usage: build-initramfs.sh KERNEL_ROOT RELEASE SELFTEST_BINARY OUTPUT.cpio [INIT [MODULE...]]
#   INIT defaults to this folder's `init` (story 7), the modules to vgem and virtio-gpu. Files in
#   the folder KTIER_OVERLAY, when set, are copied over the tree last.
set -euo pipefail
root=$1 release=$2 binary=$3 output=$4
init=${5:-}
modules=("${@:6}")
[ ${#modules[@]} -gt 0 ] || modules=(vgem virtio-gpu)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/dev" "$work/proc" "$work/sys" "$work/tmp" "$work/boot" "$work/lib/modules"
cp /bin/busybox "$work/bin/busybox"
cp "$binary" "$work/bin/dmabuf-kernel-selftest"
cp "$root/boot/config-$release" "$work/boot/"
cp "${init:-$here/init}" "$work/init"
chmod 755 "$work/init" "$work/bin/busybox" "$work/bin/dmabuf-kernel-selftest"
# Built-in modules (virtio_pci, udmabuf, the heaps on 6.12) print "builtin NAME" and need nothing.
modprobe -d "$root" -S "$release" --show-depends -a "${modules[@]}" \
  | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' > "$work/modules.list"
[ -s "$work/modules.list" ] || { echo "build-initramfs: modprobe found no modules for ${modules[*]}" >&2; exit 1; }
while read -r path; do
  name=$(basename "$path")
  case "$name" in
    *.ko.xz) xz -dc "$path" > "$work/lib/modules/${name%.xz}"; name=${name%.xz} ;;
    *.ko.zst) zstd -dcq "$path" > "$work/lib/modules/${name%.zst}"; name=${name%.zst} ;;
    *) cp "$path" "$work/lib/modules/$name" ;;
  esac
  echo "$name" >> "$work/lib/modules/order"
done < "$work/modules.list"
rm "$work/modules.list"
[ -n "${KTIER_OVERLAY:-}" ] && cp -r "$KTIER_OVERLAY/." "$work/"
(cd "$work" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$output"
echo "build-initramfs: $(tr '\n' ' ' < "$work/lib/modules/order")-> $output ($(du -m "$output" | cut -f1) MiB)" >&2

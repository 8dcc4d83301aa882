#!/usr/bin/env bash
# Fetches a Debian kernel of one series into CACHE/kernel-SERIES, without installing it: apt-get
# download through a private APT_CONFIG that names this machine's own Debian mirror with the
# suites that carry the series, then dpkg-deb -x, a `lib -> usr/lib` link and depmod.
#   6.12: vgem, virtio-gpu, udmabuf, the system heap; no PCI_P2PDMA, no DMABUF_MOVE_NOTIFY
#         (bookworm-backports, or trixie).
#   7.3:  the same plus PCI_P2PDMA, VFIO_PCI_DMABUF, rdma_rxe; the MOVE_NOTIFY symbol is gone
#         (always on since 7.1) (trixie-backports). Debian splits this image: linux-image-* is a
#         metapackage over linux-binary-* (vmlinuz), linux-modules-* and linux-base-* (config).
# Prints the kernel release (for example 7.3.4+deb13-amd64). Reruns reuse the cache.
#
# usage: fetch-kernel.sh CACHE SERIES
set -euo pipefail
cache=$(mkdir -p "$1" && cd "$1" && pwd)
series=${2:?usage: fetch-kernel.sh CACHE SERIES (6.12 or 7.3)}
dest="$cache/kernel-$series"
root="$dest/root"
if [ -f "$dest/release" ] && [ -d "$root/lib/modules/$(cat "$dest/release")" ]; then
  cat "$dest/release"
  exit 0
fi

# The host's Debian mirror: the first URI of a deb source whose suites name the host's codename.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror=$(awk -v c="$codename" '
    /^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == c) ok = 1 }
    /^$/ { if (ok && uri != "") { print uri; exit } ; uri = ""; ok = 0 }
    END { if (ok && uri != "") print uri }' "$f" | head -n1)
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk -v c="$codename" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { if ($(i+1) == c) { print $i; exit } ; break } }' /etc/apt/sources.list | head -n1)
fi
mirror=${mirror:-http://deb.debian.org/debian}

case "$series" in
  6.12) suites=("bookworm-backports" "trixie"); [ "$codename" = "trixie" ] && suites=("trixie") ;;
  7.3) suites=("trixie-backports") ;;
  *) echo "fetch-kernel: unknown series $series (6.12 or 7.3)" >&2; exit 2 ;;
esac
pattern="^linux-image-${series//./\\.}\\.[0-9]+\\+deb[0-9]+-amd64\$"
apt_dir="$cache/apt"
for suite in "${suites[@]}"; do
  rm -rf "$apt_dir"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d" "$apt_dir/preferences.d"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" > "$apt_dir/sources.list"
  cat > "$apt_dir/apt.conf" <<CONF
Dir::Etc::SourceList "$apt_dir/sources.list";
Dir::Etc::SourceParts "$apt_dir/sources.list.d";
Dir::Etc::PreferencesParts "$apt_dir/preferences.d";
Dir::State::Lists "$apt_dir/lists";
Dir::Cache "$apt_dir/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Sandbox::User "root";
CONF
  export APT_CONFIG="$apt_dir/apt.conf"
  if ! apt-get update -qq >&2; then
    echo "fetch-kernel: apt-get update for $suite failed" >&2
    continue
  fi
  # The newest image of the series in the suite (the unsigned amd64 flavour, as linux-image-amd64 pulls).
  pkg=$(apt-cache pkgnames linux-image-"$series" 2>/dev/null | grep -E "$pattern" | sort -V | tail -n1 || true)
  if [ -z "$pkg" ]; then
    echo "fetch-kernel: no linux-image-$series.*-amd64 in $suite" >&2
    continue
  fi
  release=${pkg#linux-image-}
  # A split image names its parts; a whole one is the one package.
  parts=("$pkg")
  if apt-cache show "linux-binary-$release" >/dev/null 2>&1; then
    parts=("linux-binary-$release" "linux-modules-$release")
    apt-cache show "linux-base-$release" >/dev/null 2>&1 && parts+=("linux-base-$release")
  fi
  echo "fetch-kernel: ${parts[*]} from $mirror $suite" >&2
  rm -rf "$dest" && mkdir -p "$dest/deb"
  (cd "$dest/deb" && apt-get download -qq "${parts[@]}" >&2)
  for deb in "$dest/deb/"*.deb; do dpkg-deb -x "$deb" "$root"; done
  # The packages have usr/lib/modules and no modules.dep: link lib and let depmod write them.
  [ -e "$root/lib" ] || ln -s usr/lib "$root/lib"
  # A split image keeps vmlinuz and config beside the modules; give them the classic names.
  mkdir -p "$root/boot"
  [ -e "$root/boot/vmlinuz-$release" ] || ln -s "../usr/lib/modules/$release/vmlinuz" "$root/boot/vmlinuz-$release"
  if [ ! -e "$root/boot/config-$release" ]; then
    config=$(find "$root" -name "config-$release" -o -path "*/modules/$release/config" | head -n1)
    [ -n "$config" ] && cp "$config" "$root/boot/config-$release"
  fi
  [ -e "$root/boot/vmlinuz-$release" ] && [ -e "$root/boot/config-$release" ] || {
    echo "fetch-kernel: $pkg has no vmlinuz or config where expected" >&2; exit 1; }
  depmod -b "$root" "$release"
  rm -rf "$dest/deb"
  echo "$release" > "$dest/release"
  unset APT_CONFIG
  echo "$release"
  exit 0
done
echo "fetch-kernel: could not fetch a $series kernel from $mirror (${suites[*]})" >&2
exit 1

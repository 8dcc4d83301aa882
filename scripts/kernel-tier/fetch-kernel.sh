#!/usr/bin/env bash
# Fetches a Debian 6.12 kernel package (it has vgem, virtio-gpu, udmabuf and the system dma-heap;
# Debian 12's own 6.1 has no udmabuf and no heaps) into CACHE/kernel, without installing it:
# apt-get download through a private APT_CONFIG that names this machine's own Debian mirror with
# the suite bookworm-backports (trixie when that fails or the host is trixie), then dpkg-deb -x.
# Prints the kernel release (for example 6.12.95+deb12-amd64). Reruns reuse the cache.
#
# usage: fetch-kernel.sh CACHE
set -euo pipefail
cache=$(mkdir -p "$1" && cd "$1" && pwd)
root="$cache/kernel/root"
if [ -f "$cache/kernel/release" ] && [ -d "$root/lib/modules/$(cat "$cache/kernel/release")" ]; then
  cat "$cache/kernel/release"
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

suites=("bookworm-backports" "trixie")
[ "$codename" = "trixie" ] && suites=("trixie")
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
  # The newest 6.12 image of the suite (the unsigned amd64 flavour, as linux-image-amd64 pulls).
  pkg=$(apt-cache pkgnames linux-image-6.12 2>/dev/null | grep -E '^linux-image-6\.12\.[0-9]+\+deb[0-9]+-amd64$' | sort -V | tail -n1 || true)
  if [ -z "$pkg" ]; then
    echo "fetch-kernel: no linux-image-6.12.*-amd64 in $suite" >&2
    continue
  fi
  echo "fetch-kernel: $pkg from $mirror $suite" >&2
  rm -rf "$cache/kernel" && mkdir -p "$cache/kernel/deb"
  (cd "$cache/kernel/deb" && apt-get download -qq "$pkg" >&2)
  dpkg-deb -x "$cache/kernel/deb/"*.deb "$root"
  release=${pkg#linux-image-}
  # The package has usr/lib/modules and no modules.dep: link lib and let depmod write them.
  [ -e "$root/lib" ] || ln -s usr/lib "$root/lib"
  depmod -b "$root" "$release"
  rm -rf "$cache/kernel/deb"
  echo "$release" > "$cache/kernel/release"
  unset APT_CONFIG
  echo "$release"
  exit 0
done
echo "fetch-kernel: could not fetch a 6.12 kernel from $mirror (${suites[*]})" >&2
exit 1

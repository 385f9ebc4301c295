#!/usr/bin/env bash
# Fetches Debian's arm64 kernel (the one QEMU boots in `make e2e`, and whose virtio
# modules go into the QEMU initramfs) without installing it, and caches it:
#   build/kernel/vmlinuz        the kernel (an uncompressed arm64 Image, as QEMU -kernel wants)
#   build/kernel/modules/       its lib/modules/<version> (the .ko files, modules.builtin;
#                               no modules.dep: depmod runs at install, initramfs/kmod reads .modinfo)
#   build/kernel/package        the Debian package name and version it came from
# Needs root the first time (dpkg --add-architecture arm64, apt-get update).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/kernel
mkdir -p build
# Tests of several packages may call this at once: one fetches, the others wait.
exec 9>build/kernel.lock
flock 9
if [ -s "$out/package" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/modules/modules.order" ]; then
  echo "kernel: cached $(cat "$out/package")"
  exit 0
fi

SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
fi
pkg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
  $SUDO apt-get update -qq
  pkg=$(apt-cache depends linux-image-arm64:arm64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$pkg" ] || { echo "kernel: no linux-image-*-arm64 package found" >&2; exit 1; }

tmp=$(mktemp -d build/kernel.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
echo "kernel: apt-get download $pkg"
chmod 755 "$tmp"
(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg")
deb=$(ls "$tmp"/*.deb)
dpkg-deb -x "$deb" "$tmp/root"
kver=$(ls "$tmp/root/lib/modules")
rm -rf "$out"
mkdir -p "$out"
mv "$tmp/root/boot/vmlinuz-$kver" "$out/vmlinuz"
mv "$tmp/root/lib/modules/$kver" "$out/modules"
echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version) $kver" > "$out/package"
echo "kernel: $(cat "$out/package")"

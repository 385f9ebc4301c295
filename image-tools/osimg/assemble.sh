#!/usr/bin/env bash
# Assembles a Raspberry Pi OS-shaped master image from a root file system that
# mmdebstrap made (image-tools/osimg, docs/osimg.md). Run by osimg.Build as root, with:
#   ROOTFS_TAR   the mmdebstrap tarball (Debian bookworm arm64)
#   FLAVOUR      firstrun | cloud-init
#   KVER         the kernel version whose modules are in MODULES
#   MODULES      a directory holding lib/modules/$KVER (the subset the OS needs)
#   INITRD       a directory with the initrd's files (init, modules/), packed here
#   DISK_ID      the MBR disk signature, 8 hex digits (PARTUUID=$DISK_ID-0N)
#   OUT          the directory to write master.img and initrd.img into
# Nothing here runs inside the chroot except useradd and depmod (under qemu-user).
set -euo pipefail
: "${ROOTFS_TAR:?}" "${FLAVOUR:?}" "${KVER:?}" "${MODULES:?}" "${INITRD:?}" "${DISK_ID:?}" "${OUT:?}"
work=$(mktemp -d "$OUT/assemble.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root boot=$work/boot
mkdir -p "$root" "$boot"
tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$ROOTFS_TAR" -C "$root"

# Kernel modules from Debian's arm64 kernel package, indexed by the image's own depmod.
cp -a "$MODULES/lib/modules" "$root/usr/lib/"
chroot "$root" /sbin/depmod -a "$KVER"

# As Raspberry Pi OS: hostname raspberrypi on the 127.0.1.1 line, bootfs at
# /boot/firmware, the first user (uid 1000) a sudoer without password, eth0 kept as
# eth0 (no predictable interface names), SSH on.
echo raspberrypi >"$root/etc/hostname"
cat >"$root/etc/hosts" <<HOSTS
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters

127.0.1.1	raspberrypi
HOSTS
mkdir -p "$root/boot/firmware"
cat >"$root/etc/fstab" <<FSTAB
proc            /proc           proc    defaults          0       0
PARTUUID=$DISK_ID-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=$DISK_ID-02  /               ext4    defaults,noatime  0       1
FSTAB
chroot "$root" /usr/sbin/useradd -m -u 1000 -U -G sudo,adm -s /bin/bash pi
echo 'pi ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/010_pi-nopasswd"
chmod 440 "$root/etc/sudoers.d/010_pi-nopasswd"
mkdir -p "$root/etc/systemd/network" "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /dev/null "$root/etc/systemd/network/99-default.link"
cat >"$root/etc/systemd/network/20-wired.network" <<NET
[Match]
Name=eth0

[Network]
DHCP=ipv4
NET
ln -sf /usr/lib/systemd/system/systemd-networkd.service \
  "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
# No clock to wait for, no network time to ask for (the test network has no way out).
rm -f "$root/etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service"

# The boot partition: what the Pi 5 firmware reads, and the first-boot files of the flavour.
cat >"$boot/config.txt" <<CFG
# Raspberry Pi 5 (rpi-deploy osimg)
arm_64bit=1
kernel=kernel_2712.img
auto_initramfs=1
disable_overscan=1
enable_uart=1

[all]
CFG
echo "console=serial0,115200 console=tty1 root=PARTUUID=$DISK_ID-02 rootfstype=ext4 fsck.repair=yes rootwait" >"$boot/cmdline.txt"
case $FLAVOUR in
firstrun) ;;
cloud-init)
  # As the Raspberry Pi OS (Trixie) build: defaults on the boot partition that Imager
  # (or the agent) replaces, and cloud-init told to take NoCloud from the partition
  # labelled bootfs, never to probe a cloud, and to leave the network to networkd.
  cat >"$boot/meta-data" <<MD
dsmode: local
instance-id: rpios-image
MD
  printf '#cloud-config\n# Raspberry Pi OS default: replaced at first boot customisation\n' >"$boot/user-data"
  cat >"$boot/network-config" <<NC
network:
  version: 2
  ethernets:
    eth0:
      dhcp4: true
      optional: true
NC
  cat >"$root/etc/cloud/cloud.cfg.d/99_rpi-deploy.cfg" <<CC
# rpi-deploy osimg: the NoCloud seed is the boot partition (label bootfs)
datasource_list: [ NoCloud, None ]
datasource:
  NoCloud:
    fs_label: bootfs
network:
  config: disabled
# No locales package here (Raspberry Pi OS has one): update-locale would fail.
locale: false
system_info:
  default_user:
    name: pi
CC
  ;;
*) echo "assemble: unknown flavour $FLAVOUR" >&2; exit 2 ;;
esac

# The disk: MBR, p1 FAT32 bootfs at 8 MiB, p2 ext4 rootfs sized to its content + 25 % + 64 MiB.
mib=$((1024 * 1024))
boot_size=$((64 * mib))
used=$(du -s --block-size=1 "$root" | cut -f1)
root_size=$(( (used * 5 / 4 + 64 * mib + 4 * mib - 1) / (4 * mib) * (4 * mib) ))
img=$work/master.img
truncate -s $((8 * mib + boot_size + root_size)) "$img"
sfdisk --quiet --no-reread --no-tell-kernel --wipe never "$img" <<TABLE
label: dos
label-id: 0x$DISK_ID
unit: sectors
sector-size: 512

start=$((8 * mib / 512)), size=$((boot_size / 512)), type=c
start=$(((8 * mib + boot_size) / 512)), size=$((root_size / 512)), type=83
TABLE
mkfs.vfat -F 32 -n bootfs -i "$DISK_ID" -S 512 -s 1 --offset=$((8 * mib / 512)) "$img" $((boot_size / 1024)) >/dev/null
mcopy -s -m -Q -i "$img@@$((8 * mib))" "$boot"/* ::/
mkfs.ext4 -q -F -t ext4 -L rootfs -b 4096 -O ^64bit,^huge_file \
  -E offset=$((8 * mib + boot_size)),nodiscard,root_owner=0:0 -d "$root" "$img" $((root_size / 4096))

# The initrd: the files osimg staged, a console node, newc cpio, gzip.
mkdir -p "$INITRD/dev"
[ -e "$INITRD/dev/console" ] || mknod -m 600 "$INITRD/dev/console" c 5 1
(cd "$INITRD" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -9) >"$work/initrd.img"

mv "$img" "$work/initrd.img" "$OUT/"

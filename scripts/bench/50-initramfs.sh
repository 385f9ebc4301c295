#!/usr/bin/env bash
# The initramfs: its size, and how long a Pi-5-like TFTP client (atftp, blksize 1468,
# lock-step) takes to fetch it from rpi-deployd's TFTP, against dnsmasq's TFTP serving
# the same file over the same veth pair, side by side in this run. Prints
#   bench: initramfs-size ours=GZIP_BYTES baseline=CPIO_BYTES ratio=R
#   bench: initramfs-tftp-1468 ours=SECONDS baseline=SECONDS ratio=R   (median of 5)
# Needs root (network namespaces), atftp and dnsmasq (make deps).
set -euo pipefail
cd "$(dirname "$0")/../.."

make -s initramfs >/dev/null 2>&1 || make initramfs
img=$(realpath build/initramfs_2712)
gz=$(stat -c %s "$img")
cpio=$(gzip -dc "$img" | wc -c)
echo "bench: initramfs-size ours=$gz baseline=$cpio ratio=$(awk -v a="$gz" -v b="$cpio" 'BEGIN{printf "%.3f", a/b}')"

go build -o build/bench/rpi-deployd ./server/cmd/rpi-deployd
work=$(mktemp -d)
chmod 755 "$work" # dnsmasq drops to an unprivileged user
id=$$
srv=ib-s-$id cli=ib-c-$id
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$srv" 2>/dev/null || true
  ip netns del "$cli" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$srv"
ip netns add "$cli"
ip link add ib-a-$id type veth peer name ib-b-$id
ip link set ib-a-$id netns "$srv" name veth-s
ip link set ib-b-$id netns "$cli" name veth-c
ip -n "$srv" addr add 10.78.0.1/24 dev veth-s
ip -n "$cli" addr add 10.78.0.2/24 dev veth-c
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set veth-s up
ip -n "$cli" link set veth-c up
mkdir -p "$work/root"
cp "$img" "$work/root/initramfs_2712"
# rpi-deployd serves only a root that can boot a Pi 5; only initramfs_2712 is fetched here.
head -c 65536 /dev/urandom > "$work/root/kernel_2712.img"
head -c 4096 /dev/urandom > "$work/root/bcm2712-rpi-5-b.dtb"

# fetch: seconds of one atftp fetch of initramfs_2712 from 10.78.0.1, as the Pi asks.
fetch() {
  rm -f "$work/got"
  local t0 t1
  t0=$(date +%s.%N)
  ip netns exec "$cli" atftp --option "blksize 1468" --option "tsize 0" -g -r initramfs_2712 -l "$work/got" 10.78.0.1 >/dev/null 2>&1
  t1=$(date +%s.%N)
  cmp -s "$work/got" "$img" || { echo "50-initramfs: fetched file differs" >&2; exit 1; }
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", b-a}'
}
median() { sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
waitport() { # the UDP port 69 socket is open in the server namespace
  for _ in $(seq 100); do [ -n "$(ip netns exec "$srv" ss -Hlun 'sport = :69')" ] && return 0; sleep 0.1; done
  echo "50-initramfs: no TFTP server on port 69" >&2; exit 1
}

ip netns exec "$srv" build/bench/rpi-deployd serve --data "$work/data" --listen 10.78.0.1:8080 \
  --dhcp-interface veth-s --tftp-root "$work/root" --log-level warn 2>"$work/rpi-deployd.log" &
pids+=($!)
waitport
ours=$(for _ in 1 2 3 4 5; do fetch; done | median)
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true

ip netns exec "$srv" dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --interface=veth-s \
  --bind-interfaces --enable-tftp --tftp-root="$work/root" 2>"$work/dnsmasq.log" &
pids+=($!)
waitport
base=$(for _ in 1 2 3 4 5; do fetch; done | median)

echo "bench: initramfs-tftp-1468 ours=$ours baseline=$base ratio=$(awk -v a="$ours" -v b="$base" 'BEGIN{printf "%.3f", a/b}')"
echo "50-initramfs: $gz bytes ($(awk -v a="$gz" 'BEGIN{printf "%.2f", a/1048576}') MiB), $(( (gz + 1467) / 1468 )) TFTP blocks of 1468; baseline TFTP = dnsmasq"

#!/usr/bin/env bash
# rpi-image write (one image to several cards at once, O_DIRECT write and read-back)
# against dd, on loop devices standing in for card readers, measured in this run:
#   cardwrite-seq   rpi-image write CARD dev1..devN  vs  for each card in turn:
#                   dd oflag=direct, then dd iflag=direct | cmp (a real read-back)
#   cardwrite-par   the same  vs  the dd write + read-back of all cards at once (&, wait)
# The image is the bootloader card (rpi-image eeprom-card, 40 MiB) built from Raspberry
# Pi's firmware in shared/reference/rpi-eeprom beside the clone. BENCH_CARDS cards
# (default 4). Needs root (losetup), go, coreutils.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
fw=""
for d in "$(dirname "$root")" "$(dirname "$(dirname "$root")")"; do
  [ -f "$d/shared/reference/rpi-eeprom/recovery.bin" ] && { fw="$d/shared/reference/rpi-eeprom"; break; }
done
[ -n "$fw" ] || { echo "25-cardwrite: no shared/reference/rpi-eeprom beside the clone" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-cardwrite.XXXXXX")
devs=()
cleanup() { for d in "${devs[@]}"; do losetup -d "$d" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/" ./image-tools/cmd/rpi-image
"$work/rpi-image" eeprom-card --firmware "$fw" -o "$work/card.img" >/dev/null
size=$(stat -c %s "$work/card.img")
n=${BENCH_CARDS:-4}
for i in $(seq 1 "$n"); do
  truncate -s $((size + (8 << 20))) "$work/reader$i"
  devs+=("$(losetup --find --show "$work/reader$i")")
done
echo "image: $size bytes to $n loop devices ($(nproc) CPUs)"

secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
one() { # dd write + O_DIRECT read-back of one card
  dd if="$work/card.img" of="$1" bs=4M oflag=direct conv=fsync status=none &&
    dd if="$1" bs=4M iflag=direct count=$((size / (4 << 20))) status=none | cmp -s - "$work/card.img"
}
export -f one; export work size
t_ours=$(secs "$work/rpi-image" write -q "$work/card.img" "${devs[@]}")
t_seq=$(secs bash -c 'for d in "$@"; do one "$d" || exit 1; done' _ "${devs[@]}")
t_par=$(secs bash -c 'pids=(); for d in "$@"; do one "$d" & pids+=($!); done; for p in "${pids[@]}"; do wait "$p" || exit 1; done' _ "${devs[@]}")
echo "bench: cardwrite-seq ours=${t_ours}s baseline=${t_seq}s ratio=$(ratio "$t_ours" "$t_seq")"
echo "bench: cardwrite-par ours=${t_ours}s baseline=${t_par}s ratio=$(ratio "$t_ours" "$t_par")"

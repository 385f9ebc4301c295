#!/usr/bin/env bash
# rpi-image pack against the stock tools on the same ~1 GiB Raspberry Pi OS-shaped
# image (a used card: random bytes and deleted files in its free space), measured in
# this run:
#   pack-time        rpi-image pack (level 3)  vs  zstd -T0 -3 of the raw image + sync
#                    (pack also hashes every chunk, the image and the output)
#   pack-time-vs-zstd+sha256   the same, the baseline also hashes the raw image and
#                    its output (openssl dgst -sha256), as pack does
#   pack-cpu, pack-cpu-vs-zstd+sha256   the same two, in CPU time (user+system of the
#                    process and its children): what the wall ratios come to on a
#                    machine whose cores others share (there the wall time is mostly
#                    the share of the CPU a process gets). scripts/bench/packfloor
#                    gives the cost of each of pack's passes.
#   verify-time-vs-zstd+sha256 verify vs zstd -dc | openssl dgst -sha256 + the same
#                    of the packed file (the hashes verify checks)
#                    Times and CPU are the median of ROUNDS rounds (default 3) in
#                    which the contenders take turns; each round is printed.
#                    OLD_PACK=PATH adds another rpi-image binary (an older build) as a
#                    contender in every round, right after ours (its output must be
#                    byte-identical): pack-time-vs-old-pack, pack-cpu-vs-old-pack.
#   pack-size-zstd   packed size               vs  zstd -T0 -3
#   pack-size-xz     packed size               vs  xz -T0 -6 (how master images ship),
#                    on a ~300 MiB image of the same shape (xz is slow)
#   verify-time      rpi-image verify          vs  zstd -t of the packed file
# SKIP_XZ=1 stops after pack-size-zstd (no xz comparison, no verify-time lines).
# Needs: go, zstd, xz-utils, openssl and the testimg tools (scripts/deps/*.apt).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/" ./image-tools/cmd/rpi-image ./scripts/bench/mktestimg
ROOT_DATA=${BENCH_IMAGE_ROOT_DATA:-$((768 << 20))}
"$work/mktestimg" -o "$work/master.img" -used -boot-size $((128 << 20)) -root-data "$ROOT_DATA" -root-free $((96 << 20)) >/dev/null
size=$(stat -c %s "$work/master.img")
echo "image: $size bytes ($(nproc) CPUs)"
cat "$work/master.img" >/dev/null # page cache: time the compressors, not the disk

secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }'; }
# wallcpu CMD...: "WALL CPU" in seconds, CPU = user + system of CMD and its children.
wallcpu() { local TIMEFORMAT='%R %U %S' t; t=$( { time "$@" >/dev/null 2>&3; } 3>&2 2>&1 ); awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' <<<"$t"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
fmt() { printf '%.2f' "$1"; }

median() { tr ' ' '\n' <<<"$*" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# ROUNDS rounds (default 3), the three contenders one after the other in each, so that
# the machine's load hits all alike; each figure is the median of its rounds.
tw_ours=(); tc_ours=(); tw_zstd=(); tc_zstd=(); tw_same=(); tc_same=(); tw_old=(); tc_old=()
for round in $(seq "${ROUNDS:-3}"); do
  read -r t c < <(wallcpu "$work/rpi-image" pack -q --force --level 3 "$work/master.img" -o "$work/ours.img.zst")
  tw_ours+=("$t"); tc_ours+=("$c")
  if [ -n "${OLD_PACK:-}" ]; then
    read -r t c < <(wallcpu "$OLD_PACK" pack -q --force --level 3 "$work/master.img" -o "$work/old.img.zst")
    tw_old+=("$t"); tc_old+=("$c")
    cmp -s "$work/old.img.zst" "$work/ours.img.zst" || { echo "the old rpi-image packed other bytes"; exit 1; }
  fi
  # rpi-image pack syncs its output before it renames it into place: so does the baseline.
  read -r t c < <(wallcpu sh -c "zstd -q -T0 -3 -c '$work/master.img' > '$work/base.zst' && sync '$work/base.zst'")
  tw_zstd+=("$t"); tc_zstd+=("$c")
  # The same work as pack: compress, then SHA256 of the raw image and of the output
  # (openssl: the fastest stock SHA256, it uses the CPU's SHA instructions).
  read -r t c < <(wallcpu sh -c "zstd -q -T0 -3 -c '$work/master.img' > '$work/base.zst' && sync '$work/base.zst' && openssl dgst -sha256 '$work/master.img' '$work/base.zst'")
  tw_same+=("$t"); tc_same+=("$c")
  echo "round $round: wall/cpu pack=${tw_ours[-1]}/${tc_ours[-1]}s${OLD_PACK:+ old-pack=${tw_old[-1]}/${tc_old[-1]}s}" \
    "zstd=${tw_zstd[-1]}/${tc_zstd[-1]}s zstd+sha256=${tw_same[-1]}/${tc_same[-1]}s load=$(cut -d' ' -f1 /proc/loadavg)"
done
t_ours=$(median "${tw_ours[@]}"); c_ours=$(median "${tc_ours[@]}")
t_zstd=$(median "${tw_zstd[@]}"); c_zstd=$(median "${tc_zstd[@]}")
t_same=$(median "${tw_same[@]}"); c_same=$(median "${tc_same[@]}")
echo "bench: pack-time ours=$(fmt "$t_ours")s baseline=$(fmt "$t_zstd")s ratio=$(ratio "$t_ours" "$t_zstd")"
echo "bench: pack-time-vs-zstd+sha256 ours=$(fmt "$t_ours")s baseline=$(fmt "$t_same")s ratio=$(ratio "$t_ours" "$t_same")"
echo "bench: pack-cpu ours=$(fmt "$c_ours")s baseline=$(fmt "$c_zstd")s ratio=$(ratio "$c_ours" "$c_zstd")"
echo "bench: pack-cpu-vs-zstd+sha256 ours=$(fmt "$c_ours")s baseline=$(fmt "$c_same")s ratio=$(ratio "$c_ours" "$c_same")"
if [ -n "${OLD_PACK:-}" ]; then
  t_old=$(median "${tw_old[@]}"); c_old=$(median "${tc_old[@]}")
  echo "bench: pack-time-vs-old-pack ours=$(fmt "$t_ours")s baseline=$(fmt "$t_old")s ratio=$(ratio "$t_ours" "$t_old")"
  echo "bench: pack-cpu-vs-old-pack ours=$(fmt "$c_ours")s baseline=$(fmt "$c_old")s ratio=$(ratio "$c_ours" "$c_old")"
  echo "bench: old-pack-time ours=$(fmt "$t_old")s baseline=$(fmt "$t_zstd")s ratio=$(ratio "$t_old" "$t_zstd")"
  echo "bench: old-pack-cpu ours=$(fmt "$c_old")s baseline=$(fmt "$c_zstd")s ratio=$(ratio "$c_old" "$c_zstd")"
fi

s_ours=$(stat -c %s "$work/ours.img.zst")
s_zstd=$(stat -c %s "$work/base.zst")
echo "bench: pack-size-zstd ours=$s_ours baseline=$s_zstd ratio=$(ratio "$s_ours" "$s_zstd")"

[ "${SKIP_XZ:-}" = 1 ] && exit 0
# xz -6 runs at ~2 MB/s per core on random data: compare sizes on a smaller image of
# the same shape (BENCH_IMAGE_XZ_ROOT_DATA) so the bench ends in minutes.
"$work/mktestimg" -o "$work/small.img" -used -boot-size $((64 << 20)) -root-data "${BENCH_IMAGE_XZ_ROOT_DATA:-$((160 << 20))}" -root-free $((48 << 20)) >/dev/null
"$work/rpi-image" pack -q "$work/small.img" -o "$work/small.img.zst" >/dev/null
xz -q -T0 -6 -c "$work/small.img" > "$work/small.xz"
s_small=$(stat -c %s "$work/small.img.zst")
s_xz=$(stat -c %s "$work/small.xz")
echo "bench: pack-size-xz ours=$s_small baseline=$s_xz ratio=$(ratio "$s_small" "$s_xz") # $(stat -c %s "$work/small.img")-byte image"

t_ver=$(secs "$work/rpi-image" verify -q "$work/ours.img.zst")
t_test=$(secs zstd -q -t "$work/ours.img.zst")
echo "bench: verify-time ours=$(fmt "$t_ver")s baseline=$(fmt "$t_test")s ratio=$(ratio "$t_ver" "$t_test")"
t_vsame=$(secs sh -c "zstd -q -dc '$work/ours.img.zst' | openssl dgst -sha256 && openssl dgst -sha256 '$work/ours.img.zst'")
echo "bench: verify-time-vs-zstd+sha256 ours=$(fmt "$t_ver")s baseline=$(fmt "$t_vsame")s ratio=$(ratio "$t_ver" "$t_vsame")"

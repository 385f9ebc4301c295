#!/usr/bin/env bash
# rpi-agent against the usual ways of writing an image, on one ≥ 1 GiB Raspberry Pi
# OS-shaped image (image-tools/testimg + pack), all served by the same local HTTP
# server, each writing a preallocated target file with the page cache dropped before:
#
#   ours        rpi-agent --image: fetch + decode + per chunk SHA256 of the data ranges
#               (data_sha256) and a zero check of the rest, in parallel + O_DIRECT
#               writes of the data ranges, then O_DIRECT read-back of every data chunk,
#               first-boot naming, partition table last
#   ours-hash-free-space  the same with --hash-free-space: every byte hashed, free space
#               included (the manifest's chain), as the agent did before
#   baseline a  curl | zstd -d | tee >(sha256sum) | dd bs=4M oflag=direct, then a
#               read-back sha256sum of the target
#   baseline b  bmaptool copy with a bmap of the same ranges (rpi-image bmap); bmaptool
#               checks the bmap's SHA256 while writing and does not read back
#
# and the overlap: with target writes capped at 40 MB/s (--write-rate-limit, standing in
# for an SD card) the streaming phase's time against written bytes ÷ 40 MB/s.
# Env: BENCH_DIR (work dir, default a new one under /var/tmp), ROOT_DATA / ROOT_FREE
# (MiB in rootfs, default 700 / 300), ROUNDS (default 3; best time counts), KEEP=1 keeps
# the work dir, PROFILE=1 adds one run of ours under --cpuprofile and prints its top
# functions (the profile stays in the work dir as agent.pprof).
set -euo pipefail
cd "$(dirname "$0")/../.."

work=${BENCH_DIR:-$(mktemp -d /var/tmp/agent-bench.XXXXXX)}
mkdir -p "$work"
srv_pid=
cleanup() {
  [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
  [ "${KEEP:-}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/bin/" ./agent/cmd/rpi-agent ./image-tools/cmd/rpi-image ./scripts/bench/mktestimg
img=$work/bench.img.zst
if [ ! -f "$img" ]; then
  "$work/bin/mktestimg" -o "$work/bench.img" -pack "$img" -seed 7 -boot-size $((256 << 20)) \
    -root-data $(( ${ROOT_DATA:-700} << 20 )) -root-free $(( ${ROOT_FREE:-300} << 20 ))
fi
"$work/bin/rpi-image" bmap "$img" -o "$work/bench.bmap" 2>/dev/null
size=$(stat -c %s "$work/bench.img")
want=$(sha256sum "$work/bench.img" | cut -d' ' -f1)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 &
srv_pid=$!
url=http://127.0.0.1:$port/bench.img.zst
for _ in $(seq 50); do curl -sfI "$url" >/dev/null && break; sleep 0.1; done

# fresh preallocated target, page cache dropped, the served file warm again
prep() {
  rm -f "$1"; fallocate -l "$size" "$1"
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  cat "$img" >/dev/null
}
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$2" | tail -1; }

best() { python3 -c "import sys; print(f'{min(map(float, sys.argv[1:])):.2f}')" "$@"; }
# timed FILE CMD...: runs CMD under /usr/bin/time; FILE gets "wall cpu maxrss_kb" (cpu =
# user + sys of the command and the children it waited for)
timed() {
  local out=$1; shift
  /usr/bin/time -f '%e %U %S %M' -o "$out.raw" "$@"
  awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$out.raw" >"$out"
}

# ROUNDS rounds, the three contenders interleaved so that the machine's load hits all
# alike; the best wall time and the least CPU time of each count. CPU time (user + sys)
# does not depend on what else the machine runs; wall time does.
ours_t=(); a_t=(); b_t=(); h_t=(); ours_c=(); a_c=(); b_c=(); h_c=(); rss_kb=0
for round in $(seq "${ROUNDS:-3}"); do
  # ours: the whole run (manifest, stream, read-back, naming, commit)
  prep "$work/t-agent.img"
  timed "$work/agent.time" "$work/bin/rpi-agent" --image "$url" --hostname bench-001 \
    --target "$work/t-agent.img" 2>"$work/agent.log" || { cat "$work/agent.log"; exit 1; }
  read -r w c m <"$work/agent.time"; ours_t+=("$w"); ours_c+=("$c"); rss_kb=$(( m > rss_kb ? m : rss_kb ))

  # ours, hashing free space too
  prep "$work/t-agent.img"
  timed "$work/hash.time" "$work/bin/rpi-agent" --image "$url" --hostname bench-001 --hash-free-space \
    --target "$work/t-agent.img" 2>"$work/hash.log" || { cat "$work/hash.log"; exit 1; }
  read -r w c m <"$work/hash.time"; h_t+=("$w"); h_c+=("$c")

  # baseline a
  prep "$work/t-a.img"
  timed "$work/a.time" bash -c '
    curl -sf "$1" | zstd -dcq | tee >(sha256sum >"$2/a.sum") |
      dd of="$2/t-a.img" bs=4M iflag=fullblock oflag=direct conv=notrunc,fsync status=none
    wait $! # the sha256sum of the stream
    sha256sum "$2/t-a.img" >"$2/a.back"' _ "$url" "$work"
  [ "$(cut -d' ' -f1 "$work/a.sum")" = "$want" ] && [ "$(cut -d' ' -f1 "$work/a.back")" = "$want" ] ||
    { echo "baseline a: wrong sha256"; exit 1; }
  read -r w c m <"$work/a.time"; a_t+=("$w"); a_c+=("$c")

  # baseline b
  prep "$work/t-b.img"
  timed "$work/b.time" bmaptool -q copy --bmap "$work/bench.bmap" "$url" "$work/t-b.img"
  read -r w c m <"$work/b.time"; b_t+=("$w"); b_c+=("$c")
  echo "round $round: wall/cpu ours=${ours_t[-1]}/${ours_c[-1]}s a=${a_t[-1]}/${a_c[-1]}s" \
    "bmaptool=${b_t[-1]}/${b_c[-1]}s hash-free-space=${h_t[-1]}/${h_c[-1]}s load=$(cut -d' ' -f1 /proc/loadavg); $(grep -o 'stream_s=.*' "$work/agent.log")"
done
ours=$(best "${ours_t[@]}"); base_a=$(best "${a_t[@]}"); base_b=$(best "${b_t[@]}")
ours_cpu=$(best "${ours_c[@]}"); a_cpu=$(best "${a_c[@]}"); b_cpu=$(best "${b_c[@]}")
hash=$(best "${h_t[@]}"); hash_cpu=$(best "${h_c[@]}")
rss_mb=$(( rss_kb / 1024 ))

echo "bench: agent-vs-curl-zstd-dd-sha256sum ours=${ours}s baseline=${base_a}s ratio=$(ratio "$ours" "$base_a")"
echo "bench: agent-vs-bmaptool-copy ours=${ours}s baseline=${base_b}s ratio=$(ratio "$ours" "$base_b")"
echo "bench: agent-vs-curl-zstd-dd-sha256sum-cpu ours=${ours_cpu}s baseline=${a_cpu}s ratio=$(ratio "$ours_cpu" "$a_cpu")"
echo "bench: agent-vs-bmaptool-copy-cpu ours=${ours_cpu}s baseline=${b_cpu}s ratio=$(ratio "$ours_cpu" "$b_cpu")"
echo "bench: agent-hash-free-space-vs-bmaptool-copy-cpu ours=${hash_cpu}s baseline=${b_cpu}s ratio=$(ratio "$hash_cpu" "$b_cpu")"
echo "bench: agent-data-proof-vs-hash-free-space-cpu ours=${ours_cpu}s baseline=${hash_cpu}s ratio=$(ratio "$ours_cpu" "$hash_cpu") wall=${ours}s/${hash}s"
echo "bench: agent-peak-rss ours=${rss_mb}MB baseline=256MB(budget) ratio=$(ratio "$rss_mb" 256)"

# overlap at 40 MB/s
prep "$work/t-slow.img"
"$work/bin/rpi-agent" --image "$url" --hostname bench-001 --target "$work/t-slow.img" \
  --write-rate-limit 40 2>"$work/slow.log" || { cat "$work/slow.log"; exit 1; }
stream=$(field stream_s "$work/slow.log")
readback=$(field readback_s "$work/slow.log")
w=$(field stream_written "$work/slow.log")
floor=$(python3 -c "print(f'{$w/40e6:.2f}')")
echo "bench: agent-overlap-40MBps ours=${stream}s baseline=${floor}s ratio=$(ratio "$stream" "$floor") readback=${readback}s written=${w}B image=${size}B"

if [ "${PROFILE:-}" = 1 ]; then
  prep "$work/t-agent.img"
  "$work/bin/rpi-agent" --image "$url" --hostname bench-001 --target "$work/t-agent.img" \
    --cpuprofile "$work/agent.pprof" 2>"$work/profile.log" || { cat "$work/profile.log"; exit 1; }
  go tool pprof -top -nodecount=12 "$work/bin/rpi-agent" "$work/agent.pprof" 2>/dev/null | sed -n '/flat%/,$p'
fi

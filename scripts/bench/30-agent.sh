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
# Each round also prints ours' phases (open, stream with its closing fsync, read-back,
# naming, commit, and the rest of the process: start, manifest, exit) beside bmaptool's
# total, and the bench lines compare the best of each phase with bmaptool's best.
# Env: BENCH_DIR (work dir, default a new one under /var/tmp), ROOT_DATA / ROOT_FREE
# (MiB in rootfs, default 700 / 300), ROUNDS (default 3; best time counts), KEEP=1 keeps
# the work dir, PROFILE=1 adds one run of ours under --cpuprofile and prints its top
# functions (the profile stays in the work dir as agent.pprof), OLD_AGENT=PATH adds
# another rpi-agent binary (an older build) as a contender in every round, run right
# after ours (bench: agent-vs-old-agent), SKIP_A=1 leaves baseline a out (it takes
# ten times as long as the others; its bench lines are then missing), DISK=1 first
# measures the target's disk with fio: sequential O_DIRECT writes and reads of 1 and
# 4 MiB at queue depth 1, 4 and 8.
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
if [ "${DISK:-}" = 1 ]; then
  # The disk under the targets, as fio sees it (libaio, O_DIRECT, page cache dropped):
  # the ceiling of the agent's writes and read-back, and what more requests in flight
  # and larger ones give. Each write test gets a freshly preallocated file, as the
  # contenders do (writes into unwritten extents); the reads read what they wrote.
  for rw in write read; do
    for bs in 1M 4M; do
      for qd in 1 4 8; do
        [ $rw = write ] && { rm -f "$work/fio.img"; fallocate -l 1G "$work/fio.img"; }
        sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
        bw=$(fio --name=disk --filename="$work/fio.img" --rw=$rw --bs=$bs --iodepth=$qd \
          --ioengine=libaio --direct=1 --size=1G --output-format=terse --terse-version=3 |
          awk -F';' -v rw=$rw '{printf "%.0f", (rw == "read" ? $7 : $48) / 1024}')
        echo "disk: $rw bs=$bs qd=$qd ${bw} MiB/s"
      done
    done
  done
  rm -f "$work/fio.img"
fi

# phases FILE: "open stream sync readback name commit" seconds from an agent log
phases() {
  local f
  for f in open_s stream_s sync_s readback_s name_s commit_s; do printf '%s ' "$(field $f "$1")"; done
}

ours_t=(); a_t=(); b_t=(); h_t=(); o_t=(); ours_c=(); a_c=(); b_c=(); h_c=(); o_c=(); rss_kb=0
ph_open=(); ph_stream=(); ph_sync=(); ph_rb=(); ph_name=(); ph_commit=(); ph_rest=()
for round in $(seq "${ROUNDS:-3}"); do
  # ours: the whole run (manifest, stream, read-back, naming, commit)
  prep "$work/t-agent.img"
  timed "$work/agent.time" "$work/bin/rpi-agent" --image "$url" --hostname bench-001 \
    --target "$work/t-agent.img" 2>"$work/agent.log" || { cat "$work/agent.log"; exit 1; }
  read -r w c m <"$work/agent.time"; ours_t+=("$w"); ours_c+=("$c"); rss_kb=$(( m > rss_kb ? m : rss_kb ))
  read -r p_open p_stream p_sync p_rb p_name p_commit <<<"$(phases "$work/agent.log")"
  ph_open+=("$p_open"); ph_stream+=("$p_stream"); ph_sync+=("$p_sync"); ph_rb+=("$p_rb")
  ph_name+=("$p_name"); ph_commit+=("$p_commit")
  ph_rest+=("$(python3 -c "print(f'{$w-$p_open-$p_stream-$p_rb-$p_name-$p_commit:.3f}')")")

  if [ -n "${OLD_AGENT:-}" ]; then
    prep "$work/t-agent.img"
    timed "$work/old.time" "$OLD_AGENT" --image "$url" --hostname bench-001 \
      --target "$work/t-agent.img" 2>"$work/old.log" || { cat "$work/old.log"; exit 1; }
    read -r w c m <"$work/old.time"; o_t+=("$w"); o_c+=("$c")
  fi

  # ours, hashing free space too
  prep "$work/t-agent.img"
  timed "$work/hash.time" "$work/bin/rpi-agent" --image "$url" --hostname bench-001 --hash-free-space \
    --target "$work/t-agent.img" 2>"$work/hash.log" || { cat "$work/hash.log"; exit 1; }
  read -r w c m <"$work/hash.time"; h_t+=("$w"); h_c+=("$c")

  # baseline a
  if [ "${SKIP_A:-}" = 1 ]; then a_t+=(0); a_c+=(0); else
  prep "$work/t-a.img"
  timed "$work/a.time" bash -c '
    curl -sf "$1" | zstd -dcq | tee >(sha256sum >"$2/a.sum") |
      dd of="$2/t-a.img" bs=4M iflag=fullblock oflag=direct conv=notrunc,fsync status=none
    wait $! # the sha256sum of the stream
    sha256sum "$2/t-a.img" >"$2/a.back"' _ "$url" "$work"
  [ "$(cut -d' ' -f1 "$work/a.sum")" = "$want" ] && [ "$(cut -d' ' -f1 "$work/a.back")" = "$want" ] ||
    { echo "baseline a: wrong sha256"; exit 1; }
  read -r w c m <"$work/a.time"; a_t+=("$w"); a_c+=("$c")
  fi

  # baseline b
  prep "$work/t-b.img"
  timed "$work/b.time" bmaptool -q copy --bmap "$work/bench.bmap" "$url" "$work/t-b.img"
  read -r w c m <"$work/b.time"; b_t+=("$w"); b_c+=("$c")
  echo "round $round: wall/cpu ours=${ours_t[-1]}/${ours_c[-1]}s a=${a_t[-1]}/${a_c[-1]}s" \
    "bmaptool=${b_t[-1]}/${b_c[-1]}s hash-free-space=${h_t[-1]}/${h_c[-1]}s${OLD_AGENT:+ old=${o_t[-1]}/${o_c[-1]}s}" \
    "load=$(cut -d' ' -f1 /proc/loadavg); $(grep -o 'writes=.*' "$work/agent.log")"
  echo "round $round phases: ours open=${ph_open[-1]} stream=${ph_stream[-1]} (sync=${ph_sync[-1]})" \
    "readback=${ph_rb[-1]} name=${ph_name[-1]} commit=${ph_commit[-1]} rest=${ph_rest[-1]}s; bmaptool total=${b_t[-1]}s"
done
ours=$(best "${ours_t[@]}"); base_a=$(best "${a_t[@]}"); base_b=$(best "${b_t[@]}")
ours_cpu=$(best "${ours_c[@]}"); a_cpu=$(best "${a_c[@]}"); b_cpu=$(best "${b_c[@]}")
hash=$(best "${h_t[@]}"); hash_cpu=$(best "${h_c[@]}")
rss_mb=$(( rss_kb / 1024 ))

if [ "${SKIP_A:-}" != 1 ]; then
echo "bench: agent-vs-curl-zstd-dd-sha256sum ours=${ours}s baseline=${base_a}s ratio=$(ratio "$ours" "$base_a")"
fi
echo "bench: agent-vs-bmaptool-copy ours=${ours}s baseline=${base_b}s ratio=$(ratio "$ours" "$base_b")"
[ "${SKIP_A:-}" = 1 ] ||
  echo "bench: agent-vs-curl-zstd-dd-sha256sum-cpu ours=${ours_cpu}s baseline=${a_cpu}s ratio=$(ratio "$ours_cpu" "$a_cpu")"
echo "bench: agent-vs-bmaptool-copy-cpu ours=${ours_cpu}s baseline=${b_cpu}s ratio=$(ratio "$ours_cpu" "$b_cpu")"
echo "bench: agent-hash-free-space-vs-bmaptool-copy-cpu ours=${hash_cpu}s baseline=${b_cpu}s ratio=$(ratio "$hash_cpu" "$b_cpu")"
echo "bench: agent-data-proof-vs-hash-free-space-cpu ours=${ours_cpu}s baseline=${hash_cpu}s ratio=$(ratio "$ours_cpu" "$hash_cpu") wall=${ours}s/${hash}s"
v=$(best "${ph_stream[@]}")
echo "bench: agent-phase-stream-vs-bmaptool-copy ours=${v}s baseline=${base_b}s ratio=$(ratio "$v" "$base_b")"
v=$(best "${ph_rb[@]}")
echo "bench: agent-phase-readback-vs-bmaptool-copy ours=${v}s baseline=${base_b}s ratio=$(ratio "$v" "$base_b")"
echo "phases (best of each, s): open=$(best "${ph_open[@]}") stream=$(best "${ph_stream[@]}") sync=$(best "${ph_sync[@]}")" \
  "readback=$(best "${ph_rb[@]}") name=$(best "${ph_name[@]}") commit=$(best "${ph_commit[@]}") rest=$(best "${ph_rest[@]}")"
if [ -n "${OLD_AGENT:-}" ]; then
  old=$(best "${o_t[@]}"); old_cpu=$(best "${o_c[@]}")
  echo "bench: agent-vs-old-agent ours=${ours}s baseline=${old}s ratio=$(ratio "$ours" "$old")"
  echo "bench: agent-vs-old-agent-cpu ours=${ours_cpu}s baseline=${old_cpu}s ratio=$(ratio "$ours_cpu" "$old_cpu")"
  echo "bench: old-agent-vs-bmaptool-copy ours=${old}s baseline=${base_b}s ratio=$(ratio "$old" "$base_b")"
  echo "bench: old-agent-vs-bmaptool-copy-cpu ours=${old_cpu}s baseline=${b_cpu}s ratio=$(ratio "$old_cpu" "$b_cpu")"
fi
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

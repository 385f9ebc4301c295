#!/usr/bin/env bash
# Fleet bench: 100 virtual boards (real rpi-agent processes, scripts/fleetsim) flashing
# at once from one rpi-deployd on this machine, against a baseline measured in the same
# run: 100 parallel `curl` downloads of the same .img.zst from a plain Go file server
# (`serverbench fileserve`, scripts/bench/serverbench). Then the same 100 boards again with fault scenarios mixed
# in: every board must end verified or failed with a cause, none stuck, none verified
# that is not.
#
# Prints:
#   bench: fleet100-throughput-MBps ours=X baseline=Y ratio=R   compressed image bytes × 100 ÷ time
#                                                                until all verified (ours: download,
#                                                                decode, hash, write, read back) vs
#                                                                until all curls finished (download only)
#   bench: fleet100-all-verified-s  ours=X baseline=Y ratio=R   those two times
#   bench: fleet100-serve-MBps      ours=X baseline=Y ratio=R   the server alone: 100 parallel curls
#                                                                of the image from rpi-deployd vs from
#                                                                the plain Go file server
#   bench: fleet100-server-peak-rss-MiB ours=X baseline=Y ratio=R  VmHWM of rpi-deployd vs the file server
#   bench: fleet100-faults-<outcome> ours=N baseline=EXPECTED ratio=R  counts with faults mixed in
#
# Environment: FLEET_BOARDS (100), FLEET_DATA_MIB (rootfs data, 48 → ~104 MiB raw image),
# FLEET_MIX (slow=10,flaky=10,badcard=10,reboot=10), FLEET_DIR (a temp dir).
set -euo pipefail
cd "$(dirname "$0")/../.."

n=${FLEET_BOARDS:-100}
data_mib=${FLEET_DATA_MIB:-48}
mix=${FLEET_MIX:-slow=10,flaky=10,badcard=10,reboot=10}
work=${FLEET_DIR:-$(mktemp -d /tmp/fleet-bench.XXXXXX)}
bin=$PWD/bin
mkdir -p "$work"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

go build -trimpath -o "$work/fleetsim" ./scripts/fleetsim
go build -trimpath -o "$work/mktestimg" ./scripts/bench/mktestimg
go build -trimpath -o "$work/serverbench" ./scripts/bench/serverbench
for b in rpi-deployd rpi-agent rpi-image; do
  [ -x "$bin/$b" ] || { echo "60-fleet: $bin/$b missing: run 'make bench' (it builds first)" >&2; exit 1; }
done

# The image: Raspberry Pi OS-shaped, ~104 MiB raw.
mkdir -p "$work/img"
"$work/mktestimg" -o "$work/master.img" -boot-size $(( 40 << 20 )) -root-data $(( data_mib << 20 )) -root-free $(( 8 << 20 )) -seed 60 >/dev/null
"$bin/rpi-image" pack -q "$work/master.img" -o "$work/img/fleet.img.zst" >/dev/null
rm -f "$work/master.img"
zsize=$(stat -c %s "$work/img/fleet.img.zst")
echo "60-fleet: $n boards, image $(( zsize >> 20 )) MiB compressed ($(grep -o '"size": [0-9]*' "$work/img/fleet.manifest.json" | head -1 | awk '{print int($2/1048576)}') MiB raw), work in $work"

# wait_listening LOG NAME: the URL a server printed ("NAME: listening on URL").
wait_listening() {
  local url
  for _ in $(seq 300); do
    url=$(sed -n "s/^$2: listening on //p" "$1" | head -1)
    [ -n "$url" ] && { echo "$url"; return 0; }
    sleep 0.05
  done
  cat "$1" >&2
  return 1
}
hwm_mib() { awk '/^VmHWM:/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.3f", a / b }'; }

# --- baseline: 100 parallel curls from a plain Go file server ---------------------------
"$work/serverbench" fileserve "$work/img" >"$work/fileserver.log" &
fs_pid=$!; pids+=("$fs_pid")
for _ in $(seq 100); do fs_url=$(head -1 "$work/fileserver.log"); [ -n "$fs_url" ] && break; sleep 0.05; done
# curl_all URL: seconds for n parallel downloads of URL.
curl_all() {
  local t0 t1 p cpids=()
  t0=$(date +%s.%N)
  for _ in $(seq "$n"); do
    curl -sf -o /dev/null "$1" &
    cpids+=($!)
  done
  for p in "${cpids[@]}"; do wait "$p" || { echo "60-fleet: a curl of $1 failed" >&2; return 1; }; done
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
base_s=$(curl_all "$fs_url/fleet.img.zst")
base_rss=$(hwm_mib "$fs_pid")
kill "$fs_pid"; wait "$fs_pid" 2>/dev/null || true

# --- ours: rpi-deployd + 100 agents -------------------------------------------------------
# Every virtual board says hello from 127.0.0.1: the per-address limits (meant for a
# deploy network where each board has its own address) are off.
export RPI_DEPLOY_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$work/data"
# All agents connect from 127.0.0.1: lift the per-source connection cap (default 64).
cat >"$work/server.json" <<EOF
{ "max_streams": $(( n + 28 )), "retry_after": "1s", "log_level": "warn", "http_max_conns_per_source": 4096,
  "max_open_per_source": -1, "new_serials_per_minute": -1,
  "agent_requests_per_source": -1 }
EOF
"$bin/rpi-deployd" serve --config "$work/server.json" --data "$work/data" --listen 127.0.0.1:0 2>"$work/server.log" &
srv_pid=$!; pids+=("$srv_pid")
url=$(wait_listening "$work/server.log" rpi-deployd)
rd() { RPI_DEPLOY_SERVER=$url "$bin/rpi-deployd" "$@" >/dev/null 2>"$work/rd.err" || { cat "$work/rd.err" >&2; exit 1; }; }
rd venue add FLET --name "Fleet bench"
rd pool add --venue FLET --product KXP2 --count $(( 2 * n ))
rd image add "$work/img/fleet.img.zst" --activate KXP2
rd batch add --venue FLET --product KXP2 --count "$n" --image fleet

serve_s=$(curl_all "$url/images/fleet.img.zst")

"$work/fleetsim" -server "$url" -image fleet -boards "$n" -workdir "$work/run1" -quiet -interval 5s \
  -timeout 15m -json "$work/run1.json" >"$work/run1.out" || { cat "$work/run1.out"; echo "60-fleet: the normal run failed" >&2; exit 1; }
ours_s=$(grep -o '"all_verified_after_seconds": [0-9.]*' "$work/run1.json" | awk '{printf "%.2f", $2}')
rm -rf "$work/run1"

ours_bps=$(awk -v z="$zsize" -v n="$n" -v s="$ours_s" 'BEGIN { printf "%.1f", z * n / s / 1e6 }')
base_bps=$(awk -v z="$zsize" -v n="$n" -v s="$base_s" 'BEGIN { printf "%.1f", z * n / s / 1e6 }')
echo "bench: fleet${n}-throughput-MBps ours=$ours_bps baseline=$base_bps ratio=$(ratio "$ours_bps" "$base_bps")"
echo "bench: fleet${n}-all-verified-s ours=$ours_s baseline=$base_s ratio=$(ratio "$ours_s" "$base_s")"
serve_bps=$(awk -v z="$zsize" -v n="$n" -v s="$serve_s" 'BEGIN { printf "%.1f", z * n / s / 1e6 }')
echo "bench: fleet${n}-serve-MBps ours=$serve_bps baseline=$base_bps ratio=$(ratio "$serve_bps" "$base_bps")"

# --- with faults ----------------------------------------------------------------------------
rd batch add --venue FLET --product KXP2 --count "$n" --image fleet
set +e
"$work/fleetsim" -server "$url" -image fleet -boards "$n" -mix "$mix" -workdir "$work/run2" -quiet -interval 5s \
  -timeout 15m -slow-rate 16MiB -json "$work/run2.json" >"$work/run2.out"
rc=$?
set -e
srv_rss=$(hwm_mib "$srv_pid")
echo "bench: fleet${n}-server-peak-rss-MiB ours=$srv_rss baseline=$base_rss ratio=$(ratio "$srv_rss" "$base_rss")"
sed -n '/^ *scenario/,$p' "$work/run2.out"
count() { { grep -o "\"$1\": [0-9]*" "$work/run2.json" || true; } | head -1 | awk '{print $2+0}'; }
bad=$(grep -c '"scenario": "badcard"' "$work/run2.json" || true)
for o in verified failed stuck verified-but-bad; do
  case $o in verified) want=$(( n - bad ));; failed) want=$bad;; *) want=0;; esac
  got=$(count "$o"); got=${got:-0}
  echo "bench: fleet${n}-faults-$o ours=$got baseline=$want ratio=$(ratio "$got" "$want")"
done
rm -rf "$work/run2"
[ "$rc" -eq 0 ] || { echo "60-fleet: FAIL: with faults, not every board ended as expected (fleetsim exit $rc)" >&2; exit 1; }

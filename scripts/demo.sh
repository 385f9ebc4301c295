#!/usr/bin/env bash
# make demo: the whole flow on one machine, no Pi needed (docs/operations.md, "The demo").
#
#  1. builds the fleet simulator and the image generator (make demo already ran deps, build)
#  2. generates a Raspberry Pi OS-shaped master image (image-tools/testimg, via scripts/bench/mktestimg) and packs it
#     (rpi-image pack)
#  3. starts rpi-deployd on embedded defaults: SQLite in ./demo-data (fresh every run),
#     DHCP and TFTP off, listening on 127.0.0.1:$DEMO_PORT (a free port if that is taken)
#  4. creates an operator login (random password), a venue and uploads the image
#  5. prints the dashboard URL and the login
#  6. powers on a box of $DEMO_BOARDS virtual boards (a KXP2 pool and a batch for them;
#     scripts/fleetsim: real rpi-agent processes flashing image files, with slow cards, a
#     flaky network, power cuts and, as root, a failing card), and another box every
#     $DEMO_PAUSE seconds after the last one ended, until Ctrl-C
#
# Environment:
#   DEMO_BOARDS=20        virtual boards per box
#   DEMO_MIX=...          scenario shares in percent (fleetsim -mix); default
#                         slow=15,flaky=15,reboot=10 (+ badcard=5 as root, interactive)
#   DEMO_PAUSE=45         seconds between boxes; 0: one box, then just the server
#   DEMO_PORT=8080        preferred port (a free one if taken; 0: always a free one)
#   DEMO_EXIT_WHEN_DONE=1 one box, then exit: 0 if every board verified, checked against
#                         the server and the cards (CI: scripts/test.d/40-demo.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

boards=${DEMO_BOARDS:-20}
port=${DEMO_PORT:-8080}
once=${DEMO_EXIT_WHEN_DONE:-0}
pause=${DEMO_PAUSE:-45}
# Interactive: one failing card per box when root with loop devices, to show a failure with
# its cause. Check mode: every board must verify.
mix=slow=15,flaky=15,reboot=10
[ "$once" != 1 ] && [ "$(id -u)" -eq 0 ] && losetup -f >/dev/null 2>&1 && mix=$mix,badcard=5
mix=${DEMO_MIX:-$mix}
data=$PWD/demo-data
build=$PWD/build/demo
venue=DEMO
bin=$PWD/bin

say() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || say "not root: the badcard scenario (loop devices) is unavailable"

mkdir -p "$build"
exec 9>"$build/.lock"
flock -n 9 || die "another 'make demo' runs in this directory"

# --- 1. tools ---------------------------------------------------------------------------
for b in rpi-deployd rpi-agent rpi-image; do
  [ -x "$bin/$b" ] || die "$bin/$b missing: run 'make demo' (it builds first) or 'make build'"
done
go build -trimpath -o "$bin/fleetsim" ./scripts/fleetsim
go build -trimpath -o "$bin/mktestimg" ./scripts/bench/mktestimg

# --- 2. master image --------------------------------------------------------------------
say "building a Raspberry Pi OS-shaped master image and packing it"
"$bin/mktestimg" -o "$build/master.img" -kind bookworm-firstrun -root-data $(( 96 << 20 )) -seed 7 | sed 's/^/demo: /'
"$bin/rpi-image" pack -q --force "$build/master.img" -o "$build/demo.img.zst" | sed 's/^/demo: /'
rm -f "$build/master.img"

# --- 3. server --------------------------------------------------------------------------
srv_pid='' fleet_pid=''
cleanup() {
  trap - INT TERM EXIT
  if [ -n "$fleet_pid" ] && kill -0 "$fleet_pid" 2>/dev/null; then
    kill -INT "$fleet_pid" 2>/dev/null || true
    wait "$fleet_pid" 2>/dev/null || true
  fi
  if [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; then
    kill -TERM "$srv_pid" 2>/dev/null || true
    wait "$srv_pid" 2>/dev/null || true
  fi
  say "stopped (data kept in $data until the next run)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A demo killed hard (SIGKILL) may have left failing cards attached: detach their loop
# devices and unmount their tmpfs before removing the old data.
if [ -d "$data" ]; then
  awk -v d="$data/" 'index($2, d) == 1 { print $2 }' /proc/mounts | while read -r mnt; do
    for dev in $(losetup -j "$mnt/card" -O NAME -n 2>/dev/null); do losetup -d "$dev" || true; done
    umount -l "$mnt" || true
  done
fi
rm -rf "$data"
mkdir -p "$data"
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export RPI_DEPLOY_TOKEN=$token

listen=127.0.0.1:$port
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  say "port $port is taken: using a free port"
  listen=127.0.0.1:0
fi
# The virtual boards all connect from 127.0.0.1: lift the per-source connection cap
# and turn the per-address limits off.
"$bin/rpi-deployd" serve --data "$data" --listen "$listen" --http-max-conns-per-source 4096 --max-open-per-source -1 --new-serials-per-minute -1 --agent-requests-per-source -1 2>"$data/server.log" &
srv_pid=$!
url=
for _ in $(seq 600); do # up to 30 s on a busy machine
  url=$(sed -n 's/^rpi-deployd: listening on //p' "$data/server.log" | head -1)
  [ -n "$url" ] && break
  kill -0 "$srv_pid" 2>/dev/null || { cat "$data/server.log" >&2; die "rpi-deployd exited"; }
  sleep 0.05
done
[ -n "$url" ] || { cat "$data/server.log" >&2; die "rpi-deployd did not start"; }
say "rpi-deployd is up at $url (log: $data/server.log)"

# --- 4. login, venue, pool, image, batch --------------------------------------------------
export RPI_DEPLOY_SERVER=$url
rd() { "$bin/rpi-deployd" "$@" 2>>"$data/setup.log" | tee -a "$data/setup.log" || { cat "$data/setup.log" >&2; die "rpi-deployd $*: failed"; }; }
RPI_DEPLOY_PASSWORD=$password rd user add operator >/dev/null
rd venue add "$venue" --name "Demo Raceway" >/dev/null
rd image add "$build/demo.img.zst" --activate KXP2 >/dev/null

cat <<EOF

  Dashboard:  $url/
  Login:      operator / $password
  Admin token (CLI, API): export RPI_DEPLOY_TOKEN=$token

EOF

# --- 5. virtual boards, a box at a time ------------------------------------------------------
# Each box is a batch of $boards KXP2 boards with their pool names; in interactive mode a
# new box powers on $pause seconds after the last one ended (the operator racks the next
# twenty), so the dashboard always has something to show.
wave=0 batch=''
while :; do
  wave=$((wave + 1))
  first=$(( (wave - 1) * boards + 1 ))
  if [ -n "$batch" ]; then
    # A box with a failed card leaves its batch short; the operator closes it.
    rpi_state=$("$bin/rpi-deployd" batch list 2>/dev/null | awk -v id="$batch" '$1 == id { print }')
    case $rpi_state in *complete*|'') ;; *) rd batch cancel "$batch" >/dev/null ;; esac
  fi
  rd pool add --venue "$venue" --product KXP2 --count "$boards" --start "$first" >/dev/null
  batch=$(rd batch add --venue "$venue" --product KXP2 --count "$boards" --image demo --priority "$wave" | sed -n 's/^batch \([0-9]*\):.*/\1/p')
  say "box $wave: batch $batch, $boards boards, names KXP2-$venue-$(printf '%03d' "$first")..$(printf '%03d' $((first + boards - 1))), mix $mix"
  "$bin/fleetsim" -server "$url" -image demo -boards "$boards" -mix "$mix" -batch "$batch" \
    -workdir "$data/fleet" -stagger 250ms -slow-rate 6MiB -interval 2s -quiet \
    -json "$data/fleet/report.json" &
  fleet_pid=$!
  set +e
  wait "$fleet_pid"
  rc=$?
  set -e
  fleet_pid=
  [ "$rc" -eq 130 ] && exit 130 # Ctrl-C reached fleetsim first
  if [ "$once" = 1 ]; then
    if [ "$rc" -eq 0 ]; then say "all $boards boards ended as expected"; else say "FAIL: fleetsim exited $rc"; fi
    exit "$rc"
  fi
  if [ "$pause" -le 0 ]; then
    say "box $wave done (fleetsim exited $rc); the server stays up: $url/ — Ctrl-C to stop"
    wait "$srv_pid"
    exit 0
  fi
  say "box $wave done (fleetsim exited $rc); the next box powers on in ${pause}s — Ctrl-C to stop"
  sleep "$pause" &
  wait $! || true
done

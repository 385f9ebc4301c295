#!/usr/bin/env bash
# The Debian package end to end (docs/operations.md, section 1):
#   - make deb for amd64 and arm64; lintian on both (no errors; accepted tags are in
#     packaging/lintian-overrides with their reasons);
#   - a throw-away Debian 12 root (mmdebstrap minbase + systemd, cached by its inputs)
#     booted with systemd-nspawn --private-network (no traffic leaves the container);
#   - apt install: user, directories, token; enabled, not started; systemctl start;
#     /healthz answers from inside; the unit checked by systemd-analyze there;
#   - a venue stored and the conffile edited, then an upgrade to a second build with a
#     bumped version: restarted, new version answers, venue and edit survive;
#   - remove keeps data and configuration; purge deletes them;
#   - scripts/install.sh --deb installs and starts the same package.
# The container, its mounts and the work directory go away even on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
t0=$SECONDS

say() { echo "50-deb: $*"; }
fail() { echo "50-deb: FAIL: $*" >&2; exit 1; }

work=$(mktemp -d /var/tmp/rpi-deploy-deb.XXXXXX)
root=$work/root
nspawn_pid=
leader=

in_ct() { nsenter -t "$leader" -m -u -i -n -p -r -w -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

stop_ct() {
  [ -n "$nspawn_pid" ] || return 0
  if kill -0 "$nspawn_pid" 2>/dev/null; then
    [ -n "$leader" ] && in_ct systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 60); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
    kill -TERM "$nspawn_pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  wait "$nspawn_pid" 2>/dev/null || true
  nspawn_pid= leader=
}

cleanup() {
  local rc=$?
  if ((rc)) && [ -n "$leader" ]; then
    echo "--- journal of rpi-deployd in the container" >&2
    in_ct journalctl -u rpi-deployd --no-pager -n 50 >&2 || true
  fi
  stop_ct
  # nspawn mounts inside its own namespace; anything visible here under $work is ours.
  { findmnt -rn -o TARGET | grep -F "$work/" || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$work"
  exit "$rc"
}
trap cleanup EXIT

# --- the packages ------------------------------------------------------------------------
make deb DEB_OUT="$work/deb1" >"$work/make1.log" 2>&1 || { cat "$work/make1.log"; fail "make deb"; }
deb_amd64=$(ls "$work"/deb1/rpi-deploy_*_amd64.deb)
deb_arm64=$(ls "$work"/deb1/rpi-deploy_*_arm64.deb)
v1=$(dpkg-deb -f "$deb_amd64" Version)
[ "$(dpkg-deb -f "$deb_arm64" Version)" = "$v1" ] || fail "amd64 and arm64 versions differ"
[ "$(dpkg-deb -f "$deb_arm64" Architecture)" = arm64 ] || fail "arm64 package architecture"
say "built $(basename "$deb_amd64") $(basename "$deb_arm64")"

dpkg-deb -c "$deb_amd64" >"$work/contents"
for f in ./usr/bin/rpi-deployd ./usr/bin/rpi-agent ./usr/bin/rpi-image \
  ./lib/systemd/system/rpi-deployd.service ./usr/lib/sysusers.d/rpi-deploy.conf \
  ./usr/lib/tmpfiles.d/rpi-deploy.conf ./usr/lib/sysctl.d/60-rpi-deploy.conf \
  ./etc/rpi-deploy/rpi-deployd.json ./usr/share/doc/rpi-deploy/copyright \
  ./usr/share/doc/rpi-deploy/changelog.gz ./usr/share/man/man1/rpi-deployd.1.gz \
  ./usr/share/man/man1/rpi-agent.1.gz ./usr/share/man/man1/rpi-image.1.gz; do
  grep -q " $f\$" "$work/contents" || fail "package lacks $f"
done
dpkg-deb -e "$deb_amd64" "$work/control"
[ "$(cat "$work/control/conffiles")" = /etc/rpi-deploy/rpi-deployd.json ] || fail "conffiles: $(cat "$work/control/conffiles")"
# The arm64 package carries arm64 binaries.
dpkg-deb -x "$deb_arm64" "$work/arm64"
file -b "$work/arm64/usr/bin/rpi-deployd" | grep -q 'ARM aarch64' || fail "arm64 package: $(file -b "$work/arm64/usr/bin/rpi-deployd")"
# Every sysctl key exists in this kernel (a typo would make systemd-sysctl fail on a host).
while read -r key _; do
  [ -e "/proc/sys/${key//.//}" ] || fail "sysctl key $key does not exist"
done < <(grep -Ev '^(#|$)' packaging/sysctl.conf)

for d in "$deb_amd64" "$deb_arm64"; do
  lintian --fail-on error --display-level '>=warning' --tag-display-limit 0 "$d" >"$work/lintian.log" 2>&1 ||
    { cat "$work/lintian.log"; fail "lintian errors in $(basename "$d")"; }
  say "lintian $(basename "$d"): $(grep -c '^[EW]:' "$work/lintian.log" || true) errors/warnings"
  cat "$work/lintian.log"
done

# The upgrade: a second build, its version bumped and a different binary version.
v2="$v1+1"
make deb DEB_ARCHES=amd64 DEB_OUT="$work/deb2" DEB_VERSION="$v2" VERSION=upgrade-test >"$work/make2.log" 2>&1 ||
  { cat "$work/make2.log"; fail "make deb (second build)"; }
deb_v2=$(ls "$work"/deb2/rpi-deploy_*_amd64.deb)
dpkg --compare-versions "$v2" gt "$v1" || fail "$v2 does not sort after $v1"

# --- the container base tree, cached by its inputs ---------------------------------------
cache=${RPI_DEPLOY_CACHE:-/var/cache/rpi-deploy-test}
pkgs=systemd,systemd-sysv,curl
suite=bookworm
# The inputs: the package list, the suite, the architecture and the mirror (apt's sources).
key=$( { echo "mmdebstrap 1 minbase $suite $(dpkg --print-architecture) $pkgs"
         cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true
       } | sha256sum | cut -c1-16)
base=$cache/nspawn-$suite-$key.tar
if [ -s "$base" ]; then
  say "container base tree: cached $base"
else
  mkdir -p "$cache"
  tb=$SECONDS
  mmdebstrap --quiet --variant=minbase --include="$pkgs" "$suite" "$base.part.tar" ||
    { rm -f "$base.part.tar"; fail "mmdebstrap"; }
  mv "$base.part.tar" "$base"
  say "container base tree: built in $((SECONDS - tb)) s -> $base"
fi
mkdir -p "$root"
tar -C "$root" -xf "$base"
mkdir -p "$root/root/debs"
cp "$deb_amd64" "$deb_v2" scripts/install.sh "$root/root/debs/"

# --- boot it -------------------------------------------------------------------------------
systemd-nspawn -q -b -D "$root" --private-network --register=no --keep-unit \
  -M "rpideb$$" --console=read-only >"$work/console.log" 2>&1 &
nspawn_pid=$!
# The container's PID 1 (systemd) is nspawn's child once the boot has begun.
for _ in $(seq 100); do
  leader=$({ ps -o pid=,comm= --ppid "$nspawn_pid" || true; } | awk '$2 == "systemd" {print $1; exit}')
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "$leader" ] || { cat "$work/console.log"; fail "no container init"; }
state=
for _ in $(seq 120); do
  state=$(in_ct systemctl is-system-running 2>/dev/null || true)
  case "$state" in running | degraded) break ;; esac
  sleep 0.5
done
case "$state" in running | degraded) ;; *) cat "$work/console.log"; fail "container did not boot: $state" ;; esac
say "container booted ($state) after $((SECONDS - t0)) s"

healthz() { in_ct curl -fsS --retry 30 --retry-delay 1 --retry-connrefused http://127.0.0.1:8080/healthz; }

# --- first install: enabled, not started ----------------------------------------------------
in_ct apt-get install -y -q "/root/debs/$(basename "$deb_amd64")" >"$work/install1.log" 2>&1 ||
  { cat "$work/install1.log"; fail "apt-get install"; }
grep -q 'admin token generated' "$work/install1.log" || fail "no token generated"
grep -Eq '[0-9a-f]{64}' "$work/install1.log" && fail "the admin token reached the install log"
[ "$(in_ct systemctl is-enabled rpi-deployd)" = enabled ] || fail "not enabled on first install"
[ "$(in_ct systemctl is-active rpi-deployd || true)" = inactive ] || fail "started on first install"
in_ct getent passwd rpi-deploy | grep -Eq '^rpi-deploy:x:[1-9][0-9]*:[0-9]+:.*:/var/lib/rpi-deploy:/usr/sbin/nologin$' ||
  fail "user: $(in_ct getent passwd rpi-deploy)"
[ "$(in_ct stat -c '%a %U %G' /var/lib/rpi-deploy)" = "700 rpi-deploy rpi-deploy" ] || fail "data dir: $(in_ct stat -c '%a %U %G' /var/lib/rpi-deploy)"
[ "$(in_ct stat -c '%a %U %G' /etc/rpi-deploy)" = "750 root rpi-deploy" ] || fail "config dir: $(in_ct stat -c '%a %U %G' /etc/rpi-deploy)"
[ "$(in_ct stat -c '%a %U %G' /etc/rpi-deploy/rpi-deployd.env)" = "640 root rpi-deploy" ] || fail "env file"
token=$(sed -n 's/^RPI_DEPLOY_TOKEN=//p' "$root/etc/rpi-deploy/rpi-deployd.env")
[[ $token =~ ^[0-9a-f]{64}$ ]] || fail "no generated token"

# The unit as systemd sees it in a real systemd root.
# --man=no: the minimal root has no man command (the page itself is checked above).
in_ct systemd-analyze verify --man=no rpi-deployd.service || fail "systemd-analyze verify"
in_ct systemd-analyze security --threshold=40 rpi-deployd.service >"$work/security.txt" ||
  { cat "$work/security.txt"; fail "exposure above 4.0"; }
say "$(grep 'Overall exposure' "$work/security.txt")"

# --- start, /healthz, data ------------------------------------------------------------------
in_ct systemctl start rpi-deployd || fail "systemctl start"
h=$(healthz) || fail "no /healthz"
grep -q '"status":"ok"' <<<"$h" || fail "healthz: $h"
say "v1 /healthz: $h"
pid=$(in_ct systemctl show -p MainPID --value rpi-deployd)
in_ct grep -Eq '^Uid:\s+[1-9]' "/proc/$pid/status" || fail "rpi-deployd runs as root"
api() { in_ct curl -fsS -H "Authorization: Bearer $token" "$@"; }
api -X POST -H 'Content-Type: application/json' -d '{"code":"CORO","name":"Coronado Karting"}' \
  http://127.0.0.1:8080/api/v1/venues >/dev/null || fail "create venue"
in_ct journalctl -u rpi-deployd --no-pager | grep -qF "$token" && fail "the admin token reached the journal"
# The operator edits the conffile (fewer streams), then restarts.
sed -i 's/"max_streams": 64/"max_streams": 32/' "$root/etc/rpi-deploy/rpi-deployd.json"
grep -q '"max_streams": 32' "$root/etc/rpi-deploy/rpi-deployd.json" || fail "could not edit the conffile"
in_ct systemctl restart rpi-deployd
healthz >/dev/null || fail "no /healthz after the operator's edit"

# --- upgrade: restarted, data and the edited conffile kept -----------------------------------
in_ct apt-get install -y -q "/root/debs/$(basename "$deb_v2")" >"$work/install2.log" 2>&1 ||
  { cat "$work/install2.log"; fail "upgrade"; }
[ "$(in_ct dpkg-query -W -f '${Version}' rpi-deploy)" = "$v2" ] || fail "upgrade did not install $v2"
[ "$(in_ct systemctl is-active rpi-deployd)" = active ] || fail "not running after the upgrade"
h=$(healthz) || fail "no /healthz after the upgrade"
grep -q '"version":"upgrade-test"' <<<"$h" || fail "the old server still answers after the upgrade: $h"
say "v2 /healthz: $h"
grep -q '"max_streams": 32' "$root/etc/rpi-deploy/rpi-deployd.json" || fail "the operator's conffile edit was lost"
ls "$root/etc/rpi-deploy/"*.dpkg-* 2>/dev/null && fail "dpkg left conffile copies"
[ "$(sed -n 's/^RPI_DEPLOY_TOKEN=//p' "$root/etc/rpi-deploy/rpi-deployd.env")" = "$token" ] || fail "token changed on upgrade"
api http://127.0.0.1:8080/api/v1/venues/CORO | grep -q '"Coronado Karting"' || fail "venue lost in the upgrade"

# --- remove: stopped, data and configuration kept ---------------------------------------------
in_ct apt-get remove -y -q rpi-deploy >"$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "remove"; }
[ "$(in_ct systemctl is-active rpi-deployd || true)" != active ] || fail "still running after remove"
[ ! -e "$root/usr/bin/rpi-deployd" ] || fail "binary left after remove"
[ -s "$root/var/lib/rpi-deploy/rpi-deployd.db" ] || fail "remove deleted the store"
[ -e "$root/etc/rpi-deploy/rpi-deployd.env" ] || fail "remove deleted the token"
grep -q '"max_streams": 32' "$root/etc/rpi-deploy/rpi-deployd.json" || fail "remove lost the configuration"

# --- purge: data and configuration gone ----------------------------------------------------------
in_ct apt-get purge -y -q rpi-deploy >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge"; }
[ ! -e "$root/var/lib/rpi-deploy" ] || fail "purge kept /var/lib/rpi-deploy"
[ ! -e "$root/etc/rpi-deploy" ] || fail "purge kept /etc/rpi-deploy: $(ls -A "$root/etc/rpi-deploy")"
[ -z "$(in_ct find /etc/systemd/system -name 'rpi-deployd*')" ] || fail "purge left unit links"

# --- scripts/install.sh: the same package, started ---------------------------------------------
in_ct bash /root/debs/install.sh --deb "/root/debs/$(basename "$deb_v2")" --start >"$work/install3.log" 2>&1 ||
  { cat "$work/install3.log"; fail "install.sh --deb --start"; }
h=$(healthz) || fail "no /healthz after install.sh"
token=$(sed -n 's/^RPI_DEPLOY_TOKEN=//p' "$root/etc/rpi-deploy/rpi-deployd.env")
api http://127.0.0.1:8080/api/v1/venues >/dev/null || fail "the new token is not accepted"
api http://127.0.0.1:8080/api/v1/venues/CORO >/dev/null 2>&1 && fail "purge left the old store behind"
say "install.sh --start: $h"

stop_ct
say "ok ($((SECONDS - t0)) s)"

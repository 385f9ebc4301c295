#!/usr/bin/env bash
# scripts/install.sh into a staging root (DESTDIR): user, directories, starter config,
# systemd unit, sysctl file; twice, to prove it is idempotent; the unit checked with
# systemd-analyze verify and security. Nothing on the real machine changes.
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
fail() { echo "30-install: FAIL: $*" >&2; exit 1; }

go build -trimpath -o "$work/rpi-deployd" ./server/cmd/rpi-deployd

before=$(sha256sum /etc/passwd /etc/group; ls /etc/systemd/system /etc/sysctl.d 2>/dev/null)

DESTDIR=$root scripts/install.sh --bin "$work/rpi-deployd" >"$work/first.log"
grep -q 'wrote /etc/systemd/system/rpi-deployd.service' "$work/first.log" || fail "first run wrote no unit"

# The user and group exist in the staging root, with no login shell.
grep -Eq '^rpi-deploy:x:[0-9]+:[0-9]+:.*:/var/lib/rpi-deploy:/usr/sbin/nologin$' "$root/etc/passwd" || fail "no rpi-deploy user in $root/etc/passwd"
grep -q '^rpi-deploy:' "$root/etc/group" || fail "no rpi-deploy group"
uid=$(awk -F: '$1=="rpi-deploy"{print $3}' "$root/etc/passwd")
[ "$uid" -ne 0 ] || fail "rpi-deploy has uid 0"

# Directories and modes.
[ "$(stat -c '%a %u' "$root/var/lib/rpi-deploy")" = "750 $uid" ] || fail "data dir: $(stat -c '%a %u' "$root/var/lib/rpi-deploy")"
[ "$(stat -c '%a %u' "$root/etc/rpi-deploy")" = "750 0" ] || fail "config dir: $(stat -c '%a %u' "$root/etc/rpi-deploy")"
[ "$(stat -c '%a' "$root/etc/rpi-deploy/rpi-deployd.env")" = 640 ] || fail "env file mode"
[ "$(stat -c '%a' "$root/etc/rpi-deploy/rpi-deployd.json")" = 640 ] || fail "config file mode"
grep -qxF 'ExecStart=/usr/local/bin/rpi-deployd serve --config /etc/rpi-deploy/rpi-deployd.json' "$root/etc/systemd/system/rpi-deployd.service" || fail "ExecStart"
grep -Eq '^RPI_DEPLOY_TOKEN=[0-9a-f]{64}$' "$root/etc/rpi-deploy/rpi-deployd.env" || fail "no generated token"
[ -x "$root/usr/local/bin/rpi-deployd" ] || fail "binary not installed"

# The unit: not root, only the two capabilities, hardened.
u=$root/etc/systemd/system/rpi-deployd.service
for want in 'User=rpi-deploy' 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
  'ReadWritePaths=/var/lib/rpi-deploy' 'PrivateTmp=yes' \
  'AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_RAW' \
  'CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_RAW'; do
  grep -qxF "$want" "$u" || fail "unit lacks $want"
done
for key in net.core.rmem_max net.core.wmem_max net.core.somaxconn net.ipv4.ip_local_port_range fs.file-max; do
  grep -q "^$key = " "$root/etc/sysctl.d/60-rpi-deploy.conf" || fail "sysctl lacks $key"
  # every key must exist in this kernel (a typo would make sysctl -p fail on the host)
  [ -e "/proc/sys/${key//.//}" ] || fail "sysctl key $key does not exist"
done

# The starter configuration is one the server accepts: run the installed binary on it
# (data and listen address moved into the work directory by the environment).
mkdir -p "$work/data"
RPI_DEPLOY_DATA=$work/data RPI_DEPLOY_LISTEN=127.0.0.1:0 \
  "$root/usr/local/bin/rpi-deployd" serve --config "$root/etc/rpi-deploy/rpi-deployd.json" 2>"$work/serve.log" &
srv=$!
for _ in $(seq 100); do grep -q 'rpi-deployd: listening on http://' "$work/serve.log" && break; sleep 0.1; done
url=$(sed -n 's/^rpi-deployd: listening on //p' "$work/serve.log" | head -1)
kill "$srv"; wait "$srv" || true
[ -n "$url" ] || { cat "$work/serve.log"; fail "rpi-deployd did not start on the starter configuration"; }

# Idempotent: a second run changes nothing and keeps the token.
snap() { (cd "$root" && find . -printf '%p %m %u %g %s\n' | sort && find . -type f ! -name '.pwd.lock' -exec sha256sum {} + | sort); }
snap >"$work/a"
DESTDIR=$root scripts/install.sh --bin "$work/rpi-deployd" >"$work/second.log"
snap >"$work/b"
diff -u "$work/a" "$work/b" || fail "second run changed the staging root"
if grep -q 'wrote\|installed /' "$work/second.log"; then cat "$work/second.log"; fail "second run rewrote files"; fi

# An upgrade (new binary) replaces only the binary.
cp "$work/rpi-deployd" "$work/rpi-deployd.new"; echo >>"$work/rpi-deployd.new"
DESTDIR=$root scripts/install.sh --bin "$work/rpi-deployd.new" >"$work/third.log"
[ "$(grep -c '' "$work/third.log")" -eq 2 ] && grep -q 'installed /usr/local/bin/rpi-deployd' "$work/third.log" || { cat "$work/third.log"; fail "upgrade did more than replace the binary"; }
cmp -s "$work/rpi-deployd.new" "$root/usr/local/bin/rpi-deployd" || fail "upgrade did not install the new binary"

# A missing binary is a clear error that installs nothing.
if DESTDIR=$work/none scripts/install.sh --bin "$work/nope" 2>"$work/err"; then fail "missing binary accepted"; fi
grep -q 'not an executable' "$work/err" || fail "unclear error: $(cat "$work/err")"
[ ! -e "$work/none" ] || fail "missing binary left files behind"

# systemd checks the unit (paths rewritten into the staging root, since verify looks for
# ExecStart and EnvironmentFile on this machine).
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing (scripts/deps/demo.apt lists systemd)"
mkdir -p "$work/verify"
sed -e "s#/usr/local/bin/rpi-deployd#$root/usr/local/bin/rpi-deployd#" \
    -e "s#^EnvironmentFile=#EnvironmentFile=$root#" "$u" >"$work/verify/rpi-deployd.service"
systemd-analyze verify "$work/verify/rpi-deployd.service" || fail "systemd-analyze verify"
systemd-analyze security --offline=yes --threshold=40 "$work/verify/rpi-deployd.service" >"$work/security.txt" ||
  { cat "$work/security.txt"; fail "exposure above 4.0"; }
echo "30-install: $(grep 'Overall exposure' "$work/security.txt")"

after=$(sha256sum /etc/passwd /etc/group; ls /etc/systemd/system /etc/sysctl.d 2>/dev/null)
[ "$before" = "$after" ] || fail "the real machine changed"
echo "30-install: ok"

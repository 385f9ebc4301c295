#!/usr/bin/env bash
# Installs rpi-deployd on a deployment host (Debian 12 or later, systemd):
#
#   - the binary                 /usr/local/bin/rpi-deployd
#   - a system user and group    rpi-deploy (systemd-sysusers; no login, no root)
#   - directories                /var/lib/rpi-deploy (data: SQLite, images, TFTP root)
#                                /etc/rpi-deploy     (configuration)
#   - a starter configuration    /etc/rpi-deploy/rpi-deployd.json (kept if it exists)
#   - the admin token            /etc/rpi-deploy/rpi-deployd.env (generated once, kept)
#   - a hardened systemd unit    /etc/systemd/system/rpi-deployd.service
#   - sysctl tuning              /etc/sysctl.d/60-rpi-deploy.conf
#
# Idempotent: run it again after building a new binary to upgrade (the configuration
# and the data are kept; the service is restarted if it runs).
#
# Usage: scripts/install.sh [--bin PATH] [--start]
#   --bin PATH   the rpi-deployd binary to install (default: bin/rpi-deployd; run `make build`)
#   --start      enable and start the service now (default: enable only)
# Environment:
#   DESTDIR      install into this root instead of / (tests, packaging). Nothing outside
#                DESTDIR is touched: no sysctl is applied, no service is reloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=bin/rpi-deployd
start=0
while (($#)); do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --start) start=1; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "install: unknown argument $1" >&2; exit 2 ;;
  esac
done

root=${DESTDIR:-}
root=${root%/}
live=0; [ -z "$root" ] && live=1

if [ ! -x "$bin" ]; then
  echo "install: $bin is not an executable; run 'make build' or pass --bin PATH" >&2
  exit 1
fi
if ((live)) && [ "$(id -u)" -ne 0 ]; then
  echo "install: run as root (or set DESTDIR to install into a staging root)" >&2
  exit 1
fi

user=rpi-deploy
datadir=/var/lib/rpi-deploy
confdir=/etc/rpi-deploy
conffile=$confdir/rpi-deployd.json
envfile=$confdir/rpi-deployd.env
unit=/etc/systemd/system/rpi-deployd.service

say() { echo "install: $*"; }

# put SRC_TEXT (stdin) at PATH with MODE, only rewriting it when it changed.
put() {
  local path=$root$1 mode=$2 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  mkdir -p "$(dirname "$path")"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    return 0
  fi
  install -m "$mode" "$tmp" "$path"
  rm -f "$tmp"
  say "wrote $1"
}

# --- binary ---------------------------------------------------------------------------
mkdir -p "$root/usr/local/bin"
if ! cmp -s "$bin" "$root/usr/local/bin/rpi-deployd"; then
  # Install beside and rename: a running server keeps its old inode.
  install -m 0755 "$bin" "$root/usr/local/bin/.rpi-deployd.new"
  mv -f "$root/usr/local/bin/.rpi-deployd.new" "$root/usr/local/bin/rpi-deployd"
  say "installed /usr/local/bin/rpi-deployd"
fi

# --- documentation (the unit's Documentation= points here) ------------------------------
for doc in docs/operations.md docs/netboot.md docs/api.md; do
  [ -f "$doc" ] && put "/usr/local/share/doc/rpi-deploy/$(basename "$doc")" 0644 <"$doc"
done

# --- user and directories (sysusers.d + tmpfiles.d: systemd recreates them at boot) ----
put /usr/lib/sysusers.d/rpi-deploy.conf 0644 <<EOF
# rpi-deployd runs as this system user (scripts/install.sh)
u $user - "rpi-deploy server" $datadir
EOF
put /usr/lib/tmpfiles.d/rpi-deploy.conf 0644 <<EOF
# rpi-deployd directories (scripts/install.sh)
d $datadir 0700 $user $user -
d $confdir 0750 root $user -
EOF
mkdir -p "$root/etc"
if command -v systemd-sysusers >/dev/null; then
  if ((live)); then systemd-sysusers /usr/lib/sysusers.d/rpi-deploy.conf; else systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/rpi-deploy.conf"; fi
elif ((live)) && ! getent passwd "$user" >/dev/null; then
  useradd --system --user-group --home-dir "$datadir" --no-create-home --shell /usr/sbin/nologin "$user"
fi
if command -v systemd-tmpfiles >/dev/null; then
  if ((live)); then systemd-tmpfiles --create /usr/lib/tmpfiles.d/rpi-deploy.conf; else systemd-tmpfiles --root="$root" --create "$root/usr/lib/tmpfiles.d/rpi-deploy.conf"; fi
else
  install -d -m 0700 "$root$datadir"
  install -d -m 0750 "$root$confdir"
  ((live)) && chown "$user:$user" "$datadir" && chown "root:$user" "$confdir"
fi

# --- starter configuration (never overwritten: operators edit it) ------------------------
if [ ! -f "$root$conffile" ]; then
  (umask 027; cat >"$root$conffile" <<EOF
{
  "data": "$datadir",
  "listen": ":8080",
  "max_streams": 64,
  "retry_after": "10s",
  "log_level": "info"
}
EOF
  )
  ((live)) && chgrp "$user" "$conffile"
  say "wrote $conffile"
fi
# The admin token is a secret: its own file, generated once.
if [ ! -f "$root$envfile" ]; then
  token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  (umask 027; cat >"$root$envfile" <<EOF
# Secrets of rpi-deployd.service (systemd EnvironmentFile); the rest of the
# configuration is $conffile. See docs/operations.md.
# Admin token for the management API and the CLI (Authorization: Bearer TOKEN),
# generated at install time. CLI: export RPI_DEPLOY_TOKEN=...
RPI_DEPLOY_TOKEN=$token
EOF
  )
  ((live)) && chgrp "$user" "$envfile"
  say "wrote $envfile (admin token generated)"
fi

# --- systemd unit -----------------------------------------------------------------------
put "$unit" 0644 <<EOF
# rpi-deployd: DHCP, TFTP, HTTP API and dashboard for Raspberry Pi 5 fleet provisioning.
# Installed by scripts/install.sh; local changes belong in a drop-in
# (systemctl edit rpi-deployd), not here: the installer rewrites this file.
[Unit]
Description=rpi-deploy server (DHCP, TFTP, images, dashboard)
Documentation=file:///usr/local/share/doc/rpi-deploy/operations.md
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$user
Group=$user
EnvironmentFile=$envfile
ExecStart=/usr/local/bin/rpi-deployd serve --config $conffile
Restart=on-failure
RestartSec=2
TimeoutStopSec=30
LimitNOFILE=65536
UMask=0027

# Ports 67 (DHCP) and 69 (TFTP) and raw sockets for DHCP, nothing more: not root.
AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_RAW
CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_RAW
NoNewPrivileges=yes

# The file system is read-only except the data directory.
ProtectSystem=strict
ReadWritePaths=$datadir
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
PrivateMounts=yes
ProtectProc=invisible
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
EOF

# --- kernel tuning for many boards at once -------------------------------------------------
put /etc/sysctl.d/60-rpi-deploy.conf 0644 <<'EOF'
# rpi-deploy: many boards network-boot and stream images at once (scripts/install.sh).
# Socket buffers: bursts of DHCP DISCOVERs and TFTP ACKs from a rack powering on, and
# large windows for image streams to dozens of boards.
net.core.rmem_max = 8388608
net.core.wmem_max = 8388608
net.core.rmem_default = 1048576
net.core.netdev_max_backlog = 5000
# Accept queue for bursts of HTTP connections (agent hellos, image streams, dashboard).
net.core.somaxconn = 4096
net.ipv4.tcp_max_syn_backlog = 4096
# TFTP opens one UDP socket per transfer on an ephemeral port.
net.ipv4.ip_local_port_range = 10240 65000
# Open files: one socket per TFTP transfer and per image stream, plus the store.
fs.file-max = 1048576
EOF

if ((live)); then
  # Inside a container /proc/sys may be read-only: the file still applies at next boot.
  sysctl -q -p /etc/sysctl.d/60-rpi-deploy.conf || say "warning: could not apply the sysctl settings now (they apply at boot)"
  systemctl daemon-reload
  systemctl enable rpi-deployd.service
  if ((start)); then
    systemctl restart rpi-deployd.service
    say "rpi-deployd enabled and running: systemctl status rpi-deployd"
  else
    systemctl try-restart rpi-deployd.service # an upgrade restarts a running server
    say "rpi-deployd enabled; start it with: systemctl start rpi-deployd"
  fi
else
  say "installed into $root (not applied: DESTDIR is set)"
fi

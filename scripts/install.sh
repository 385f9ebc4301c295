#!/usr/bin/env bash
# Installs rpi-deployd on this machine (Debian 12 or later, systemd) the Debian way: it
# builds the rpi-deploy package for this machine's architecture (`make deb`) and
# installs it with apt. Everything it puts on the machine — binaries, user, directories,
# hardened unit, sysctl file, starter configuration, admin token — is the package's
# (packaging/, docs/operations.md section 1). Run it again to upgrade: the configuration
# and the data are kept, a running service is restarted.
#
# Usage: scripts/install.sh [--deb FILE] [--start]
#   --deb FILE   install this package instead of building one (no source tree needed)
#   --start      start the service now (the package enables it but does not start it)
set -euo pipefail

deb=
start=0
while (($#)); do
  case "$1" in
    --deb) deb=${2:?--deb needs a file}; shift 2 ;;
    --start) start=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "install: run as root" >&2
  exit 1
fi

if [ -z "$deb" ]; then
  cd "$(dirname "$0")/.."
  arch=$(dpkg --print-architecture)
  out=build/deb
  make deb DEB_ARCHES="$arch" DEB_OUT="$out"
  deb=$(ls -t "$out"/rpi-deploy_*_"$arch".deb | head -1)
fi
if [ ! -f "$deb" ] || ! dpkg-deb -f "$deb" Package >/dev/null 2>&1; then
  echo "install: $deb is not a Debian package; run 'make deb' or pass --deb FILE" >&2
  exit 1
fi
case "$deb" in /*) ;; *) deb=$PWD/$deb ;; esac

DEBIAN_FRONTEND=noninteractive apt-get install -y "$deb"
if ((start)); then
  systemctl start rpi-deployd.service
  echo "install: rpi-deployd running: systemctl status rpi-deployd"
else
  echo "install: rpi-deployd enabled; start it with: systemctl start rpi-deployd"
fi

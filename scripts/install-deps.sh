#!/usr/bin/env bash
# Installs what the build, the demo and the tests need on a Debian machine:
# the Debian packages listed in scripts/deps/*.apt (one name a line, # comments),
# the Go modules, and the npm packages of the dashboard's browser tests.
# Idempotent: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t want < <(cat scripts/deps/*.apt | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: apt-get install ${missing[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

go mod download

for d in dashboard/e2e; do
  if [ -f "$d/package.json" ] && [ ! -d "$d/node_modules" ]; then
    (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

#!/usr/bin/env bash
# Three servers on one PostgreSQL against one server on SQLite
# (scripts/bench/hellobench pg): bursts of 1000 hellos sent at once, each opening a
# new deployment, spread over three rpi-deployd processes sharing a PostgreSQL 15
# database, and the same bursts to one rpi-deployd on its own SQLite file, taking
# turns: p50 and p99 of each, "bench: hello-p99-3servers-pg ours=MS
# baseline=MS_SQLITE_ONE_SERVER ratio=R".
# PostgreSQL is Debian's postgresql-15 (scripts/deps/postgres.apt), a cluster made
# here with initdb in a temporary directory, run as nobody when we are root, on a
# Unix socket only, with its default settings (fsync on), and removed at the end.
# BOARDS, BURSTS and SERVERS change the sizes; PGOPTS adds PostgreSQL settings
# (e.g. PGOPTS="-c synchronous_commit=off" to see what the flush at commit costs).
set -euo pipefail
cd "$(dirname "$0")/../.."
go build -o bin/ ./server/cmd/rpi-deployd # always: a stale bin/rpi-deployd would be measured silently
go build -o bin/hellobench ./scripts/bench/hellobench

pgbin=/usr/lib/postgresql/15/bin
[ -x "$pgbin/postgres" ] || { echo "13-hello-pg: PostgreSQL 15 is not installed: make deps" >&2; exit 1; }
pg=$(mktemp -d /tmp/hellobench-pg-XXXXXX)
chmod 755 "$pg"
as_owner=()
if [ "$(id -u)" = 0 ]; then
  chown nobody: "$pg"
  as_owner=(runuser -u nobody --)
fi
stop() {
  "${as_owner[@]}" "$pgbin/pg_ctl" -D "$pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg"
}
trap stop EXIT
"${as_owner[@]}" "$pgbin/initdb" -D "$pg/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$pg/initdb.log"
"${as_owner[@]}" "$pgbin/pg_ctl" -D "$pg/data" -w -l "$pg/server.log" \
  -o "-c listen_addresses='' -c unix_socket_directories=$pg -c max_connections=300 ${PGOPTS:-}" start >/dev/null
"$pgbin/createdb" -h "$pg" -U postgres bench

bin/hellobench pg -bin bin/rpi-deployd -db "postgres://postgres@/bench?host=$pg" \
  -servers "${SERVERS:-3}" -boards "${BOARDS:-1000}" -bursts "${BURSTS:-3}"

#!/usr/bin/env bash
# How three servers on one PostgreSQL make their writes serial, measured (the choice
# is in docs/architecture.md, "Several servers on one PostgreSQL"): three stores on
# one database (pgtest's PostgreSQL 15), 600 hellos of new boards sent at once spread
# over them, one batch, one 600-name pool (BenchmarkHelloBurst3Stores in
# server/domain). ours = the advisory write lock per group commit (the store's
# default), baseline = SERIALIZABLE transactions run again after a serialization
# failure (a group that loses 20 times in a row fails its hellos: counted, and the
# latencies are those of all hellos). RUNS sets the bursts per mode (default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'BenchmarkHelloBurst3Stores' -benchtime "${RUNS:-3}x" ./server/domain |
	awk '
	/BenchmarkHelloBurst3Stores\/(lock|serializable)/ {
		mode = ($1 ~ /\/lock/) ? "lock" : "ser"
		for (i = 1; i < NF; i++) {
			if ($(i+1) == "p50-ms") p50[mode] = $i
			if ($(i+1) == "p99-ms") p99[mode] = $i
			if ($(i+1) == "failed-hellos") failed[mode] = $i
		}
	}
	END {
		if (!("lock" in p99) || !("ser" in p99)) { print "13-hello-pg: benchmark lines missing" > "/dev/stderr"; exit 1 }
		printf "bench: hello-p50-600-3stores-pg-lock-vs-serializable ours=%s baseline=%s ratio=%.2f\n", p50["lock"], p50["ser"], p50["lock"] / p50["ser"]
		printf "bench: hello-p99-600-3stores-pg-lock-vs-serializable ours=%s baseline=%s ratio=%.2f\n", p99["lock"], p99["ser"], p99["lock"] / p99["ser"]
		printf "13-hello-pg: hellos failed (group lost 20 times in a row): lock %d, serializable %d\n", failed["lock"], failed["ser"]
	}'

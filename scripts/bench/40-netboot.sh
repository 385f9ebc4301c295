#!/usr/bin/env bash
# Netboot benchmarks: rpi-deployd's DHCP and TFTP against dnsmasq's, side by side in
# the same run, in two network namespaces joined by a veth pair (needs root).
#   tftp-30mb-atftp-s    one 30 MB file, atftp --option "blksize 1468" --option "tsize 0"
#   tftp-20-clients-s    20 atftp clients at once, 10 MB each (wall time until all are done;
#                        they share one address, so rpi-deployd runs with --tftp-max-per-client 20:
#                        its default of 8 per address would refuse 12 of them)
#   dhcp-*               perfdhcp (kea-admin) at 500 DORA/s for 10 s, broadcast replies:
#                        DISCOVER-OFFER and REQUEST-ACK latency p50/p99 (ms), drops (%)
# Prints "bench: NAME ours=X baseline=Y ratio=R" (ratio = ours/baseline; for times and
# drops lower is better).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/rpi-deployd}
[ -x "$BIN" ] || go build -o "$BIN" ./server/cmd/rpi-deployd
for t in dnsmasq atftp perfdhcp ip; do command -v $t >/dev/null || { echo "40-netboot: $t missing (make deps)"; exit 1; }; done
[ "$(id -u)" -eq 0 ] || { echo "40-netboot: needs root (network namespaces)"; exit 1; }

S=rdbench-srv-$$ C=rdbench-cli-$$ W=$(mktemp -d)
cleanup() {
  for ns in $S $C; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill $p 2>/dev/null || true; done
  done
  sleep 0.2
  ip netns del $S 2>/dev/null || true
  ip netns del $C 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add $S; ip netns add $C
ip link add rdb0-$$ type veth peer name rdb1-$$
ip link set rdb0-$$ netns $S name srv0; ip link set rdb1-$$ netns $C name cli0
ip -n $S addr add 10.79.0.1/16 dev srv0; ip -n $C addr add 10.79.0.2/16 dev cli0
for ns in $S $C; do ip -n $ns link set lo up; done
ip -n $S link set srv0 up; ip -n $C link set cli0 up

root=$W/tftproot; mkdir -p "$root"
head -c 30000000 /dev/urandom > "$root/kernel_2712.img"
head -c 10000000 /dev/urandom > "$root/initramfs_2712"
head -c 80000 /dev/urandom > "$root/bcm2712-rpi-5-b.dtb"

ours_start() {
  ip netns exec $S "$BIN" serve --data "$W/data" --listen 10.79.0.1:8080 --log-level error --tftp-max-per-client 20 \
    --dhcp-mode full --dhcp-interface srv0 --dhcp-range 10.79.1.0-10.79.200.255 --tftp-root "$root" 2>"$W/ours.log" &
  for _ in $(seq 100); do grep -q "listening on" "$W/ours.log" && return; sleep 0.1; done
  cat "$W/ours.log"; exit 1
}
dnsmasq_start() {
  rm -f "$W/dnsmasq.leases"
  ip netns exec $S dnsmasq --no-daemon --port=0 --no-ping --interface=srv0 --bind-interfaces \
    --dhcp-range=10.79.1.0,10.79.200.255,1h --dhcp-leasefile="$W/dnsmasq.leases" \
    --enable-tftp --tftp-root="$root" --log-facility=/dev/null 2>"$W/dnsmasq.log" &
  sleep 1
}
stop_all() {
  for p in $(ip netns pids $S); do kill $p 2>/dev/null || true; done
  for _ in $(seq 50); do [ -z "$(ip netns pids $S)" ] && return; sleep 0.1; done
}

now() { date +%s.%N; }
tftp_one() { # file size-check
  local out=$W/get.$RANDOM
  ip netns exec $C atftp --option "blksize 1468" --option "tsize 0" -g -r "$1" -l "$out" 10.79.0.1 69 >/dev/null 2>&1
  cmp -s "$out" "$root/$1" || { echo "40-netboot: $1 differs"; exit 1; }
  rm -f "$out"
}
tftp_30mb() { local t0; t0=$(now); tftp_one kernel_2712.img; printf "%.3f" "$(echo "$(now) - $t0" | bc)"; }
tftp_20() {
  local t0 pids=(); t0=$(now)
  for _ in $(seq 20); do tftp_one initramfs_2712 & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p"; done
  printf "%.3f" "$(echo "$(now) - $t0" | bc)"
}
perf() { # prints: offer_p50 offer_p99 ack_p50 ack_p99 drops_pct
  ip netns exec $C perfdhcp -4 -B -l cli0 -r 500 -p 10 -R 60000 -x t > "$W/perf.out" 2>&1 || true
  awk '
    /Timestamps for packets: DISCOVER-OFFER/ {sec="o"} /Timestamps for packets: REQUEST-ACK/ {sec="a"}
    /Statistics for: DISCOVER-OFFER/ {st="o"} /Statistics for: REQUEST-ACK/ {st="a"}
    /^sent packets:/ {sent[st]=$3} /^drops:/ {drop[st]=$2}
    /sent \/ received:/ { d=($6-$4)*1000; if (sec=="o") o[no++]=d; else a[na++]=d }
    function pct(arr, n, p,   i, j, t) {
      if (n == 0) return "nan"
      for (i = 1; i < n; i++) { t = arr[i]; for (j = i - 1; j >= 0 && arr[j] > t; j--) arr[j+1] = arr[j]; arr[j+1] = t }
      return sprintf("%.3f", arr[int((n-1)*p)])
    }
    END {
      total = sent["o"] + sent["a"]; dropped = drop["o"] + drop["a"]
      printf "%s %s %s %s %.2f\n", pct(o, no, 0.5), pct(o, no, 0.99), pct(a, na, 0.5), pct(a, na, 0.99), (total ? 100*dropped/total : 100)
    }' "$W/perf.out"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b+0 == 0) print "nan"; else printf "%.3f", a/b }'; }
line() { echo "bench: $1 ours=$2 baseline=$3 ratio=$(ratio "$2" "$3")"; }
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

echo "40-netboot: TFTP (atftp, blksize 1468)"
ours_start
o30=$(median3 "$(tftp_30mb)" "$(tftp_30mb)" "$(tftp_30mb)"); o20=$(tftp_20)
stop_all
dnsmasq_start
b30=$(median3 "$(tftp_30mb)" "$(tftp_30mb)" "$(tftp_30mb)"); b20=$(tftp_20)
stop_all
line tftp-30mb-atftp-s "$o30" "$b30"
line tftp-20-clients-10mb-s "$o20" "$b20"

echo "40-netboot: DHCP (perfdhcp -r 500 -p 10, unique clients)"
ours_start; read -r oo50 oo99 oa50 oa99 odrop < <(perf); stop_all
dnsmasq_start; read -r bo50 bo99 ba50 ba99 bdrop < <(perf); stop_all
line dhcp-offer-p50-ms "$oo50" "$bo50"
line dhcp-offer-p99-ms "$oo99" "$bo99"
line dhcp-ack-p50-ms "$oa50" "$ba50"
line dhcp-ack-p99-ms "$oa99" "$ba99"
line dhcp-drops-pct "$odrop" "$bdrop"

#!/bin/bash
# Re-makes dnsmasq-pi-exchange.pcap: one DISCOVER shaped like a Pi bootloader's,
# carrying the option 97 bytes a real Pi 4 sent (option97-rpi4.txt) from that
# board's MAC (dc:a6:32:2e:f8:ed), and dnsmasq's real OFFER to it
# (pxe-service=0,"Raspberry Pi Boot", as the Raspberry Pi netboot documentation
# configures it). Runs in two network namespaces that it creates and removes.
# Needs root, dnsmasq, tcpdump and Debian's python3-scapy (/usr/bin/python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/dnsmasq-pi-exchange.pcap}
opt97=$(grep -v '^#' "$here/option97-rpi4.txt" | tr -d ':\n ')
s=cap-s-$$ c=cap-c-$$
cleanup() {
	[ -n "${dpid:-}" ] && kill "$dpid" 2>/dev/null || true
	[ -n "${tpid:-}" ] && kill "$tpid" 2>/dev/null || true
	ip netns del "$s" 2>/dev/null || true
	ip netns del "$c" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$s"
ip netns add "$c"
ip link add vs$$ netns "$s" type veth peer name vc$$ netns "$c"
ip -n "$s" addr add 10.99.0.1/24 dev vs$$
ip -n "$s" link set vs$$ up
ip -n "$c" link set vc$$ address dc:a6:32:2e:f8:ed
ip -n "$c" link set vc$$ up
ip netns exec "$s" dnsmasq --no-daemon --port=0 --no-ping --interface=vs$$ --bind-interfaces \
	--dhcp-range=10.99.0.100,10.99.0.199,1h --dhcp-leasefile=/dev/null \
	'--pxe-service=0,Raspberry Pi Boot' --log-facility=- &
dpid=$!
ip netns exec "$c" tcpdump -i vc$$ -U -w "$out" 'udp and (port 67 or port 68)' 2>/dev/null &
tpid=$!
sleep 1
ip netns exec "$c" /usr/bin/python3 "$here/pi_dora.py" vc$$ "$opt97" discover
sleep 0.5

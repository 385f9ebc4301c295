#!/bin/bash
# capture-dnsmasq.sh [pi|clients] [OUT] captures real DHCP exchanges with dnsmasq
# (pxe-service=0,"Raspberry Pi Boot", as the Raspberry Pi netboot documentation
# configures it):
#   pi       re-makes dnsmasq-pi-exchange.pcap: one DISCOVER shaped like a Pi
#            bootloader's, carrying the option 97 bytes a real Pi 4 sent
#            (option97-rpi4.txt) from that board's MAC (dc:a6:32:2e:f8:ed), and
#            dnsmasq's real OFFER to it;
#   clients  re-makes clients-dnsmasq.pcap: ISC dhclient's DISCOVER and REQUEST,
#            busybox udhcpc's (with a hostname) and two exchanges of Kea's perfdhcp
#            as a relay (as scripts/bench/40-netboot.sh sends them), and dnsmasq's
#            answers.
# Runs in two network namespaces that it creates and removes. Needs root, dnsmasq,
# tcpdump, Debian's python3-scapy (/usr/bin/python3), isc-dhcp-client, busybox and
# kea-admin.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
what=${1:-pi}
case $what in
pi) out=${2:-$here/dnsmasq-pi-exchange.pcap} mac=dc:a6:32:2e:f8:ed ;;
clients) out=${2:-$here/clients-dnsmasq.pcap} mac=02:99:00:00:00:01 ;;
*) echo "usage: $0 [pi|clients] [OUT]" >&2; exit 2 ;;
esac
s=cap-s-$$ c=cap-c-$$ w=$(mktemp -d)
cleanup() {
	for ns in "$s" "$c"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
	done
	sleep 0.3
	ip netns del "$s" 2>/dev/null || true
	ip netns del "$c" 2>/dev/null || true
	rm -rf "$w"
}
trap cleanup EXIT
ip netns add "$s"
ip netns add "$c"
ip link add vs$$ netns "$s" type veth peer name vc$$ netns "$c"
ip -n "$s" addr add 10.99.0.1/24 dev vs$$
ip -n "$s" link set vs$$ up
ip -n "$c" link set vc$$ address $mac
ip -n "$c" link set vc$$ up
ip netns exec "$s" dnsmasq --no-daemon --port=0 --no-ping --interface=vs$$ --bind-interfaces \
	--dhcp-range=10.99.0.100,10.99.0.199,1h --dhcp-leasefile="$w/leases" \
	'--pxe-service=0,Raspberry Pi Boot' --log-facility=- &
ip netns exec "$c" tcpdump -i vc$$ -U -w "$out" 'udp and (port 67 or port 68)' 2>/dev/null &
sleep 1
if [ "$what" = pi ]; then
	opt97=$(grep -v '^#' "$here/option97-rpi4.txt" | tr -d ':\n ')
	ip netns exec "$c" /usr/bin/python3 "$here/pi_dora.py" vc$$ "$opt97" discover
else
	ip netns exec "$c" dhclient -1 -pf "$w/dhclient.pid" -lf "$w/dhclient.leases" -sf /bin/true vc$$ 2>/dev/null
	ip -n "$c" link set vc$$ address 02:99:00:00:00:02
	ip netns exec "$c" busybox udhcpc -i vc$$ -n -q -f -x hostname:KXP2-CORO-001 -s /bin/true >/dev/null 2>&1
	ip -n "$c" addr add 10.99.0.2/24 dev vc$$
	ip netns exec "$c" perfdhcp -4 -l vc$$ -r 2 -n 2 -R 2 10.99.0.1 >/dev/null 2>&1 || true
fi
sleep 0.5

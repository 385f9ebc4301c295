// Package dhcp is rpi-deployd's DHCPv4 server for network-booting Raspberry Pi 5
// boards, built on github.com/insomniacslk/dhcp's dhcpv4 messages with a read loop of
// its own (Server.Serve: one goroutine answers what needs no database; sock_linux.go).
//
// It recognises the Pi EEPROM bootloader by option 60 ("PXEClient…") together with
// option 97 (type 0, FourCC "RPi5"/"RPi4", board revision little-endian, low 4 bytes
// of the MAC in wire order, serial little-endian) — never by MAC vendor prefix — and answers it the way dnsmasq with
// pxe-service=0,"Raspberry Pi Boot" does: option 43 with the PXE boot menu (the same
// 32 bytes), option 60 "PXEClient", the client's option 97 echoed, siaddr = our TFTP
// server (and option 66 with the same address in dotted form, which the Pi 4 reads).
//
// Modes:
//   - full: addresses from a range, leases persisted through a LeaseStore,
//     reservations by MAC or serial, lease time. The agent's Linux-side DHCP (option 60
//     "rpi-deploy-agent") gets a normal lease plus option 224 = the agent URL.
//     Options.OnlyBoards leaves every client but Pi bootloaders and the agent
//     unanswered. An offer is held for OfferHold (5 s) and at most MaxOffers (half the
//     range) at once, so DISCOVERs from many MACs cannot hold the range.
//   - proxy: beside a site's own DHCP server; answers Pi bootloaders only, with the
//     boot options and no address (yiaddr 0.0.0.0).
//   - off: no DHCP at all (the caller simply does not start a Server).
//
// Delivery follows RFC 2131 §4.1 as dnsmasq does: to the relay (giaddr) if any; a NAK
// is broadcast; to ciaddr when the client has an address; broadcast when the client set
// the broadcast flag; otherwise unicast to chaddr and the offered address through an
// AF_PACKET socket with a frame we build ourselves (the client cannot ARP yet, and the
// Pi bootloader never sets the broadcast flag).
//
// The package knows nothing of SQL or HTTP: it takes a LeaseStore and a Recorder from
// its caller.
package dhcp

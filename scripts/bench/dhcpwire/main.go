// Command dhcpwire reads a capture of a DHCP server's interface (tcpdump -w) and
// prints how long the server took to answer, as the wire saw it: from each DISCOVER
// to its OFFER and from each REQUEST to its ACK (the same transaction ID and client
// MAC), in milliseconds, as "offer_p50 offer_p99 ack_p50 ack_p99 offers acks".
//
// scripts/bench/40-netboot.sh captures the server's end of the veth pair while
// perfdhcp runs: the kernel timestamps each frame as it enters and leaves the
// server's namespace, so these times are the server's own (its wake-up, its work,
// its send), without the client's. perfdhcp's own figures add the client's side:
// its sending, and its waking up to read the answer on the same two CPUs.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/rpi-deploy/rpi-deploy/scripts/bench/benchkit"
	"github.com/rpi-deploy/rpi-deploy/server/dhcp/dhcptest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dhcpwire CAPTURE.pcap")
		os.Exit(2)
	}
	offers, acks, err := answerTimes(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "dhcpwire:", err)
		os.Exit(1)
	}
	fmt.Printf("%.3f %.3f %.3f %.3f %d %d\n", benchkit.Percentile(offers, 50), benchkit.Percentile(offers, 99),
		benchkit.Percentile(acks, 50), benchkit.Percentile(acks, 99), len(offers), len(acks))
}

// answerTimes pairs each OFFER with the last DISCOVER before it, and each ACK with
// the last REQUEST, of the same transaction ID and client MAC.
func answerTimes(path string) (offers, acks []float64, err error) {
	pkts, err := dhcptest.ReadPcap(path)
	if err != nil {
		return nil, nil, err
	}
	type key struct {
		xid dhcpv4.TransactionID
		mac string
		mt  dhcpv4.MessageType // the request's
	}
	asked := map[key]time.Time{}
	for _, p := range pkts {
		m, err := dhcpv4.FromBytes(p.Payload)
		if err != nil {
			continue // not DHCP
		}
		k := key{m.TransactionID, m.ClientHWAddr.String(), m.MessageType()}
		switch k.mt {
		case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest:
			asked[k] = p.Time
			continue
		case dhcpv4.MessageTypeOffer:
			k.mt = dhcpv4.MessageTypeDiscover
		case dhcpv4.MessageTypeAck:
			k.mt = dhcpv4.MessageTypeRequest
		default:
			continue
		}
		t, ok := asked[k]
		if !ok {
			continue
		}
		delete(asked, k)
		ms := float64(p.Time.Sub(t)) / float64(time.Millisecond)
		if k.mt == dhcpv4.MessageTypeDiscover {
			offers = append(offers, ms)
		} else {
			acks = append(acks, ms)
		}
	}
	return offers, acks, nil
}

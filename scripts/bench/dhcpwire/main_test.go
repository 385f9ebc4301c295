package main

import "testing"

// TestAnswerTimes reads the captured exchanges of dhclient, udhcpc and perfdhcp with
// dnsmasq (server/dhcp/testdata/capture-dnsmasq.sh clients): three DISCOVERs each
// answered by an OFFER, three REQUESTs each by an ACK, every answer after its request.
func TestAnswerTimes(t *testing.T) {
	offers, acks, err := answerTimes("../../../server/dhcp/testdata/clients-dnsmasq.pcap")
	if err != nil {
		t.Fatal(err)
	}
	if len(offers) != 3 || len(acks) != 3 {
		t.Fatalf("%d offers and %d acks paired, want 3 and 3", len(offers), len(acks))
	}
	for _, ms := range append(offers, acks...) {
		if ms <= 0 || ms > 100 {
			t.Errorf("answer after %.3f ms: want a positive time under the capture's spacing", ms)
		}
	}
}

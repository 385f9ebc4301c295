package domain

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"testing/quick"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// TestSerialHostnameAsFmt: serialHostname, written without fmt, is the name
// fmt.Sprintf("%s-%s-%s") of product, venue and the upper-cased serial's low digits
// made: for normalised serials, every width, and random strings of any runes
// (testing/quick), upper case, non-ASCII and shorter than the width included.
func TestSerialHostnameAsFmt(t *testing.T) {
	check := func(product, venue, serial string, digits uint8) bool {
		d := int(digits % 20)
		want := serialHostnameFmt(product, venue, serial, d)
		if got := serialHostname(product, venue, serial, d); got != want {
			t.Errorf("serialHostname(%q, %q, %q, %d) = %q, fmt %q", product, venue, serial, d, got, want)
			return false
		}
		return true
	}
	for _, serial := range []string{"10000000abcdef01", "ABCDEF0123456789", "12ab", "", "ßabc", "aé\xffz0123456789ab"} {
		for _, d := range []uint8{0, 4, 8, 12, 16, 19} {
			check("RXP2", "CORO", serial, d)
		}
	}
	if err := quick.Check(check, &quick.Config{MaxCount: 5000, Rand: rand.New(rand.NewSource(18))}); err != nil {
		t.Error(err)
	}
}

// TestHelloDetailAsFmt: a hello's history line, written without fmt, is the one
// fmt.Sprintf made, for a deploy answer and any other, with random fields.
func TestHelloDetailAsFmt(t *testing.T) {
	old := func(resp agentapi.HelloResponse, in hello) string {
		if resp.Deployment != nil {
			return fmt.Sprintf("deploy %d as %s; agent %s, disk %s %d bytes", resp.Deployment.ID, resp.Deployment.Hostname,
				in.AgentVersion, in.Disk.Device, in.Disk.SizeBytes)
		}
		return fmt.Sprintf("%s; agent %s, disk %s %d bytes", resp.Action, in.AgentVersion, in.Disk.Device, in.Disk.SizeBytes)
	}
	check := func(resp agentapi.HelloResponse, in hello) bool {
		if got, want := helloDetail(&resp, &in), old(resp, in); got != want {
			t.Errorf("helloDetail %q, fmt %q", got, want)
			return false
		}
		return true
	}
	in := hello{Hello: agentapi.Hello{AgentVersion: "v1.2.3", Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30}}}
	check(agentapi.HelloResponse{Action: agentapi.ActionBootLocal}, in)
	check(agentapi.HelloResponse{Action: agentapi.ActionDeploy, Deployment: &agentapi.Deployment{ID: 42, Hostname: "RXP2-CORO-ABCDEF01"}}, in)
	check(agentapi.HelloResponse{Action: "100% <odd>", Deployment: &agentapi.Deployment{ID: -1, Hostname: strings.Repeat("%d", 3)}},
		hello{Hello: agentapi.Hello{AgentVersion: "%s", Disk: agentapi.Disk{Device: "\xff", SizeBytes: -5}}})
	rnd := rand.New(rand.NewSource(18))
	err := quick.Check(check, &quick.Config{MaxCount: 3000, Rand: rnd, Values: func(v []reflect.Value, r *rand.Rand) {
		resp, _ := quick.Value(reflect.TypeFor[agentapi.HelloResponse](), r)
		h, _ := quick.Value(reflect.TypeFor[agentapi.Hello](), r)
		v[0], v[1] = resp, reflect.ValueOf(hello{Hello: h.Interface().(agentapi.Hello)})
	}})
	if err != nil {
		t.Error(err)
	}
}

// serialHostnameFmt is serialHostname as it was written before, with fmt: the
// reference TestSerialHostnameAsFmt holds it to.
func serialHostnameFmt(product, venue, serial string, digits int) string {
	s := strings.ToUpper(serial)
	if len(s) > digits {
		s = s[len(s)-digits:]
	}
	return fmt.Sprintf("%s-%s-%s", product, venue, s)
}

// TestSeenBoard: the board a hello leaves takes the MAC, model, revision and IP the
// hello gives and keeps the stored ones it leaves empty; its last event is the hello,
// at the server's site; the rest is as stored.
func TestSeenBoard(t *testing.T) {
	stored := store.Board{Serial: "10000000abcd1234", MAC: "d8:3a:dd:00:00:01", Model: "Raspberry Pi 5 Model B Rev 1.0",
		Revision: "d04170", IP: "10.0.0.5", Hostname: "KXP2-CORO-001", Deployed: true, LastEvent: "result", Site: "other"}
	for _, tc := range []struct {
		name string
		in   hello
		want store.Board
	}{
		{"empty hello", hello{}, func(b store.Board) store.Board { b.LastEvent, b.Site = "hello", "main"; return b }(stored)},
		{"all given", hello{Hello: agentapi.Hello{Model: "m", Revision: "r", IP: "10.0.0.9"}, mac: "d8:3a:dd:00:00:02"},
			func(b store.Board) store.Board {
				b.MAC, b.Model, b.Revision, b.IP, b.LastEvent, b.Site = "d8:3a:dd:00:00:02", "m", "r", "10.0.0.9", "hello", "main"
				return b
			}(stored)},
		{"IP only", hello{Hello: agentapi.Hello{IP: "10.0.0.9"}},
			func(b store.Board) store.Board { b.IP, b.LastEvent, b.Site = "10.0.0.9", "hello", "main"; return b }(stored)},
	} {
		if got := seenBoard(store.HelloFacts{Board: stored, Known: true}, tc.in, "main"); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

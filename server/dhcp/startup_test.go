package dhcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
)

func TestStartupChecks(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	l := netnstest.NewLink(t, "10.76.0.1/24", "")
	l.Client.MustDo(t, func() error { // the client end has no address
		_, err := LookupInterface(l.ClientIf)
		if err == nil || !strings.Contains(err.Error(), "has no IPv4 address") {
			t.Errorf("interface without address: %v", err)
		}
		if out, err := exec.Command("ip", "link", "add", "dum0", "type", "veth", "peer", "name", "dum1").CombinedOutput(); err != nil {
			return fmt.Errorf("ip link add dum0: %v %s", err, out)
		}
		_, err = LookupInterface("dum0")
		if err == nil || !strings.Contains(err.Error(), "is down") {
			t.Errorf("interface down: %v", err)
		}
		_, err = LookupInterface("nosuch0")
		if err == nil || !strings.Contains(err.Error(), `"nosuch0"`) {
			t.Errorf("missing interface: %v", err)
		}
		return nil
	})

	// dnsmasq holds port 67: our error names it.
	var out bytes.Buffer
	l.Server.Start(t, &out, "dnsmasq", "--no-daemon", "--port=0", "--interface="+l.ServerIf,
		"--dhcp-range=10.76.0.100,10.76.0.150,1h", "--dhcp-leasefile=/dev/null", "--log-facility=-")
	h, err := NewHandler(context.Background(), Options{Mode: ModeProxy, ServerIP: netip.MustParseAddr("10.76.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	var lerr error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		l.Server.MustDo(t, func() error {
			s, err := Listen(h, l.ServerIf, 0, nil)
			if err == nil {
				s.Close()
			}
			lerr = err
			return nil
		})
		if lerr != nil {
			break
		}
	}
	if !errors.Is(lerr, syscall.EADDRINUSE) || !strings.Contains(lerr.Error(), "by dnsmasq (pid ") {
		t.Fatalf("Listen with dnsmasq on port 67: %v; want EADDRINUSE naming dnsmasq\ndnsmasq: %s", lerr, out.String())
	}
	t.Log(lerr)
}

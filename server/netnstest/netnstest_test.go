package netnstest

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestLinkAndDo(t *testing.T) {
	Require(t)
	l := NewLink(t, "10.78.0.1/24", "10.78.0.2/24")
	// A datagram across the pair: the server's socket is opened inside its namespace.
	var srv net.PacketConn
	l.Server.MustDo(t, func() (err error) {
		srv, err = net.ListenPacket("udp4", "10.78.0.1:7777")
		return err
	})
	defer srv.Close()
	l.Client.MustDo(t, func() error {
		c, err := net.Dial("udp4", "10.78.0.1:7777")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		return err
	})
	buf := make([]byte, 16)
	srv.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := srv.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" || !strings.HasPrefix(from.String(), "10.78.0.2:") {
		t.Fatalf("datagram across the veth pair: %q from %v, %v", buf[:n], from, err)
	}
	var name string
	l.Server.MustDo(t, func() error {
		ifc, err := net.InterfaceByName(l.ServerIf)
		if err != nil {
			return err
		}
		name = ifc.Name
		return nil
	})
	if name != l.ServerIf {
		t.Errorf("Do did not run inside the namespace")
	}
	if _, err := net.InterfaceByName(l.ServerIf); err == nil {
		t.Errorf("%s is visible outside its namespace", l.ServerIf)
	}
	if _, err := l.Client.Run(context.Background(), "false"); err == nil {
		t.Error("Run of a failing command returned no error")
	}
}

func TestCleanupRemovesNamespaces(t *testing.T) {
	Require(t)
	var names []string
	t.Run("inner", func(t *testing.T) {
		l := NewLink(t, "", "")
		l.AddBridgeTap(t, "tap0")
		names = []string{l.Server.Name, l.Client.Name}
	})
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Errorf("namespace %s still exists after its test ended", n)
		}
	}
}

package netboot_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// TestNetbootWhileDatabaseDown: rpi-deployd on PostgreSQL serving DHCP (full mode)
// and TFTP on a veth pair in network namespaces; PostgreSQL is stopped before the
// board ever booted. While it is down the board's whole netboot works: the
// bootloader's DHCP exchange (scapy, with a real Pi's option 97) is offered and
// acknowledged an address, its TFTP reads (atftp, as the bootloader asks) get the
// per-board cmdline.txt and the kernel, the agent's DHCP (busybox udhcpc) gets the
// same address and the agent URL; its hello (curl) is answered retry, never an
// error. When PostgreSQL is back, without a restart of rpi-deployd, the lease held
// in memory and the board's netboot events reach the database.
func TestNetbootWhileDatabaseDown(t *testing.T) {
	netnstest.Require(t)
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t)
	l := netnstest.NewLink(t, "10.74.0.1/24", "")
	root, kernel := tftpRoot(t)
	d := startServe(t, l.Server, "--data", t.TempDir(), "--db", dsn, "--site", "lab-2", "--listen", "10.74.0.1:0",
		"--dhcp-mode", "full", "--dhcp-interface", l.ServerIf, "--dhcp-range", "10.74.0.100-10.74.0.150", "--tftp-root", root)
	var mac string
	l.Client.MustDo(t, func() error {
		ifc, err := net.InterfaceByName(l.ClientIf)
		if err == nil {
			mac = ifc.HardwareAddr.String()
		}
		return err
	})
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}

	// The bootloader (serial 5b154510 in the captured option 97).
	const serial = "5b154510"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	script, _ := filepath.Abs("../dhcp/testdata/pi_dora.py")
	out, err := l.Client.Run(ctx, "/usr/bin/python3", script, l.ClientIf, capturedOption97(t), "dora")
	var ack struct {
		YIAddr  string            `json:"yiaddr"`
		Options map[string]string `json:"options"`
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &ack) != nil || ack.Options["53"] != "05" {
		t.Fatalf("bootloader DHCP while PostgreSQL is down: %v\n%s\nwant an offer and an ack", err, out)
	}
	l.Client.MustRun(t, "ip", "addr", "add", ack.YIAddr+"/24", "dev", l.ClientIf)
	if cmdline := string(atftp(t, l.Client, serial+"/cmdline.txt")); !strings.Contains(cmdline, "rpideploy.board="+serial) ||
		!strings.Contains(cmdline, "rpideploy.mac="+mac) {
		t.Errorf("cmdline.txt while PostgreSQL is down: %q", cmdline)
	}
	if k := atftp(t, l.Client, serial+"/kernel_2712.img"); !bytes.Equal(k, kernel) {
		t.Errorf("kernel while PostgreSQL is down: %d bytes, not the kernel's", len(k))
	}
	l.Client.MustRun(t, "ip", "addr", "flush", "dev", l.ClientIf)

	// The agent: its DHCP, then its hello.
	lease := udhcpc(t, l.Client, l.ClientIf, "-V", "rpi-deploy-agent", "-O", "224")
	if agentURL, _ := hex.DecodeString(lease["opt224"]); lease["ip"] != ack.YIAddr || string(agentURL) != d.url {
		t.Errorf("agent lease while PostgreSQL is down: %s, option 224 %q; want %s and %q", lease["ip"], agentURL, ack.YIAddr, d.url)
	}
	l.Client.MustRun(t, "ip", "addr", "add", lease["ip"]+"/24", "dev", l.ClientIf)
	if resp := curlHello(t, l.Client, d.url, "10000000"+serial, mac); resp.Action != agentapi.ActionRetry || resp.Deployment != nil {
		t.Errorf("hello while PostgreSQL is down: %+v, want retry", resp)
	}

	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenDB(context.Background(), store.Config{URL: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// No event says "written": poll the database, with a deadline.
	want := []string{"dhcp.ack", "tftp.file cmdline.txt", "tftp.file kernel_2712.img"}
	var leases []store.DHCPLease
	var events []string
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		leases, _ = st.DHCPLeases(context.Background(), "lab-2")
		evs, _ := st.BoardEvents(context.Background(), "", mac, 0)
		events = events[:0]
		for _, e := range evs {
			events = append(events, e.Kind+" "+e.Detail)
		}
		if len(leases) == 1 && leases[0].MAC == mac && leases[0].IP == ack.YIAddr && containsAll(strings.Join(events, "\n"), want) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("30 s after PostgreSQL came back: leases %+v, board events:\n%s\nwant %s at %s and %q",
				leases, strings.Join(events, "\n"), mac, ack.YIAddr, want)
		}
	}
}

func containsAll(s string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// curlHello posts a board's hello with curl inside ns and returns the answer.
func curlHello(t *testing.T, ns *netnstest.NS, url, serial, mac string) agentapi.HelloResponse {
	t.Helper()
	body, _ := json.Marshal(agentapi.Hello{Serial: serial, MAC: mac, Model: "Raspberry Pi 5 Model B Rev 1.0", Revision: "d04170",
		AgentVersion: "netboot-test", Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := ns.Run(ctx, "curl", "-sS", "--fail-with-body", "-H", "Content-Type: application/json", "--data-binary", string(body), url+agentapi.PathHello)
	if err != nil {
		t.Fatalf("hello: %v: %s", err, out)
	}
	var resp agentapi.HelloResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("hello answer %q: %v", out, err)
	}
	return resp
}

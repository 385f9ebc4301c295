package multiserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
	"github.com/rpi-deploy/rpi-deploy/server/dhcp/dhcptest"
	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// nsServer is rpi-deployd running inside a network namespace.
type nsServer struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	logs bytes.Buffer
}

func (s *nsServer) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

var listeningRE = regexp.MustCompile(`rpi-deployd: listening on (http://\S+)`)

// startInNS runs `rpi-deployd serve ARGS` (servertest.Binary) inside ns, returns
// once it listens and SIGTERMs it when the test ends.
func startInNS(t *testing.T, ns *netnstest.NS, args ...string) *nsServer {
	t.Helper()
	s := &nsServer{cmd: ns.Command(context.Background(), servertest.Binary(t), append([]string{"serve"}, args...)...)}
	s.cmd.Env = append(os.Environ(), "RPI_DEPLOY_TOKEN=0123456789abcdef0123456789abcdef")
	pr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.mu.Lock()
			s.logs.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		s.cmd.Wait()
		if t.Failed() {
			t.Logf("rpi-deployd log:\n%s", s.log())
		}
	})
	select {
	case s.url = <-found:
	case <-time.After(30 * time.Second):
		t.Fatalf("rpi-deployd did not start:\n%s", s.log())
	}
	return s
}

// dora plays a Pi 5 bootloader's DHCP exchange (server/dhcp/testdata/pi_dora.py,
// scapy) from the client end with the option 97 a real Pi sent, and returns the
// replies it got by step ("offer", "ack"); a step without reply is missing.
func dora(t *testing.T, l *netnstest.Link) map[string]map[string]any {
	t.Helper()
	opt97, err := dhcptest.CapturedOption97()
	if err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs("../dhcp/testdata/pi_dora.py")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out, err := l.Client.Run(ctx, "/usr/bin/python3", script, l.ClientIf, hex.EncodeToString(opt97), "dora")
	if err != nil {
		t.Fatalf("pi_dora.py: %v\n%s", err, out)
	}
	got := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) != nil {
			continue
		}
		if step, _ := r["step"].(string); r["timeout"] == nil {
			got[step] = r
		}
	}
	return got
}

// tftpGet reads name from the server with atftp as the Pi 5 bootloader asks
// (blksize 1468, tsize 0).
func tftpGet(t *testing.T, ns *netnstest.NS, server, name string) ([]byte, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "got")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if msg, err := ns.Run(ctx, "atftp", "--option", "blksize 1468", "--option", "tsize 0", "-g", "-r", name, "-l", out, server, "69"); err != nil {
		return nil, &tftpError{name: name, msg: msg, err: err}
	}
	return os.ReadFile(out)
}

type tftpError struct {
	name, msg string
	err       error
}

func (e *tftpError) Error() string { return "atftp " + e.name + ": " + e.err.Error() + ": " + e.msg }

// curlHello posts a board's hello with curl inside ns and returns the answer.
func curlHello(t *testing.T, ns *netnstest.NS, url, serial, mac string) agentapi.HelloResponse {
	t.Helper()
	body, _ := json.Marshal(agentapi.Hello{Serial: serial, MAC: mac, Model: "Raspberry Pi 5 Model B Rev 1.0", Revision: "d04170",
		AgentVersion: "multiserver-test", Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30}})
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

// udhcpcAgent runs the agent's Linux DHCP (busybox udhcpc with vendor class
// rpi-deploy-agent, asking for option 224) in ns and returns the lease's variables.
func udhcpcAgent(t *testing.T, ns *netnstest.NS, ifc string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "s.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && env > "+dir+"/env\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := ns.Run(ctx, "busybox", "udhcpc", "-i", ifc, "-f", "-q", "-n", "-t", "5", "-T", "2", "-s", script,
		"-V", "rpi-deploy-agent", "-O", "224")
	b, rerr := os.ReadFile(filepath.Join(dir, "env"))
	if rerr != nil {
		t.Fatalf("udhcpc got no lease: %v %s", err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = strings.Trim(v, "'")
		}
	}
	return m
}

// eventually polls cond every 100 ms for up to 20 s and reports whether it held.
func eventually(cond func() bool) bool {
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

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
	l := netnstest.NewLink(t, "10.75.0.1/24", "")
	root := t.TempDir()
	kernel := make([]byte, 300_001)
	rand.Read(kernel)
	for name, b := range map[string][]byte{"kernel_2712.img": kernel, "initramfs_2712": []byte("cpio"),
		"bcm2712-rpi-5-b.dtb": []byte("dtb"), "cmdline.txt": []byte("root=PARTUUID=1234-02 rootwait\n")} {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := startInNS(t, l.Server, "--data", t.TempDir(), "--db", dsn, "--listen", "10.75.0.1:0",
		"--dhcp-mode", "full", "--dhcp-interface", l.ServerIf, "--dhcp-range", "10.75.0.100-10.75.0.150", "--tftp-root", root)
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
	got := dora(t, l)
	ip, _ := got["ack"]["yiaddr"].(string)
	if got["offer"] == nil || ip == "" {
		t.Fatalf("bootloader DHCP while PostgreSQL is down: %v, want an offer and an ack\n%s", got, srv.log())
	}
	l.Client.MustRun(t, "ip", "addr", "add", ip+"/24", "dev", l.ClientIf)
	cmdline, err := tftpGet(t, l.Client, "10.75.0.1", serial+"/cmdline.txt")
	if err != nil || !strings.Contains(string(cmdline), "rpideploy.board="+serial) || !strings.Contains(string(cmdline), "rpideploy.mac="+mac) {
		t.Errorf("cmdline.txt while PostgreSQL is down: %q %v", cmdline, err)
	}
	if k, err := tftpGet(t, l.Client, "10.75.0.1", serial+"/kernel_2712.img"); err != nil || !bytes.Equal(k, kernel) {
		t.Errorf("kernel while PostgreSQL is down: %d bytes, equal %v, %v", len(k), bytes.Equal(k, kernel), err)
	}
	l.Client.MustRun(t, "ip", "addr", "flush", "dev", l.ClientIf)

	// The agent: its DHCP, then its hello.
	lease := udhcpcAgent(t, l.Client, l.ClientIf)
	if agentURL, _ := hex.DecodeString(lease["opt224"]); lease["ip"] != ip || string(agentURL) != srv.url {
		t.Errorf("agent lease while PostgreSQL is down: %s, option 224 %q; want %s and %q", lease["ip"], agentURL, ip, srv.url)
	}
	l.Client.MustRun(t, "ip", "addr", "add", lease["ip"]+"/24", "dev", l.ClientIf)
	resp := curlHello(t, l.Client, srv.url, "10000000"+serial, mac)
	if resp.Action != agentapi.ActionRetry || resp.Deployment != nil {
		t.Errorf("hello while PostgreSQL is down: %+v, want retry", resp)
	}

	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, dsn)
	var storedIP string
	if !eventually(func() bool {
		return db.QueryRow(`SELECT ip FROM dhcp_leases WHERE mac = '`+mac+`'`).Scan(&storedIP) == nil && storedIP == ip
	}) {
		t.Errorf("lease of %s after PostgreSQL came back: %q, want %s", mac, storedIP, ip)
	}
	want := []string{"dhcp.ack", "tftp.file cmdline.txt", "tftp.file kernel_2712.img"}
	var kinds []string
	if !eventually(func() bool {
		kinds = kinds[:0]
		rows, err := db.Query(`SELECT kind, detail FROM board_events WHERE mac = '` + mac + `' ORDER BY id`)
		if err != nil {
			return false
		}
		defer rows.Close()
		for rows.Next() {
			var k, d string
			rows.Scan(&k, &d)
			kinds = append(kinds, k+" "+d)
		}
		all := strings.Join(kinds, "\n")
		for _, w := range want {
			if !strings.Contains(all, w) {
				return false
			}
		}
		return true
	}) {
		t.Errorf("board events after PostgreSQL came back lack one of %q:\n%s", want, strings.Join(kinds, "\n"))
	}
}

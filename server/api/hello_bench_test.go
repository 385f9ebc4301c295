package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// BenchmarkHelloConn: hellos as boards send them, each a new deployment on a new TCP
// connection (one write of the whole request, the answer read to the close), 16 at
// a time, through the in-process server's real listener: the HTTP path, the domain
// and the store. go test -run XXX -bench HelloConn -benchmem ./server/api (allocations
// count the client's few too).
func BenchmarkHelloConn(b *testing.B) {
	srv := servertest.Start(b, servertest.Options{NoSourceLimits: true, Args: []string{"--max-streams", "1000000",
		"--log-level", "warn", "--http-max-conns", "8192", "--http-max-conns-per-source", "8192"}})
	srv.Setup(b, servertest.Fleet{Venue: "BNCH", Product: "RXP2", Image: testImage(b)})
	addr := strings.TrimPrefix(srv.URL, "http://")
	var n atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	defer func() { b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op") }()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body, _ := json.Marshal(agentapi.Hello{Serial: fmt.Sprintf("b0000000%08x", i), MAC: macOf(int(i)),
				Model: "Raspberry Pi 5 Model B Rev 1.0", Revision: "d04170", AgentVersion: "bench",
				Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30, CID: "0353445345333247"}})
			req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
				agentapi.PathHello, addr, len(body), body)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			c.Write(req)
			resp, err := io.ReadAll(c)
			c.Close()
			if err != nil || !bytes.HasPrefix(resp, []byte("HTTP/1.1 200 ")) {
				b.Fatalf("hello: %v %s", err, resp)
			}
		}
	})
}

// processCPU is the user and system CPU time of this process so far: server and
// client, as wall time per hello would hide both behind the store's fsyncs.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

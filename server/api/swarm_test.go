package api_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

func getSecret(t *testing.T, url, secret string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if secret != "" {
		req.Header.Set(agentapi.HeaderSecret, secret)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestSwarmEndpoints: with --p2p on a deploy answer invites the board into its image's
// swarm; the metainfo and the announce need the deployment's own secret; the metainfo
// covers the packed file (its pieces hash the real bytes) with the image download as
// web seed; an announce lists the other boards at the address their connection came
// from, never the board itself; bad input gets 400 and changes nothing.
func TestSwarmEndpoints(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--p2p", "on", "--p2p-piece-kib", "2048"}})
	img := testImage(t)
	srv.Setup(t, servertest.Fleet{Venue: "ARIA", Product: "RXP2", Count: 0, Image: img})
	a := hello(t, srv, helloOf(1)).Deployment
	b := hello(t, srv, helloOf(2)).Deployment
	if a == nil || b == nil || a.Image.Swarm == nil || b.Image.Swarm == nil {
		t.Fatalf("deploy answers without a swarm invitation: %+v %+v", a, b)
	}
	sw := a.Image.Swarm
	if want := fmt.Sprintf(agentapi.PathSwarmTorrent, a.ID); !strings.HasSuffix(sw.TorrentURL, want) {
		t.Errorf("torrent_url %q, want …%s", sw.TorrentURL, want)
	}

	if code, _ := getSecret(t, sw.TorrentURL, ""); code != http.StatusUnauthorized {
		t.Errorf("metainfo without a secret: %d, want 401", code)
	}
	if code, _ := getSecret(t, sw.TorrentURL, b.Secret); code != http.StatusUnauthorized {
		t.Errorf("metainfo with another board's secret: %d, want 401", code)
	}
	code, body := getSecret(t, sw.TorrentURL, a.Secret)
	if code != http.StatusOK {
		t.Fatalf("metainfo: %d %s", code, body)
	}
	mi, err := metainfo.Load(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if got := mi.HashInfoBytes().HexString(); got != sw.InfoHash {
		t.Errorf("metainfo info hash %s, invitation says %s", got, sw.InfoHash)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	if info.Private == nil || !*info.Private || info.TotalLength() != a.Image.CompressedSize {
		t.Errorf("info: private %v, length %d (want %d)", info.Private, info.TotalLength(), a.Image.CompressedSize)
	}
	if len(mi.UrlList) != 1 || mi.UrlList[0] != a.Image.URL {
		t.Errorf("web seeds %v, want [%s]", mi.UrlList, a.Image.URL)
	}
	// The piece hashes are those of the served bytes (as another BitTorrent client
	// would check them).
	code, file := getSecret(t, a.Image.URL, "")
	if code != http.StatusOK {
		t.Fatalf("image: %d", code)
	}
	for i := range info.NumPieces() {
		p := info.Piece(i)
		if got := metainfo.HashBytes(file[p.Offset() : p.Offset()+p.Length()]); got != p.V1Hash().Unwrap() {
			t.Fatalf("piece %d hash does not match the image bytes", i)
		}
	}

	var ans agentapi.SwarmAnswer
	if code, body, _ := postSecret(t, sw.AnnounceURL, "", agentapi.SwarmAnnounce{Port: 6881}, nil); code != http.StatusUnauthorized {
		t.Errorf("announce without a secret: %d %s", code, body)
	}
	if code, body, _ := postSecret(t, sw.AnnounceURL, a.Secret, agentapi.SwarmAnnounce{Port: 70000}, nil); code != http.StatusBadRequest {
		t.Errorf("announce with port 70000: %d %s", code, body)
	}
	if code, body, _ := postSecret(t, sw.AnnounceURL, a.Secret, map[string]any{"port": 6881, "ip": "10.9.9.9"}, nil); code != http.StatusBadRequest {
		t.Errorf("announce claiming an address: %d %s", code, body)
	}
	if code, body, _ := postSecret(t, sw.AnnounceURL, a.Secret, agentapi.SwarmAnnounce{Port: 6881}, &ans); code != http.StatusOK || len(ans.Peers) != 0 {
		t.Fatalf("first announce: %d %s; peers %v (want none)", code, body, ans.Peers)
	}
	if code, body, _ := postSecret(t, b.Image.Swarm.AnnounceURL, b.Secret, agentapi.SwarmAnnounce{Port: 6882}, &ans); code != http.StatusOK {
		t.Fatalf("second announce: %d %s", code, body)
	}
	want := []agentapi.SwarmPeer{{IP: "127.0.0.1", Port: 6881, Serial: strings.ToLower(serialOf(1))}}
	if len(ans.Peers) != 1 || ans.Peers[0] != want[0] || !ans.Seed {
		t.Errorf("second board's answer %+v; want peers %+v and seed", ans, want)
	}
	var list struct {
		Enabled bool `json:"enabled"`
		Members []struct {
			Serial string `json:"serial"`
			Port   int    `json:"port"`
		} `json:"members"`
	}
	if err := srv.Do(t.Context(), http.MethodGet, "/api/v1/swarm", nil, &list); err != nil || !list.Enabled || len(list.Members) != 2 {
		t.Errorf("GET /api/v1/swarm: %v %+v", err, list)
	}
}

// TestPeerBytesKeepName pins that a board whose deployment fails after it received
// most of the image from other boards keeps its pool name for its retry, as one
// served the whole image by the server does: the server counts the bytes the board
// reported from peers in its announces beside those it served itself, but never more
// than the other boards of the swarm say they sent. A board that received less than
// the image from both, or claims peer bytes no other board sent, loses its name (the
// drain defence).
func TestPeerBytesKeepName(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--p2p", "on"}})
	srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 0, PoolSize: 4, Image: testImage(t)})
	held := func(name string) string {
		t.Helper()
		var names []mgmtapi.PoolName
		if err := srv.Do(t.Context(), http.MethodGet, "/api/v1/pools/names?venue=CORO&product=KXP2", nil, &names); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if n.Name == name {
				return n.Serial
			}
		}
		t.Fatalf("pool name %s not listed", name)
		return ""
	}
	for _, tc := range []struct {
		name      string
		board     int
		fromPeers func(size int64) int64
		sent      bool // another board has announced that it uploaded the image
		keeps     bool
	}{
		{"claimed, no board sent it", 1, func(size int64) int64 { return size }, false, false},
		{"the rest from peers", 2, func(size int64) int64 { return size - 1024 }, true, true},
		{"short of the image", 3, func(size int64) int64 { return size / 2 }, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.sent {
				p := hello(t, srv, helloOf(4)).Deployment
				if code, body, _ := postSecret(t, p.Image.Swarm.AnnounceURL, p.Secret, agentapi.SwarmAnnounce{Port: 6889, Uploaded: p.Image.CompressedSize}, nil); code != http.StatusOK {
					t.Fatalf("uploader's announce: %d %s", code, body)
				}
			}
			d := hello(t, srv, helloOf(tc.board)).Deployment
			if d == nil || d.Image.Swarm == nil {
				t.Fatalf("no deployment with a swarm invitation: %+v", d)
			}
			fetchSome(t, d)                                                       // the server serves 1 KiB for the secret
			for _, n := range []int64{tc.fromPeers(d.Image.CompressedSize), 10} { // a late, smaller count changes nothing
				if code, body, _ := postSecret(t, d.Image.Swarm.AnnounceURL, d.Secret, agentapi.SwarmAnnounce{Port: 6881, FromPeers: n}, nil); code != http.StatusOK {
					t.Fatalf("announce: %d %s", code, body)
				}
			}
			if got, code := result(t, srv, d, serialOf(tc.board), agentapi.Result{Phase: "writing", Error: "card write error"}); code != 200 || got.State != mgmtapi.DeployFailed {
				t.Fatalf("failure result: %d %+v", code, got)
			}
			want := ""
			if tc.keeps {
				want = serialOf(tc.board)
			}
			if got := held(d.Hostname); !strings.EqualFold(got, want) {
				t.Errorf("name %s held by %q after the failure, want %q", d.Hostname, got, want)
			}
		})
	}
}

// TestP2PModes: the batch's peer-to-peer mode goes first, then the image's, then the
// server's --p2p (here off); the CLI and the API set them; a bad mode gets 400 and
// changes nothing; a board whose mode is off is not invited and the swarm endpoints
// refuse it.
func TestP2PModes(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--max-open-per-source", "-1"}})
	fleet := srv.Setup(t, servertest.Fleet{Venue: "ARIA", Product: "RXP2", Count: 0, Image: testImage(t)})
	batch := fmt.Sprint(fleet.Batch.ID)
	invited := func(board int) bool {
		t.Helper()
		d := hello(t, srv, helloOf(board)).Deployment
		if d == nil {
			t.Fatalf("board %d: no deployment", board)
		}
		return d.Image.Swarm != nil
	}
	steps := []struct {
		name  string
		cli   []string // rpi-deployd command that sets a mode ("" none)
		board int      // a board that says hello after it
		want  bool
	}{
		{"server default off", nil, 1, false},
		{"image on", []string{"image", "set", fleet.ImageName, "--p2p", "on"}, 2, true},
		{"batch off goes first", []string{"batch", "set", batch, "--p2p", "off"}, 3, false},
		{"batch inherits the image's on", []string{"batch", "set", batch, "--p2p", "inherit"}, 4, true},
		{"image inherits the server's off", []string{"image", "set", fleet.ImageName, "--p2p", "inherit"}, 5, false},
		{"batch on", []string{"batch", "set", batch, "--p2p", "on"}, 6, true},
	}
	for _, s := range steps {
		if s.cli != nil {
			runCLI(t, srv, s.cli...)
		}
		if got := invited(s.board); got != s.want {
			t.Errorf("%s: board %d invited into a swarm: %v, want %v", s.name, s.board, got, s.want)
		}
	}

	var img struct {
		P2P string `json:"p2p"`
	}
	if err := srv.Do(t.Context(), http.MethodPost, "/api/v1/images/"+fleet.ImageName+"/p2p", map[string]string{"p2p": "maybe"}, nil); statusOf(err) != http.StatusBadRequest {
		t.Errorf("image p2p \"maybe\": %v, want 400", err)
	}
	if err := srv.Do(t.Context(), http.MethodPost, "/api/v1/batches/"+batch+"/p2p", map[string]string{"p2p": ""}, nil); statusOf(err) != http.StatusBadRequest {
		t.Errorf("batch p2p \"\": %v, want 400", err)
	}
	if err := srv.Do(t.Context(), http.MethodPost, "/api/v1/batches/999999/p2p", map[string]string{"p2p": "on"}, nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("p2p of a batch that does not exist: %v, want 404", err)
	}
	if err := srv.Do(t.Context(), http.MethodGet, "/api/v1/images/"+fleet.ImageName, nil, &img); err != nil || img.P2P != "inherit" {
		t.Errorf("image after the bad requests: %+v %v, want p2p inherit", img, err)
	}
	var b struct {
		P2P string `json:"p2p"`
	}
	if err := srv.Do(t.Context(), http.MethodGet, "/api/v1/batches/"+batch, nil, &b); err != nil || b.P2P != "on" {
		t.Errorf("batch after the bad requests: %+v %v, want p2p on", b, err)
	}

	// Board 6 was invited (batch on); with its batch turned off the swarm endpoints
	// refuse it.
	runCLI(t, srv, "batch", "set", batch, "--p2p", "off")
	d := hello(t, srv, helloOf(6)).Deployment
	if code, _ := getSecret(t, srv.URL+fmt.Sprintf(agentapi.PathSwarmTorrent, d.ID), d.Secret); code != http.StatusNotFound {
		t.Errorf("metainfo for a board whose batch turned p2p off: %d, want 404", code)
	}
}

// getPiece asks for bytes [off, off+n) of d's image with d's secret, marked as swarm
// piece i when i ≥ 0; it returns the status, the Retry-After header and the body.
func getPiece(t *testing.T, d *agentapi.Deployment, i int, off, n int64) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.Image.URL, nil)
	req.Header.Set(agentapi.HeaderSecret, d.Secret)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	if i >= 0 {
		req.Header.Set(agentapi.HeaderSwarmPiece, strconv.Itoa(i))
	}
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), b
}

// TestSwarmPieceBusy: while the server sends a whole piece to one board (a client
// that reads only the header of a 2 MiB piece, its receive buffer 4 KiB, so most of
// the piece stays unacknowledged in the server's socket), another
// board's request for that piece is answered 503 with Retry-After: 1 once, and its
// next request is served the piece's bytes — also while the first send still hangs,
// so a board that keeps a piece in flight delays the others by one answer, never
// denies them: a board that only ever asks gets the piece every second request.
// Requests without the piece mark, or whose Range is not that whole piece, are
// never declined; once the first send ends, the piece is served at once.
func TestSwarmPieceBusy(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--p2p", "on", "--p2p-piece-kib", "2048"}})
	img := testImage(t)
	srv.Setup(t, servertest.Fleet{Venue: "ARIA", Product: "RXP2", Count: 0, Image: img})
	a := hello(t, srv, helloOf(1)).Deployment
	b := hello(t, srv, helloOf(2)).Deployment
	c := hello(t, srv, helloOf(3)).Deployment
	if a == nil || b == nil || c == nil || a.Image.Swarm == nil {
		t.Fatalf("deploy answers without a swarm invitation: %+v %+v %+v", a, b, c)
	}
	code, body := getSecret(t, a.Image.Swarm.TorrentURL, a.Secret)
	if code != http.StatusOK {
		t.Fatalf("metainfo: %d %s", code, body)
	}
	mi, err := metainfo.Load(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	const i = 0
	p := info.Piece(i)
	off, n := p.Offset(), p.Length()
	want := file[off : off+n]

	// Board a: asks for piece 0 and reads nothing.
	u, err := url.Parse(a.Image.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dialFrom("127.0.0.1", "http://"+u.Host, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n%s: %s\r\n%s: %d\r\nRange: bytes=%d-%d\r\n\r\n",
		u.RequestURI(), u.Host, agentapi.HeaderSecret, a.Secret, agentapi.HeaderSwarmPiece, i, off, off+n-1)

	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 512), nil) // the header only
	if err != nil || resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("board a's answer: %v %v", resp, err)
	}
	// Board b is declined once, then served.
	if code, retry, body := getPiece(t, b, i, off, n); code != http.StatusServiceUnavailable || retry != "1" || !strings.Contains(string(body), "another board") {
		t.Fatalf("board b while board a's send of piece %d hangs: %d, Retry-After %q, %s; want 503, 1, and why", i, code, retry, body)
	}
	if code, _, body := getPiece(t, b, i, off, n); code != http.StatusPartialContent || !bytes.Equal(body, want) {
		t.Fatalf("board b asking again after a busy answer: %d, %d bytes (want 206 and the piece's %d)", code, len(body), n)
	}
	// Board c only ever asks: at most every other answer is busy.
	served := 0
	for range 6 {
		code, _, body := getPiece(t, c, i, off, n)
		switch {
		case code == http.StatusPartialContent && bytes.Equal(body, want):
			served++
		case code != http.StatusServiceUnavailable:
			t.Fatalf("board c: %d %s", code, body)
		}
	}
	if served < 3 {
		t.Errorf("board c asking six times while a's send hangs: served %d times, want 3 at least", served)
	}
	// No piece mark, or not the whole piece: served as asked.
	if code, _, body := getPiece(t, c, -1, off, n); code != http.StatusPartialContent || !bytes.Equal(body, want) {
		t.Errorf("piece bytes without the piece mark: %d, %d bytes", code, len(body))
	}
	if code, _, body := getPiece(t, c, i, off, n-1); code != http.StatusPartialContent || !bytes.Equal(body, want[:n-1]) {
		t.Errorf("part of the piece with the piece mark: %d, %d bytes", code, len(body))
	}
	if code, _, body := getPiece(t, c, i+1, off, n); code != http.StatusPartialContent || !bytes.Equal(body, want) {
		t.Errorf("piece 0's bytes marked as piece 1: %d, %d bytes", code, len(body))
	}
	// Board a's send ends: a new board is served at once.
	conn.Close()
	d := hello(t, srv, helloOf(4)).Deployment
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, body := getPiece(t, d, i, off, n)
		if code == http.StatusPartialContent && bytes.Equal(body, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("board d after a's send ended: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

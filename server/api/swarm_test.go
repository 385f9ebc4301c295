package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

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
	srv := servertest.Start(t, servertest.Options{Args: []string{"--p2p", "on"}})
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

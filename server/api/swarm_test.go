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

// TestSwarmOff: with peer-to-peer distribution off, both swarm endpoints answer 404
// naming the flag, whatever the id and without reading the body.
func TestSwarmOff(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--p2p", "off"}})
	const want = "peer-to-peer distribution is off"
	for _, id := range []string{"1", "not-a-number"} {
		code, body := getSecret(t, srv.URL+strings.Replace(agentapi.PathSwarmTorrent, "%d", id, 1), "")
		if code != http.StatusNotFound || !strings.Contains(string(body), want) {
			t.Errorf("torrent of deployment %s with p2p off: %d %s, want 404 %q", id, code, body, want)
		}
		code, body, err := postSecret(t, srv.URL+strings.Replace(agentapi.PathSwarmAnnounce, "%d", id, 1), "", map[string]int{"port": -1}, nil)
		if err != nil || code != http.StatusNotFound || !strings.Contains(string(body), want) {
			t.Errorf("announce to deployment %s with p2p off: %d %s %v, want 404 %q", id, code, body, err, want)
		}
	}
}

package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/server/api"
	"github.com/rpi-deploy/rpi-deploy/server/client"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// Two sites on one database: each a domain service and the HTTP API on a loopback
// socket, with a data directory of its own, over one store (the database servers
// of several sites share). Site A's answers to its peers go through a peerFault,
// which can cut them or change a byte, as a dying or lying peer would.

const siteToken = "site-admin-token-0123456789"

type testSite struct {
	name, dir string
	svc       *domain.Service
	ts        *httptest.Server
	srv       *servertest.Server // URL, Token and Client, for the package's helpers
}

func startSite(t *testing.T, st *store.Store, name, dir string, wrap func(http.Handler) http.Handler) *testSite {
	t.Helper()
	return startSiteWith(t, st, domain.Options{Site: name, DataDir: dir}, wrap)
}

// startSiteWith is startSite with more of the service's options (opt.Site and
// opt.DataDir name the site and its directory).
func startSiteWith(t *testing.T, st *store.Store, opt domain.Options, wrap func(http.Handler) http.Handler) *testSite {
	t.Helper()
	s, err := newTestSite(st, opt, wrap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

// newTestSite starts a site: its service on st with opt (its name and data directory
// in opt.Site and opt.DataDir), its API on a loopback port (through wrap, when not
// nil), its images recorded.
func newTestSite(st *store.Store, opt domain.Options, wrap func(http.Handler) http.Handler) (*testSite, error) {
	ts := httptest.NewUnstartedServer(nil)
	url := "http://" + ts.Listener.Addr().String()
	name, dir := opt.Site, opt.DataDir
	opt.PeerURL, opt.MaxOpenPerSource, opt.NewSerialsPerMinute = url, -1, -1
	svc := domain.New(st, events.New(0, 0), opt)
	engine, _ := api.New(svc, api.Options{Token: siteToken})
	var h http.Handler = engine
	if wrap != nil {
		h = wrap(engine)
	}
	ts.Config.Handler = h
	ts.Start()
	s := &testSite{name: name, dir: dir, svc: svc, ts: ts,
		srv: &servertest.Server{URL: url, Token: siteToken, DataDir: dir, Client: client.New(url, siteToken)}}
	ctx := context.Background()
	if err := svc.Recover(ctx); err != nil {
		s.stop()
		return nil, err
	}
	if err := svc.RecordSiteImages(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// stop ends the site as a killed server would end: connections cut, background
// pulls stopped; its data directory stays.
func (s *testSite) stop() {
	s.ts.CloseClientConnections()
	s.ts.Close()
	s.svc.Close()
}

// peerFault changes site A's answers on the peer endpoint: it records each Range
// asked for, cuts the body after cutAt bytes of the file (-1: never) or flips the
// byte at file offset flipAt (-1: none).
type peerFault struct {
	mu     sync.Mutex
	ranges []string
	cutAt  int64
	flipAt int64
}

func newPeerFault() *peerFault { return &peerFault{cutAt: -1, flipAt: -1} }

func (p *peerFault) set(cutAt, flipAt int64) {
	p.mu.Lock()
	p.cutAt, p.flipAt = cutAt, flipAt
	p.mu.Unlock()
}

func (p *peerFault) asked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...)
}

func (p *peerFault) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/v1/peer/") {
			h.ServeHTTP(w, r)
			return
		}
		p.mu.Lock()
		p.ranges = append(p.ranges, r.Header.Get("Range"))
		cut, flip := p.cutAt, p.flipAt
		p.mu.Unlock()
		var off int64
		if v, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok {
			off, _ = strconv.ParseInt(strings.TrimSuffix(v, "-"), 10, 64)
		}
		h.ServeHTTP(&faultWriter{ResponseWriter: w, off: off, cut: cut, flip: flip}, r)
	})
}

// faultWriter passes the body on (no ReadFrom: the server writes through Write)
// with the peerFault's changes; off is the file offset of the next body byte.
type faultWriter struct {
	http.ResponseWriter
	off, cut, flip int64
}

func (w *faultWriter) Write(b []byte) (int, error) {
	if w.cut >= 0 && w.off+int64(len(b)) > w.cut {
		n, _ := w.ResponseWriter.Write(b[:max(0, w.cut-w.off)])
		w.off += int64(n)
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler) // the peer dies mid-answer: the connection is cut
	}
	if w.flip >= w.off && w.flip < w.off+int64(len(b)) {
		c := append([]byte(nil), b...)
		c[w.flip-w.off] ^= 0x5a
		b = c
	}
	n, err := w.ResponseWriter.Write(b)
	w.off += int64(n)
	return n, err
}

// waitSite waits until site's entry in image name's sites satisfies ok, reading it
// after every event of the site's bus.
func waitSite(t *testing.T, s *testSite, name string, ok func(mgmtapi.ImageSite) bool) mgmtapi.ImageSite {
	t.Helper()
	sub, _ := s.svc.Bus().Subscribe(0)
	defer sub.Close()
	deadline := time.After(60 * time.Second)
	for {
		img, err := s.svc.Image(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range img.Sites {
			if e.Site == s.name && ok(e) {
				return e
			}
		}
		select {
		case <-sub.C:
		case <-deadline:
			t.Fatalf("site %s: image %s sites %+v: the awaited state never came", s.name, name, img.Sites)
		}
	}
}

func pullStopped(e mgmtapi.ImageSite) bool {
	return e.State == mgmtapi.ImageSitePulling && e.Error != ""
}
func pullReady(e mgmtapi.ImageSite) bool { return e.State == mgmtapi.ImageSiteReady }

// downloadSHA256 fetches url and returns the SHA-256 of the body (or fails).
func downloadSHA256(t *testing.T, url string) string {
	t.Helper()
	resp, err := httpc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: HTTP %d %s", url, resp.StatusCode, b)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func twoSites(t *testing.T) (*store.Store, *testSite, *testSite, *peerFault) {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fault := newPeerFault()
	a := startSite(t, st, "site-a", t.TempDir(), fault.wrap)
	b := startSite(t, st, "site-b", t.TempDir(), nil)
	return st, a, b, fault
}

// TestPullImageFromPeerSite: an image uploaded at site A reaches site B by a pull
// that a hello at B starts. A dies halfway through its answer: B keeps the frames
// it proved, says why it stopped and has no ready image; B is then killed too and
// restarted, and its pull continues from the first byte it did not hold (Range)
// until the image is whole, verified and ready at B, which then deploys it.
func TestPullImageFromPeerSite(t *testing.T) {
	_, a, b, fault := twoSites(t)
	img := testImage(t)
	m, err := manifest.Load(manifest.PathFor(img))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Chunks) < 3 {
		t.Fatalf("test image has %d chunks; the test needs 3", len(m.Chunks))
	}
	a.srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 5, Image: img})
	got, err := a.svc.Image(context.Background(), m.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Sites) != 1 || got.Sites[0].Site != "site-a" || got.Sites[0].State != mgmtapi.ImageSiteReady ||
		got.Sites[0].Bytes != m.CompressedSize {
		t.Fatalf("after the upload at A, sites = %+v; want site-a ready with %d bytes", got.Sites, m.CompressedSize)
	}

	// A dies in the middle of chunk 1: B proves chunk 0 and keeps it.
	cut := m.Chunks[1].Frame + m.Chunks[1].FrameSize/2
	fault.set(cut, -1)
	r := hello(t, b.srv, helloOf(1))
	if r.Action != agentapi.ActionRetry || !strings.Contains(r.Reason, "being pulled to site site-b from site site-a") ||
		r.RetryAfterMS <= 0 {
		t.Fatalf("hello at B before it holds the image: %+v; want retry while it is pulled", r)
	}
	e := waitSite(t, b, m.Name, pullStopped)
	if e.Bytes != m.Chunks[1].Frame || !strings.Contains(e.Error, "answer ended inside chunk 1") {
		t.Fatalf("B after A died: %+v; want %d proven bytes and why it stopped", e, m.Chunks[1].Frame)
	}
	part := filepath.Join(b.dir, "images", m.Name+".img.zst.part")
	if fi, err := os.Stat(part); err != nil || fi.Size() != m.Chunks[1].Frame {
		t.Fatalf("B's partial file: %v %v; want the %d bytes of chunk 0", fi, err, m.Chunks[1].Frame)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "images", m.Name+".img.zst")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("B has an image file after a cut pull: %v", err)
	}
	if r := hello(t, b.srv, helloOf(1)); r.Action != agentapi.ActionRetry {
		t.Fatalf("hello at B without the image: %+v; want retry", r)
	}

	// B is killed and restarted; A is whole again. The pull resumes by itself.
	b.stop()
	fault.set(-1, -1)
	b = startSite(t, b.svc.Store(), "site-b", b.dir, nil)
	waitSite(t, b, m.Name, pullReady)
	asked := fault.asked()
	if want := "bytes=" + strconv.FormatInt(m.Chunks[1].Frame, 10) + "-"; len(asked) != 2 || asked[0] != "" || asked[1] != want {
		t.Fatalf("Ranges asked of A: %q; want the whole file first, then %q", asked, want)
	}
	if sum := servertest.FileSHA256(t, filepath.Join(b.dir, "images", m.Name+".img.zst")); sum != m.CompressedSHA256 {
		t.Fatalf("B's image file sha256 %s, manifest %s", sum, m.CompressedSHA256)
	}
	if _, err := os.Stat(part); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("B kept its partial file after the pull: %v", err)
	}

	r = hello(t, b.srv, helloOf(1))
	if r.Action != agentapi.ActionDeploy || r.Deployment == nil {
		t.Fatalf("hello at B holding the image: %+v; want a deployment", r)
	}
	if sum := downloadSHA256(t, b.srv.URL+domain.ImagePath(m.Name)); sum != m.CompressedSHA256 {
		t.Fatalf("B serves sha256 %s, manifest %s", sum, m.CompressedSHA256)
	}
	got, err = a.svc.Image(context.Background(), m.Name)
	if err != nil {
		t.Fatal(err)
	}
	want := []mgmtapi.ImageSite{{Site: "site-a", State: "ready", Bytes: m.CompressedSize},
		{Site: "site-b", State: "ready", Bytes: m.CompressedSize, Source: "site-a"}}
	if len(got.Sites) != 2 || got.Sites[0] != want[0] || got.Sites[1] != want[1] {
		t.Fatalf("sites seen from A: %+v; want %+v", got.Sites, want)
	}
}

// TestPullImageCorruptPeer: a peer that sends a wrong byte in chunk 2 leaves site B
// without a ready image, with the error that names the chunk, the proven chunks 0
// and 1 kept and nothing served; the next pull (an operator's, POST …/pull) asks
// only for the bytes from chunk 2 on and completes.
func TestPullImageCorruptPeer(t *testing.T) {
	_, a, b, fault := twoSites(t)
	img := testImage(t)
	m, err := manifest.Load(manifest.PathFor(img))
	if err != nil {
		t.Fatal(err)
	}
	a.srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 5, Image: img})
	fault.set(-1, m.Chunks[2].Frame+m.Chunks[2].FrameSize/3)

	ctx := context.Background()
	var st mgmtapi.UploadState
	if err := b.srv.Do(ctx, http.MethodPost, "/api/v1/images/"+m.Name+"/pull", map[string]string{"from": "site-a"}, &st); err != nil {
		t.Fatal(err)
	}
	if st.State != mgmtapi.ImageSitePulling || st.Size != m.CompressedSize {
		t.Fatalf("pull answer %+v", st)
	}
	e := waitSite(t, b, m.Name, pullStopped)
	if e.Bytes != m.Chunks[2].Frame || !strings.Contains(e.Error, "chunk 2") || !strings.Contains(e.Error, "does not match") {
		t.Fatalf("B after a corrupt answer: %+v; want %d proven bytes and an error naming chunk 2", e, m.Chunks[2].Frame)
	}
	var view mgmtapi.ImageView
	if err := b.srv.Do(ctx, http.MethodGet, "/api/v1/images/"+m.Name, nil, &view); err != nil {
		t.Fatal(err)
	}
	for _, s := range view.Sites {
		if s.Site == "site-b" && (s.State != mgmtapi.ImageSitePulling || s.Error == "") {
			t.Fatalf("GET image at B: site-b %+v; want pulling with the error", s)
		}
	}
	resp, err := httpc.Get(b.srv.URL + domain.ImagePath(m.Name))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("B serves the image after a corrupt pull: HTTP %d", resp.StatusCode)
	}
	if r := hello(t, b.srv, helloOf(7)); r.Action != agentapi.ActionRetry || !strings.Contains(r.Reason, "last pull from site site-a failed") {
		t.Fatalf("hello at B after the failed pull: %+v; want retry saying why", r)
	}

	fault.set(-1, -1)
	if err := b.srv.Do(ctx, http.MethodPost, "/api/v1/images/"+m.Name+"/pull", map[string]string{}, &st); err != nil {
		t.Fatal(err)
	}
	waitSite(t, b, m.Name, pullReady)
	asked := fault.asked()
	if want := "bytes=" + strconv.FormatInt(m.Chunks[2].Frame, 10) + "-"; len(asked) != 2 || asked[1] != want {
		t.Fatalf("Ranges asked of A: %q; want the retry to ask %q", asked, want)
	}
	if sum := downloadSHA256(t, b.srv.URL+domain.ImagePath(m.Name)); sum != m.CompressedSHA256 {
		t.Fatalf("B serves sha256 %s, manifest %s", sum, m.CompressedSHA256)
	}
}

// TestPeerEndpoint: the peer endpoint answers only with the database's peer
// credential (not the admin token), only for the content asked for by its
// compressed SHA-256, and only at a site that holds it.
func TestPeerEndpoint(t *testing.T) {
	st, a, b, _ := twoSites(t)
	img := testImage(t)
	m, err := manifest.Load(manifest.PathFor(img))
	if err != nil {
		t.Fatal(err)
	}
	a.srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 1, Image: img})
	var tok string
	if err := st.Update(context.Background(), func(tx *store.Tx) error {
		tok, err = tx.PeerToken(context.Background(), "not-the-token-0123456789")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/peer/images/" + m.Name + ".img.zst?compressed_sha256="
	for _, tc := range []struct {
		name, site, token, sum string
		want                   int
	}{
		{"peer credential", a.srv.URL, tok, m.CompressedSHA256, http.StatusOK},
		{"admin token", a.srv.URL, siteToken, m.CompressedSHA256, http.StatusUnauthorized},
		{"no credential", a.srv.URL, "", m.CompressedSHA256, http.StatusUnauthorized},
		{"other content", a.srv.URL, tok, strings.Repeat("0", 64), http.StatusNotFound},
		{"site without it", b.srv.URL, tok, m.CompressedSHA256, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, tc.site+path+tc.sum, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := httpc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("HTTP %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusOK && n != m.CompressedSize {
				t.Fatalf("%d bytes, want %d", n, m.CompressedSize)
			}
		})
	}
}

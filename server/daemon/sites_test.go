package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// peerProxy stands between site A's rpi-deployd and the sites that pull from it
// (A's --peer-url points here): a reverse proxy that records the Range of every
// request and passes the answers on, or holds an answer once holdAt bytes of the
// file went through (held is closed then; release lets it end the connection), or
// flips the byte at file offset flipAt.
type peerProxy struct {
	mu      sync.Mutex
	ranges  []string
	holdAt  int64 // -1: never
	flipAt  int64 // -1: never
	held    chan struct{}
	release chan struct{}
	srv     *httptest.Server
}

func newPeerProxy(t *testing.T) *peerProxy {
	p := &peerProxy{holdAt: -1, flipAt: -1, held: make(chan struct{}), release: make(chan struct{})}
	p.srv = httptest.NewUnstartedServer(nil)
	t.Cleanup(func() {
		p.unhold()
		p.srv.Close()
	})
	return p
}

func (p *peerProxy) URL() string { return "http://" + p.srv.Listener.Addr().String() }

// to starts the proxy in front of target.
func (p *peerProxy) to(target string) {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	// Every write reaches B at once: without it the last bytes before a hold could
	// sit in the response's buffers (up to ~6 KiB), so B could not prove the last
	// frame before the hold and the test waited for bytes that never came.
	rp.FlushInterval = -1
	rp.ModifyResponse = func(resp *http.Response) error {
		var off int64
		if v, ok := strings.CutPrefix(resp.Request.Header.Get("Range"), "bytes="); ok {
			off, _ = strconv.ParseInt(strings.TrimSuffix(v, "-"), 10, 64)
		}
		p.mu.Lock()
		resp.Body = &faultBody{ReadCloser: resp.Body, p: p, off: off, hold: p.holdAt, flip: p.flipAt}
		p.mu.Unlock()
		return nil
	}
	p.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.ranges = append(p.ranges, r.Header.Get("Range"))
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})
	p.srv.Start()
}

func (p *peerProxy) set(holdAt, flipAt int64) {
	p.mu.Lock()
	p.holdAt, p.flipAt = holdAt, flipAt
	p.mu.Unlock()
}

func (p *peerProxy) unhold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

func (p *peerProxy) asked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...)
}

// faultBody is one answer's body through the proxy; off is the file offset of its
// next byte.
type faultBody struct {
	io.ReadCloser
	p               *peerProxy
	off, hold, flip int64
	heldOnce        sync.Once
}

func (b *faultBody) Read(buf []byte) (int, error) {
	if b.hold >= 0 && b.off >= b.hold {
		b.heldOnce.Do(func() { close(b.p.held) })
		<-b.p.release
		return 0, io.ErrUnexpectedEOF // the connection ends inside the file
	}
	if b.hold >= 0 && b.off+int64(len(buf)) > b.hold {
		buf = buf[:b.hold-b.off]
	}
	n, err := b.ReadCloser.Read(buf)
	if b.flip >= b.off && b.flip < b.off+int64(n) {
		buf[b.flip-b.off] ^= 0x5a
	}
	b.off += int64(n)
	return n, err
}

// siteOf is this site's entry among image name's sites, as server srv tells it.
func siteOf(t *testing.T, srv *servertest.Server, name, site string) (mgmtapi.ImageSite, bool) {
	t.Helper()
	var v mgmtapi.ImageView
	if err := srv.Do(context.Background(), http.MethodGet, "/api/v1/images/"+name, nil, &v); err != nil {
		t.Fatal(err)
	}
	for _, s := range v.Sites {
		if s.Site == site {
			return s, true
		}
	}
	return mgmtapi.ImageSite{}, false
}

// awaitSite asks srv every 50 ms, for at most a minute, until site's entry of image
// name satisfies ok.
func awaitSite(t *testing.T, srv *servertest.Server, name, site string, ok func(mgmtapi.ImageSite) bool) mgmtapi.ImageSite {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		e, found := siteOf(t, srv, name, site)
		if found && ok(e) {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("site %s of image %s: %+v (found %v); the awaited state never came", site, name, e, found)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// twoSitesOnPostgres starts site A and site B, two rpi-deployd processes with data
// directories of their own on one PostgreSQL database; A's peer URL is the proxy.
func twoSitesOnPostgres(t *testing.T) (a, b *servertest.Server, proxy *peerProxy, db string) {
	dsn := pgtest.DB(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db = strings.TrimPrefix(u.Path, "/")
	proxy = newPeerProxy(t)
	a = servertest.Start(t, servertest.Options{DB: dsn, Process: true, NoSourceLimits: true,
		Args: []string{"--site", "site-a", "--peer-url", proxy.URL()}})
	proxy.to(a.URL)
	b = servertest.Start(t, servertest.Options{DB: dsn, Process: true, NoSourceLimits: true, Args: []string{"--site", "site-b"}})
	return a, b, proxy, db
}

// TestImagePulledAcrossSitesOnPostgres: an image uploaded at site A is pulled by
// site B (two rpi-deployd processes on one PostgreSQL) when a hello at B needs it.
// B is SIGKILLed halfway through the pull; restarted, it continues from the frames
// it had proven (Range) and the image becomes ready at B, which deploys it.
func TestImagePulledAcrossSitesOnPostgres(t *testing.T) {
	a, b, proxy, _ := twoSitesOnPostgres(t)
	img := servertest.PackedImage(t, t.TempDir(), "kxp2-sites", 8<<20, 1<<20)
	m, err := manifest.Load(manifest.PathFor(img))
	if err != nil {
		t.Fatal(err)
	}
	a.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 5, Image: img})
	holdAt := m.Chunks[3].Frame
	proxy.set(holdAt, -1)

	code, r := postHello(t, b, "10000000000000b1")
	if code != http.StatusOK || r.Action != agentapi.ActionRetry || !strings.Contains(r.Reason, "being pulled to site site-b from site site-a") {
		t.Fatalf("hello at B before it holds the image: %d %+v", code, r)
	}
	select {
	case <-proxy.held:
	case <-time.After(time.Minute):
		t.Fatal("B never pulled three chunks through the proxy")
	}
	awaitSite(t, b, m.Name, "site-b", func(e mgmtapi.ImageSite) bool { return e.Bytes == holdAt })
	// More boards while the pull runs: each is told to retry; the pull stays one.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			code, r := postHello(t, b, fmt.Sprintf("10000000000000c%d", i))
			if code != http.StatusOK || r.Action != agentapi.ActionRetry || !strings.Contains(r.Reason, "being pulled") {
				t.Errorf("hello during the pull: %d %+v", code, r)
			}
		})
	}
	wg.Wait()
	if asked := proxy.asked(); len(asked) != 1 {
		t.Fatalf("requests to A during one pull: %q; want one", asked)
	}
	b.Kill()
	proxy.unhold()
	part := filepath.Join(b.DataDir, "images", m.Name+".img.zst.part")
	if fi, err := os.Stat(part); err != nil || fi.Size() != holdAt {
		t.Fatalf("B's partial file after SIGKILL: %v %v; want the %d proven bytes", fi, err, holdAt)
	}
	if e, _ := siteOf(t, a, m.Name, "site-b"); e.State != mgmtapi.ImageSitePulling {
		t.Fatalf("A sees B's copy as %+v while B is down; want pulling", e)
	}

	proxy.set(-1, -1)
	b.Restart(t)
	awaitSite(t, b, m.Name, "site-b", func(e mgmtapi.ImageSite) bool { return e.State == mgmtapi.ImageSiteReady })
	asked := proxy.asked()
	if want := "bytes=" + strconv.FormatInt(holdAt, 10) + "-"; len(asked) != 2 || asked[0] != "" || asked[1] != want {
		t.Fatalf("Ranges asked of A: %q; want the whole file, then %q", asked, want)
	}
	if sum := servertest.FileSHA256(t, filepath.Join(b.DataDir, "images", m.Name+".img.zst")); sum != m.CompressedSHA256 {
		t.Fatalf("B's image file sha256 %s, manifest %s", sum, m.CompressedSHA256)
	}
	code, r = postHello(t, b, "10000000000000b1")
	if code != http.StatusOK || r.Action != agentapi.ActionDeploy || r.Deployment == nil {
		t.Fatalf("hello at B holding the image: %d %+v", code, r)
	}
	if e, _ := siteOf(t, a, m.Name, "site-b"); e.State != mgmtapi.ImageSiteReady || e.Source != "site-a" || e.Bytes != m.CompressedSize {
		t.Fatalf("A sees B's copy as %+v; want ready, pulled from site-a", e)
	}
}

// TestCorruptPeerOnPostgres: site A's answer has a wrong byte in chunk 1. Site B
// (`image pull`'s endpoint) ends with no ready image, no file served and an error
// that names the chunk, its chunk 0 kept; the next pull asks only for the rest.
// Neither server's log holds the peer credential.
func TestCorruptPeerOnPostgres(t *testing.T) {
	a, b, proxy, db := twoSitesOnPostgres(t)
	img := servertest.PackedImage(t, t.TempDir(), "kxp2-corrupt", 4<<20, 1<<20)
	m, err := manifest.Load(manifest.PathFor(img))
	if err != nil {
		t.Fatal(err)
	}
	a.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 5, Image: img})
	proxy.set(-1, m.Chunks[1].Frame+100)

	ctx := context.Background()
	if err := b.Do(ctx, http.MethodPost, "/api/v1/images/"+m.Name+"/pull", map[string]string{"from": "site-a"}, nil); err != nil {
		t.Fatal(err)
	}
	e := awaitSite(t, b, m.Name, "site-b", func(e mgmtapi.ImageSite) bool { return e.Error != "" })
	if e.State != mgmtapi.ImageSitePulling || e.Bytes != m.Chunks[1].Frame || !strings.Contains(e.Error, "chunk 1") {
		t.Fatalf("B after a corrupt answer: %+v; want pulling, %d bytes kept, an error naming chunk 1", e, m.Chunks[1].Frame)
	}
	resp, err := http.Get(b.URL + domain.ImagePath(m.Name))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("B serves the image after a corrupt pull: HTTP %d", resp.StatusCode)
	}
	if !b.WaitLog("image pull stopped", 10*time.Second) {
		t.Fatalf("B did not log the failed pull:\n%s", b.Log())
	}

	proxy.set(-1, -1)
	if err := b.Do(ctx, http.MethodPost, "/api/v1/images/"+m.Name+"/pull", map[string]string{}, nil); err != nil {
		t.Fatal(err)
	}
	awaitSite(t, b, m.Name, "site-b", func(e mgmtapi.ImageSite) bool { return e.State == mgmtapi.ImageSiteReady })
	if asked := proxy.asked(); len(asked) != 2 || asked[1] != "bytes="+strconv.FormatInt(m.Chunks[1].Frame, 10)+"-" {
		t.Fatalf("Ranges asked of A: %q", asked)
	}
	tok, err := pgtest.Shared().Psql(ctx, db, "SELECT token FROM peer_credentials")
	if err != nil || len(tok) < 40 {
		t.Fatalf("peer credential %q: %v", tok, err)
	}
	if strings.Contains(b.Log(), tok) || strings.Contains(a.Log(), tok) {
		t.Fatal("a server's log holds the peer credential")
	}
}

package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// BenchmarkPullImage: the time for a new site to pull a 128 MiB image (1 MiB
// chunks, incompressible) from site A over loopback — every frame decoded and proven
// against the manifest, then the whole file hashed again (compressed_sha256) and
// fsynced — against the baseline of a plain verified copy measured in the same run:
// GET of the same file from A's download path into a file, SHA-256 as the bytes
// pass, fsync (what curl | tee | sha256sum would do). scripts/bench/16-image-pull.sh
// prints the bench line. Metrics: ms/pull, ms/copy, ratio.
func BenchmarkPullImage(b *testing.B) {
	st, err := store.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	dir := b.TempDir()
	img := servertest.PackedImage(b, dir, "kxp2-bench", 128<<20, 1<<20)
	m, err := manifest.Load(manifest.PathFor(img))
	if err != nil {
		b.Fatal(err)
	}
	a := benchSite(b, st, "site-a")
	a.srv.Setup(b, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 1, Image: img})
	var pull, copyDur time.Duration
	b.ResetTimer()
	for i := range b.N {
		site := benchSite(b, st, fmt.Sprintf("site-b%d", i))
		start := time.Now()
		if _, err := site.svc.PullImage(context.Background(), m.Name, "site-a"); err != nil {
			b.Fatal(err)
		}
		benchWaitReady(b, site, m.Name)
		pull += time.Since(start)

		start = time.Now()
		if sum := benchCopy(b, a.srv.URL+domain.ImagePath(m.Name), filepath.Join(site.dir, "copy.img.zst")); sum != m.CompressedSHA256 {
			b.Fatalf("copy sha256 %s, manifest %s", sum, m.CompressedSHA256)
		}
		copyDur += time.Since(start)
		site.stop()
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(ms(pull), "ms/pull")
	b.ReportMetric(ms(copyDur), "ms/copy")
	b.ReportMetric(float64(pull)/float64(copyDur), "ratio")
}

// benchSite is startSite for a benchmark (no fault on its peer answers).
func benchSite(b *testing.B, st *store.Store, name string) *testSite {
	b.Helper()
	s, err := newTestSite(st, domain.Options{Site: name, DataDir: b.TempDir()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.stop)
	return s
}

func benchWaitReady(b *testing.B, s *testSite, name string) {
	b.Helper()
	sub, _ := s.svc.Bus().Subscribe(0)
	defer sub.Close()
	for {
		v, err := s.svc.Image(context.Background(), name)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range v.Sites {
			if e.Site == s.name && e.State == mgmtapi.ImageSiteReady {
				return
			}
			if e.Site == s.name && e.Error != "" {
				b.Fatal(e.Error)
			}
		}
		select {
		case <-sub.C:
		case <-time.After(time.Minute):
			b.Fatal("pull did not end within a minute")
		}
	}
}

// benchCopy downloads url into path, hashing as the bytes pass, and fsyncs it.
func benchCopy(b *testing.B, url, path string) string {
	b.Helper()
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

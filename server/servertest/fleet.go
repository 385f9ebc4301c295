package servertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/push"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
)

// Fleet describes what Setup creates.
type Fleet struct {
	Venue   string // 4 upper-case letters; created if missing (name = code)
	Product string // KXP2 (pool) or RXP2 (serial) or any existing product
	Count   int    // batch size; 0 = open-ended. For pool products, Count names are
	// generated (PoolSize overrides)
	PoolSize int
	Image    string // path of a packed NAME.img.zst (manifest beside it); uploaded
	Priority int
}

// FleetInfo is what Setup made.
type FleetInfo struct {
	ImageName string
	Manifest  *manifest.Manifest
	Batch     mgmtapi.Batch
}

// Setup uploads the image through the API (unless already there), makes it the
// product's active image, creates the venue, generates pool names for pool products
// and creates an active batch. An image whose manifest names no first-boot mechanism
// (PackedImage's raw data) is uploaded and used with the explicit override
// (allow_no_first_boot), which the server otherwise demands.
func (s *Server) Setup(t testing.TB, f Fleet) FleetInfo {
	t.Helper()
	ctx := context.Background()
	m, err := manifest.Load(manifest.PathFor(f.Image))
	if err != nil {
		t.Fatal(err)
	}
	unnamed := m.FirstBoot == manifest.FirstBootNone
	if err := push.Push(ctx, push.Options{Server: s.URL, Token: s.Token, Image: f.Image, AllowNoFirstBoot: unnamed}); err != nil {
		t.Fatalf("push %s: %v", f.Image, err)
	}
	if err := s.Do(ctx, http.MethodPost, "/api/v1/images/"+m.Name+"/activate", map[string]any{"product": f.Product, "allow_no_first_boot": unnamed}, nil); err != nil {
		t.Fatalf("activate: %v", err)
	}
	if err := s.Do(ctx, http.MethodPost, "/api/v1/venues", map[string]string{"code": f.Venue, "name": f.Venue}, nil); err != nil {
		t.Fatalf("venue: %v", err)
	}
	var p mgmtapi.Product
	if err := s.Do(ctx, http.MethodGet, "/api/v1/products/"+f.Product, nil, &p); err != nil {
		t.Fatalf("product: %v", err)
	}
	if p.Naming == mgmtapi.NamingPool {
		n := f.PoolSize
		if n == 0 {
			n = max(f.Count, 1)
		}
		if err := s.Do(ctx, http.MethodPost, "/api/v1/pools/generate", map[string]any{"venue": f.Venue, "product": f.Product, "count": n}, nil); err != nil {
			t.Fatalf("pool: %v", err)
		}
	}
	var b mgmtapi.Batch
	if err := s.Do(ctx, http.MethodPost, "/api/v1/batches", map[string]any{"venue": f.Venue, "product": f.Product,
		"image": m.Name, "count": f.Count, "priority": f.Priority, "allow_no_first_boot": unnamed}, &b); err != nil {
		t.Fatalf("batch: %v", err)
	}
	return FleetInfo{ImageName: m.Name, Manifest: m, Batch: b}
}

// PackedImage packs size bytes of deterministic pseudo-random data (seeded by name)
// as dir/NAME.img.zst with its manifest, at chunk size chunk (0 = 1 MiB), and returns
// the .img.zst path. A raw file without partitions is all data.
func PackedImage(t testing.TB, dir, name string, size int64, chunk int64) string {
	t.Helper()
	if chunk == 0 {
		chunk = 1 << 20
	}
	raw := filepath.Join(dir, name+".raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256([]byte(name))
	var s [32]byte
	copy(s[:], seed[:])
	r := rand.NewChaCha8(s)
	if _, err := io.CopyN(f, r, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+".img.zst")
	if _, err := pack.Pack(context.Background(), pack.Options{Input: raw, Output: out, ChunkSize: chunk, Concurrency: 2, Raw: true}); err != nil {
		t.Fatalf("pack %s: %v", raw, err)
	}
	os.Remove(raw)
	return out
}

// PullImage brings image name to this server from a server of another site that
// holds it (servers on one database, each with its own data directory: POST
// /api/v1/images/NAME/pull) and waits until this server holds it ready, for at most
// a minute. A server deploys only images its own data directory holds: a hello at
// it for an image only another site holds is answered retry while it pulls.
func (s *Server) PullImage(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Client.PullImage(ctx, name, "", 20*time.Millisecond, nil); err != nil {
		t.Fatalf("pull %s: %v", name, err)
	}
}

// FileSHA256 is the hex SHA-256 of the file at path (a served or pulled image file).
func FileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

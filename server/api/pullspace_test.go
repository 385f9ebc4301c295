package api_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/push"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// holdPeer holds site A's answers on the peer endpoint until release is closed,
// telling asked when the first request arrives.
func holdPeer(asked chan<- struct{}, release <-chan struct{}) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/api/v1/peer/") {
				select {
				case asked <- struct{}{}:
				default:
				}
				<-release
			}
			h.ServeHTTP(w, r)
		})
	}
}

// TestPullHoldsItsDiskSpace: a running pull counts as an unfinished upload in the
// disk check. Site B (a 48 MiB disk, 8 MiB kept free) pulls a 24 MiB image; while
// the pull waits for its bytes, a 20 MiB upload at B is refused with 507 (it would
// fit beside the part file alone, and both together would fill the disk), and the
// pull then completes, verified. Before, the check counted uploads only.
func TestPullHoldsItsDiskSpace(t *testing.T) {
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	asked, release := make(chan struct{}, 1), make(chan struct{})
	a := startSite(t, st, "site-a", t.TempDir(), holdPeer(asked, release))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	bDir := servertest.SmallDataDir(t, 48<<20)
	b := startSiteWith(t, st, domain.Options{Site: "site-b", DataDir: bDir, DiskReserve: 8 << 20}, nil)

	imgDir := t.TempDir()
	big := servertest.PackedImage(t, imgDir, "pull-big", 24<<20, 1<<20) // random: does not compress
	other := servertest.PackedImage(t, imgDir, "upload-20m", 20<<20, 1<<20)
	ctx := context.Background()
	if err := push.Push(ctx, push.Options{Server: a.srv.URL, Token: a.srv.Token, Image: big, AllowNoFirstBoot: true}); err != nil {
		t.Fatalf("upload at A: %v", err)
	}
	m, err := manifest.Load(manifest.PathFor(big))
	if err != nil {
		t.Fatal(err)
	}
	var up mgmtapi.UploadState
	if err := b.srv.Do(ctx, http.MethodPost, "/api/v1/images/"+m.Name+"/pull", map[string]string{"from": "site-a"}, &up); err != nil {
		t.Fatal(err)
	}
	<-asked // B's pull has passed its own check and waits for A's bytes

	code, body := putManifest(t, b.srv, other)
	if code != http.StatusInsufficientStorage || !strings.Contains(body["error"].(string), "not enough free disk space") {
		t.Fatalf("a 20 MiB upload at B while 24 MiB are being pulled onto its 48 MiB disk: %d %v; want 507", code, body)
	}
	if _, err := os.Stat(filepath.Join(bDir, "images", "upload-20m.img.zst.part")); err == nil {
		t.Error("the refused upload left a part file at B")
	}

	close(release)
	waitSite(t, b, m.Name, pullReady)
	if sum := servertest.FileSHA256(t, filepath.Join(bDir, "images", m.Name+".img.zst")); sum != m.CompressedSHA256 {
		t.Fatalf("B's pulled image sha256 %s, manifest %s", sum, m.CompressedSHA256)
	}
}

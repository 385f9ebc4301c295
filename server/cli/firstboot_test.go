package cli_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestImageWithoutFirstBootRefused: an image whose manifest names no first-boot
// mechanism is refused by `image add`, `image activate` and `batch add` — with a
// message that names the image and the override — before any board could flash it;
// nothing is left behind by the refusal; --allow-no-first-boot lets it through. A Raspberry Pi
// OS-shaped image (bookworm firstrun) needs no override.
func TestImageWithoutFirstBootRefused(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	dir := t.TempDir()
	unnamed := servertest.PackedImage(t, dir, "raw-unnamed", 2<<20, 1<<20) // raw data: no partitions
	named := packedOS(t, dir, "bookworm-named")

	mustRun := func(want string, args ...string) {
		t.Helper()
		out, errs, code := runCLI(t, srv, "", args...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %q", args, code, out, errs, want)
		}
	}
	mustFail := func(args ...string) {
		t.Helper()
		out, errs, code := runCLI(t, srv, "", args...)
		if code == 0 {
			t.Fatalf("%v: exit 0 (stdout %q), want a refusal", args, out)
		}
		for _, want := range []string{`image "raw-unnamed" has no first-boot mechanism`, "--allow-no-first-boot"} {
			if !strings.Contains(errs, want) {
				t.Errorf("%v: stderr %q lacks %q", args, errs, want)
			}
		}
	}
	mustRun("venue CORO", "venue", "add", "CORO")
	mustRun("added 5 names", "pool", "add", "--venue", "CORO", "--product", "KXP2", "--count", "5")

	mustFail("image", "add", unnamed, "--activate", "KXP2")
	if out, _, _ := runCLI(t, srv, "", "image", "list"); strings.Contains(out, "raw-unnamed") {
		t.Errorf("a refused image is listed:\n%s", out)
	}
	if left, _ := filepath.Glob(filepath.Join(srv.DataDir, "images", "raw-unnamed*")); len(left) != 0 {
		t.Errorf("a refused image left files: %v", left)
	}

	mustRun("image raw-unnamed active for KXP2", "image", "add", unnamed, "--activate", "KXP2", "--allow-no-first-boot")
	// Activating it makes every image-less batch of the product flash it: refused too.
	mustFail("image", "activate", "raw-unnamed", "--product", "RXP2")
	var rxp2 map[string]any
	if err := srv.Do(context.Background(), http.MethodGet, "/api/v1/products/RXP2", nil, &rxp2); err != nil || rxp2["active_image"] == "raw-unnamed" {
		t.Errorf("after a refused activation RXP2 = %v, %v", rxp2, err)
	}
	mustRun("image raw-unnamed active for RXP2", "image", "activate", "raw-unnamed", "--product", "RXP2", "--allow-no-first-boot")
	// Named or the product's active image: a batch that would flash it is refused too.
	mustFail("batch", "add", "--venue", "CORO", "--product", "KXP2", "--count", "2", "--image", "raw-unnamed")
	mustFail("batch", "add", "--venue", "CORO", "--product", "KXP2", "--count", "2")
	if out, _, _ := runCLI(t, srv, "", "batch", "list"); strings.Contains(out, "CORO") {
		t.Errorf("a refused batch is listed:\n%s", out)
	}
	mustRun("batch 1: CORO KXP2 count 2", "batch", "add", "--venue", "CORO", "--product", "KXP2", "--count", "2", "--image", "raw-unnamed", "--allow-no-first-boot")

	// An image with a first-boot mechanism needs no override.
	mustRun("image bookworm-named active for KXP2", "image", "add", named, "--activate", "KXP2")
	mustRun("batch 2: CORO KXP2 count 1", "batch", "add", "--venue", "CORO", "--product", "KXP2", "--count", "1")
}

// packedOS builds a small Raspberry Pi OS-shaped image (bookworm, firstrun) and packs it.
func packedOS(t *testing.T, dir, name string) string {
	t.Helper()
	raw := filepath.Join(dir, name+".img")
	if _, err := testimg.Build(raw, testimg.Options{BootSize: testimg.MinBootSize, RootData: -1, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+".img.zst")
	if _, err := pack.Pack(context.Background(), pack.Options{Input: raw, Output: out, Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
	os.Remove(raw)
	m, err := manifest.Load(manifest.PathFor(out))
	if err != nil || m.FirstBoot != manifest.FirstBootFirstrun {
		t.Fatalf("packed OS image: first_boot %q, %v; want firstrun", m.FirstBoot, err)
	}
	return out
}

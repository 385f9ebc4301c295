package store

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestImageHead: ImageHead is Image without the manifest, which a hello does not
// need and which for a large image runs to hundreds of kilobytes.
func TestImageHead(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		img := Image{Name: "big", Size: 8 << 30, SHA256: strings.Repeat("ab", 32), CompressedSize: 3 << 30, FirstBoot: "cloud-init",
			Manifest: `{"chunks":["` + strings.Repeat("cd", 32*2048) + `"]}`, State: ImageReady}
		var full, head Image
		err := s.Update(ctx, func(tx *Tx) error {
			if err := tx.PutImage(ctx, img); err != nil {
				return err
			}
			var err error
			if full, err = tx.Image(ctx, "big"); err != nil {
				return err
			}
			head, err = tx.ImageHead(ctx, "big")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if full.Manifest != img.Manifest {
			t.Fatalf("Image lost the manifest (%d bytes, want %d)", len(full.Manifest), len(img.Manifest))
		}
		want := full
		want.Manifest = ""
		if diff := cmp.Diff(want, head); diff != "" {
			t.Errorf("ImageHead (-want +got):\n%s", diff)
		}
	})
}

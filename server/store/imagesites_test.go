package store

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestImageSites: one row per site and image, replaced whole by PutImageSite; a
// pull's progress changes only the row of that site pulling that content; deleting
// an image forgets every site's copy.
func TestImageSites(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		sum, other := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
		a := ImageSite{Site: "a", Image: "img", SHA256: sum, CompressedSHA256: sum, URL: "http://a:8080", State: SiteReady, Bytes: 5 << 30}
		b := ImageSite{Site: "b", Image: "img", SHA256: sum, CompressedSHA256: sum, URL: "http://b:8080", State: SitePulling,
			Bytes: 1 << 20, Source: "a"}
		update := func(fn func(*Tx) error) {
			t.Helper()
			if err := s.Update(ctx, fn); err != nil {
				t.Fatal(err)
			}
		}
		update(func(tx *Tx) error {
			if err := tx.PutImageSite(ctx, a); err != nil {
				return err
			}
			return tx.PutImageSite(ctx, b)
		})
		update(func(tx *Tx) error {
			if err := tx.SetImageSiteBytes(ctx, "b", "img", sum, 3<<20); err != nil {
				return err
			}
			// Other content, or a ready row: untouched.
			if err := tx.SetImageSiteBytes(ctx, "b", "img", other, 9); err != nil {
				return err
			}
			return tx.SetImageSiteBytes(ctx, "a", "img", sum, 9)
		})
		got, err := s.ImageSites(ctx, "img")
		if err != nil {
			t.Fatal(err)
		}
		b.Bytes = 3 << 20
		ignoreTime := cmpopts.IgnoreFields(ImageSite{}, "UpdatedAt")
		if diff := cmp.Diff([]ImageSite{a, b}, got, ignoreTime); diff != "" {
			t.Errorf("ImageSites (-want +got):\n%s", diff)
		}
		b.State, b.Bytes = SiteReady, 5<<30
		update(func(tx *Tx) error { return tx.PutImageSite(ctx, b) })
		if got, _ = s.ImageSites(ctx, "img"); len(got) != 2 || got[1].State != SiteReady || got[1].Bytes != 5<<30 {
			t.Errorf("after b is ready: %+v", got)
		}
		update(func(tx *Tx) error { return tx.DeleteImageSites(ctx, "img") })
		if got, err = s.AllImageSites(ctx); err != nil || len(got) != 0 {
			t.Errorf("after the image is deleted: %+v %v", got, err)
		}
	})
}

// TestPeerToken: the first candidate becomes the database's peer credential; later
// servers (other candidates) read the same.
func TestPeerToken(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		var first, second string
		for _, c := range []struct {
			candidate string
			got       *string
		}{{"first-candidate", &first}, {"second-candidate", &second}} {
			if err := s.Update(ctx, func(tx *Tx) error {
				var err error
				*c.got, err = tx.PeerToken(ctx, c.candidate)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		if first != "first-candidate" || second != "first-candidate" {
			t.Fatalf("peer tokens %q, %q; want the first candidate twice", first, second)
		}
	})
}

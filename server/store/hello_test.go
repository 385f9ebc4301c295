package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestAddClaimedDeploymentAsStored: the deployment AddClaimedDeployment returns
// (built from what it wrote, not read back) is field for field the one Deployment
// then reads; the secret's hash and the source are recorded by the same INSERT;
// a second open deployment of the board is ErrConflict and leaves the first and
// the batch's counter as they were.
func TestAddClaimedDeploymentAsStored(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		s.SetClock(func() time.Time { return time.Date(2026, 12, 5, 3, 40, 0, 123456789, time.UTC) })
		const serial = "10000000cafef00d"
		var got Deployment
		var batch int64
		for _, site := range []string{"", "north"} {
			err := s.Update(ctx, func(tx *Tx) error {
				if site == "" {
					if _, err := tx.PutVenue(ctx, "CORO", ""); err != nil {
						return err
					}
					var err error
					if batch, err = tx.AddBatch(ctx, Batch{Venue: "CORO", Product: "RXP2", State: BatchActive}); err != nil {
						return err
					}
				}
				b, err := tx.SaveBoard(ctx, Board{Serial: serial, MAC: "2c:cf:67:00:00:0d"})
				if err != nil {
					return err
				}
				d, err := tx.AddClaimedDeployment(ctx, Deployment{Serial: serial, MAC: b.MAC, BatchID: batch, Venue: "CORO",
					Product: "RXP2", Hostname: "RXP2-CORO-CAFEF00D", Image: "img", Phase: "hello", Total: 1 << 20, Site: site},
					"5ec7e7", "10.42.0.9")
				if err == nil {
					got = d
				}
				return err
			})
			if site == "" {
				if err != nil {
					t.Fatal(err)
				}
				continue
			}
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("second open deployment: %v, want ErrConflict", err)
			}
		}
		read, err := s.Deployment(ctx, got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, read) {
			t.Errorf("returned %+v\nread     %+v", got, read)
		}
		if got.Site != DefaultSite || got.State != DeployOpen || got.MAC != "2c:cf:67:00:00:0d" {
			t.Errorf("returned %+v: want site %s, open, the board's MAC", got, DefaultSite)
		}
		var hash string
		var open int
		err = s.Update(ctx, func(tx *Tx) error {
			if hash, _, err = tx.DeploymentSecret(ctx, got.ID); err != nil {
				return err
			}
			if open, err = tx.CountOpenFromSource(ctx, DefaultSite, "10.42.0.9", 10); err != nil {
				return err
			}
			b, err := tx.Batch(ctx, batch)
			if err == nil && b.InFlight != 1 {
				t.Errorf("batch in progress %d after the refused second, want 1", b.InFlight)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if hash != "5ec7e7" || open != 1 {
			t.Errorf("secret hash %q, open from source %d; want 5ec7e7, 1", hash, open)
		}
	})
}

// TestSaveBoardAsStored: the board SaveBoard returns (built from what it wrote, not
// read back) is field for field the one Board then reads, for a new board and for
// a stored one it changes; a stored board keeps its first_seen whatever the caller
// passes, and the write touches no other board.
func TestSaveBoardAsStored(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		clock := time.Date(2026, 12, 5, 3, 40, 0, 123456789, time.UTC)
		s.SetClock(func() time.Time { return clock })
		other := Board{Serial: "10000000000000aa", MAC: "2c:cf:67:00:00:aa", Hostname: "RXP2-CORO-000000AA"}
		first := Board{Serial: "10000000cafef00d", MAC: "2c:cf:67:00:00:0d", Model: "Raspberry Pi 5 Model B Rev 1.0",
			Revision: "d04170", IP: "10.42.0.9", LastEvent: "hello"}
		changed := Board{Serial: first.Serial, MAC: "2c:cf:67:00:00:0e", Model: first.Model, Revision: "e04171",
			IP: "10.42.0.10", Hostname: "RXP2-CORO-CAFEF00D", Image: "img", Deployed: true, Reimage: true,
			LastEvent: "retry: no room", FirstSeen: "2020-01-01T00:00:00.000000000Z", Site: "north"}
		wantOther, err := saveBoard(ctx, s, other)
		if err != nil {
			t.Fatal(err)
		}
		var firstSeen string
		for i, b := range []Board{first, changed} {
			clock = clock.Add(time.Minute)
			got, err := saveBoard(ctx, s, b)
			if err != nil {
				t.Fatal(err)
			}
			read, err := s.Board(ctx, b.Serial)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, read) {
				t.Errorf("save %d: returned %+v\nread     %+v", i, got, read)
			}
			if i == 0 {
				firstSeen = read.FirstSeen
			}
			if read.FirstSeen != firstSeen || read.LastSeen != FormatTime(clock) {
				t.Errorf("save %d: first seen %s, last seen %s; want %s, %s", i, read.FirstSeen, read.LastSeen, firstSeen,
					FormatTime(clock))
			}
		}
		if read, err := s.Board(ctx, other.Serial); err != nil || !reflect.DeepEqual(read, wantOther) {
			t.Errorf("the other board: %+v %v, want %+v", read, err, wantOther)
		}
	})
}

// TestHelloFacts: the one query gives what Board, CountOpenFromSource,
// CountOpenAll and HostnameTaken give apart, and whether any profile is attached:
// the stored board or, for a serial never stored, Known false and the serial alone;
// the open deployments from the source at the site up to the limit (none counted
// without a source or a limit); all open deployments, in batches and outside;
// whether a board other than the hello's holds the name asked for (another board's
// name, the board's own, nobody's, none asked).
func TestHelloFacts(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		err := s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.PutVenue(ctx, "CORO", ""); err != nil {
				return err
			}
			batch, err := tx.AddBatch(ctx, Batch{Venue: "CORO", Product: "RXP2", State: BatchActive})
			if err != nil {
				return err
			}
			for i, src := range []string{"10.42.0.9", "10.42.0.9", "10.42.0.9", "10.42.0.10"} {
				serial := fmt.Sprintf("10000000000000%02x", i)
				if _, err := tx.SaveBoard(ctx, Board{Serial: serial, MAC: "2c:cf:67:00:00:0d", Hostname: "h" + serial}); err != nil {
					return err
				}
				d := Deployment{Serial: serial, BatchID: batch, Venue: "CORO", Product: "RXP2", Hostname: "h" + serial,
					Image: "img", Phase: "hello"}
				if i == 3 {
					d.BatchID = 0 // a re-image, outside any batch
				}
				if _, err := tx.AddClaimedDeployment(ctx, d, "", src); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			serial, source string
			limit          int
			name           string
		}{
			{"1000000000000001", "10.42.0.9", 10, "h1000000000000002"}, // another board's
			{"1000000000000001", "10.42.0.9", 2, "h1000000000000001"},  // its own
			{"10000000000000ff", "10.42.0.10", 10, "h1000000000000003"},
			{"10000000000000ff", "", 10, "RXP2-CORO-000000FF"}, // nobody's
			{"1000000000000003", "10.42.0.9", -1, ""},
		} {
			err := s.Update(ctx, func(tx *Tx) error {
				f, err := tx.HelloFacts(ctx, tc.serial, "", tc.source, tc.limit, tc.name)
				if err != nil {
					return err
				}
				var want HelloFacts
				want.Board, err = tx.Board(ctx, tc.serial)
				want.Known = err == nil
				if errors.Is(err, ErrNotFound) {
					want.Board = Board{Serial: tc.serial}
				} else if err != nil {
					return err
				}
				if tc.source != "" && tc.limit > 0 {
					if want.OpenFromSource, err = tx.CountOpenFromSource(ctx, DefaultSite, tc.source, tc.limit); err != nil {
						return err
					}
				}
				if want.OpenAll, err = tx.CountOpenAll(ctx); err != nil {
					return err
				}
				if tc.name != "" {
					if want.NameTaken, err = tx.HostnameTaken(ctx, tc.name, tc.serial); err != nil {
						return err
					}
				}
				if f != want {
					t.Errorf("%+v: got  %+v\nwant %+v", tc, f, want)
				}
				if want.OpenAll != 4 {
					t.Errorf("CountOpenAll %d, want 4", want.OpenAll)
				}
				if want.NameTaken != (tc.name == "h1000000000000002" || tc.name == "h1000000000000003") {
					t.Errorf("HostnameTaken(%q, %q) %v", tc.name, tc.serial, want.NameTaken)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		// Profiles says whether any profile is attached to anything, whatever
		// product, venue or batch the hello will be for.
		for _, step := range []struct {
			name string
			do   func(tx *Tx) error
			want bool
		}{
			{"a profile stored, attached to nothing", func(tx *Tx) error { return tx.PutProfile(ctx, "wifi", `{}`) }, false},
			{"attached to another venue", func(tx *Tx) error {
				return tx.LinkProfile(ctx, ProfileLink{Scope: ScopeVenue, Target: "ARIA", Profile: "wifi"})
			}, true},
			{"detached", func(tx *Tx) error { return tx.UnlinkProfile(ctx, ScopeVenue, "ARIA") }, false},
		} {
			err := s.Update(ctx, func(tx *Tx) error {
				if err := step.do(tx); err != nil {
					return err
				}
				f, err := tx.HelloFacts(ctx, "1000000000000001", "", "10.42.0.9", 10, "")
				if f.Profiles != step.want {
					t.Errorf("%s: Profiles %v, want %v", step.name, f.Profiles, step.want)
				}
				return err
			})
			if err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
		}
	})
}

// saveBoard runs SaveBoard in a transaction of its own; the board it returns has
// the first_seen the database holds (SaveBoard returns the caller's).
func saveBoard(ctx context.Context, s *Store, b Board) (Board, error) {
	err := s.Update(ctx, func(tx *Tx) error {
		stored, err := tx.Board(ctx, b.Serial)
		if err == nil {
			b.FirstSeen = stored.FirstSeen
		}
		b, err = tx.SaveBoard(ctx, b)
		return err
	})
	return b, err
}

// TestLinkedProfiles: the one query returns the profiles attached to the product,
// the venue and the batch in that order whatever order they were attached in,
// leaves out scopes with none, never matches a batch for batch "" (a re-image),
// and matches targets exactly (a venue code equal to the product's is not the
// product's attachment).
func TestLinkedProfiles(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		err := s.Update(ctx, func(tx *Tx) error {
			for _, name := range []string{"base", "site", "run", "other"} {
				if err := tx.PutProfile(ctx, name, `{"name":"`+name+`"}`); err != nil {
					return err
				}
			}
			for _, l := range []ProfileLink{{ScopeBatch, "7", "run"}, {ScopeVenue, "CORO", "site"}, {ScopeProduct, "RXP2", "base"},
				{ScopeVenue, "RXP2", "other"}, {ScopeBatch, "", "other"}} {
				if err := tx.LinkProfile(ctx, l); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			product, venue, batch string
			want                  []string
		}{
			{"RXP2", "CORO", "7", []string{"base", "site", "run"}},
			{"RXP2", "CORO", "", []string{"base", "site"}},
			{"KXP2", "CORO", "8", []string{"site"}},
			{"KXP2", "NONE", "", nil},
		} {
			var names []string
			err := s.Update(ctx, func(tx *Tx) error {
				ps, err := tx.LinkedProfiles(ctx, tc.product, tc.venue, tc.batch)
				for _, p := range ps {
					names = append(names, p.Name)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(names, tc.want) {
				t.Errorf("LinkedProfiles(%q, %q, %q) = %q, want %q", tc.product, tc.venue, tc.batch, names, tc.want)
			}
		}
	})
}

// TestProductImageHead: the one query gives what Product and ImageHead give apart:
// the product and its active image's head, or the batch's image named instead; no
// image (none active, an unknown name) is not found, and an unknown product is
// ErrNotFound.
func TestProductImageHead(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		err := s.Update(ctx, func(tx *Tx) error { return twoImages(ctx, tx) })
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			product, image, want string // want: the image found, "" for none
		}{
			{"RXP2", "", "active"},
			{"RXP2", "other", "other"},
			{"RXP2", "missing", ""},
			{"KXP2", "", ""},
			{"KXP2", "other", "other"},
		} {
			err := s.Update(ctx, func(tx *Tx) error {
				p, img, found, err := tx.ProductImageHead(ctx, tc.product, tc.image)
				if err != nil {
					return err
				}
				wantP, err := tx.Product(ctx, tc.product)
				if err != nil {
					return err
				}
				if p != wantP {
					t.Errorf("%s/%q: product %+v, want %+v", tc.product, tc.image, p, wantP)
				}
				if found != (tc.want != "") {
					t.Errorf("%s/%q: found %v, want image %q", tc.product, tc.image, found, tc.want)
				}
				if !found {
					return nil
				}
				wantImg, err := tx.ImageHead(ctx, tc.want)
				if err != nil {
					return err
				}
				if img != wantImg {
					t.Errorf("%s/%q: image %+v, want %+v", tc.product, tc.image, img, wantImg)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		err = s.Update(ctx, func(tx *Tx) error {
			_, _, _, err := tx.ProductImageHead(ctx, "NOPE", "")
			return err
		})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown product: %v, want ErrNotFound", err)
		}
	})
}

// TestHelloBatches: the one query lists the active batches with room, highest
// priority first, then oldest, each with what ProductImageHead gives for its
// product and image: the batch's own image, else the product's active image, none
// when that image is missing or the product has none; paused and full batches are
// left out.
func TestHelloBatches(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		var want []int64 // the batches listed, in order
		err := s.Update(ctx, func(tx *Tx) error {
			if err := twoImages(ctx, tx); err != nil {
				return err
			}
			if _, err := tx.PutVenue(ctx, "CORO", ""); err != nil {
				return err
			}
			ids := map[string]int64{}
			for _, b := range []struct {
				name, product, image, state string
				priority, count             int
			}{
				{"product's image", "RXP2", "", BatchActive, 0, 0},
				{"own image, urgent", "RXP2", "other", BatchActive, 5, 0},
				{"missing image", "RXP2", "missing", BatchActive, 0, 10},
				{"no active image", "KXP2", "", BatchActive, 0, 0},
				{"paused", "RXP2", "", BatchPaused, 9, 0},
				{"full", "RXP2", "", BatchActive, 9, 1},
			} {
				id, err := tx.AddBatch(ctx, Batch{Venue: "CORO", Product: b.product, Image: b.image, State: b.state,
					Priority: b.priority, Count: b.count})
				if err != nil {
					return fmt.Errorf("%s: %w", b.name, err)
				}
				ids[b.name] = id
			}
			if _, err := tx.SaveBoard(ctx, Board{Serial: "1000000000000001", MAC: "2c:cf:67:00:00:0d", Hostname: "h"}); err != nil {
				return err
			}
			if _, err := tx.AddClaimedDeployment(ctx, Deployment{Serial: "1000000000000001", BatchID: ids["full"], Venue: "CORO",
				Product: "RXP2", Hostname: "h", Image: "active", Phase: "hello"}, "", ""); err != nil {
				return err
			}
			want = []int64{ids["own image, urgent"], ids["product's image"], ids["missing image"], ids["no active image"]}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Update(ctx, func(tx *Tx) error {
			got, err := tx.HelloBatches(ctx)
			if err != nil {
				return err
			}
			var ids []int64
			for _, hb := range got {
				ids = append(ids, hb.ID)
				var wantHB HelloBatch
				if wantHB.Batch, err = tx.Batch(ctx, hb.ID); err != nil {
					return err
				}
				wantHB.Product, wantHB.Image, wantHB.ImageFound, err = tx.ProductImageHead(ctx, hb.Batch.Product, hb.Batch.Image)
				if err != nil {
					return err
				}
				wantHB.ProductKnown = true
				if hb != wantHB {
					t.Errorf("batch %d: got  %+v\nwant %+v", hb.ID, hb, wantHB)
				}
			}
			if diff := cmp.Diff(want, ids); diff != "" {
				t.Errorf("batches (-want +got):\n%s", diff)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// twoImages stores the ready images "active" (RXP2's active image) and "other" (P2P
// off), as TestProductImageHead and TestHelloBatches read them.
func twoImages(ctx context.Context, tx *Tx) error {
	for _, name := range []string{"active", "other"} {
		if err := tx.PutImage(ctx, Image{Name: name, Size: 7, SHA256: name + "-sum", CompressedSize: 3,
			FirstBoot: "firstrun", Manifest: `{"big":true}`, State: ImageReady}); err != nil {
			return err
		}
	}
	if err := tx.SetImageP2P(ctx, "other", "off"); err != nil {
		return err
	}
	return tx.SetProductImage(ctx, "RXP2", "active")
}

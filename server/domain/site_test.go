package domain_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// twoSites is two servers, sites north and south, each on a store of its own opened
// on one database (two rpi-deployd on one PostgreSQL; on SQLite, on one file), with a
// ready image active for RXP2 and an open-ended batch for venue CORO.
func twoSites(t *testing.T) (north, south *domain.Service, southBus *events.Bus) {
	t.Helper()
	cfg := storeConfig(t)
	clk := &testClock{now: time.Date(2026, 5, 26, 9, 0, 0, 0, time.UTC)}
	var sts [2]*store.Store
	for i := range sts {
		st, err := store.OpenDB(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		st.SetClock(clk.Now)
		sts[i] = st
	}
	st := sts[0]
	north = domain.New(sts[0], events.New(0, 0), domain.Options{DataDir: cfg.Dir, Site: "north", Now: clk.Now})
	southBus = events.New(0, 0)
	south = domain.New(sts[1], southBus, domain.Options{DataDir: cfg.Dir, Site: "south", Now: clk.Now})
	ctx := domain.WithActor(context.Background(), "test")
	for _, s := range []*domain.Service{north, south} {
		if err := s.RecordSite(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Update(ctx, func(t *store.Tx) error {
		return t.PutImage(ctx, store.Image{Name: "img", Size: 1, SHA256: strings.Repeat("ab", 32), CompressedSize: 1,
			FirstBoot: "firstrun", Manifest: "{}", State: store.ImageReady})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := north.PutVenue(ctx, "CORO", "Coronation"); err != nil {
		t.Fatal(err)
	}
	if _, err := north.ActivateImage(ctx, "img", "RXP2", false); err != nil {
		t.Fatal(err)
	}
	if _, err := north.AddBatch(ctx, domain.BatchSpec{Venue: "CORO", Product: "RXP2"}); err != nil {
		t.Fatal(err)
	}
	return north, south, southBus
}

// TestBoardMovesBetweenSites: a board first seen at north that boots at south keeps
// its serial, its name, its open deployment and its history; the board and the
// deployment now say south, and each history line says which site recorded it.
func TestBoardMovesBetweenSites(t *testing.T) {
	bothDialects(t, testBoardMovesBetweenSites)
}

func testBoardMovesBetweenSites(t *testing.T) {
	north, south, southBus := twoSites(t)
	ctx := context.Background()
	const serial, other = "10000000deadbeef", "10000000cafef00d"
	first, err := north.Hello(ctx, agentapi.Hello{Serial: serial, MAC: "2c:cf:67:00:00:01"})
	if err != nil || first.Deployment == nil {
		t.Fatalf("hello at north: %+v, %v", first, err)
	}
	if _, err := north.Hello(ctx, agentapi.Hello{Serial: other, MAC: "2c:cf:67:00:00:02"}); err != nil {
		t.Fatal(err)
	}
	cur, _ := southBus.Follow(0)
	cur.OnlySite("north")
	again, err := south.Hello(ctx, agentapi.Hello{Serial: serial, MAC: "2c:cf:67:00:00:01"})
	if err != nil || again.Deployment == nil {
		t.Fatalf("hello at south: %+v, %v", again, err)
	}
	if again.Deployment.ID != first.Deployment.ID || again.Deployment.Hostname != first.Deployment.Hostname {
		t.Errorf("at south: deployment %d %q, want north's %d %q", again.Deployment.ID, again.Deployment.Hostname,
			first.Deployment.ID, first.Deployment.Hostname)
	}
	b, err := north.Board(ctx, serial) // any server reads the one inventory
	if err != nil {
		t.Fatal(err)
	}
	if b.Site != "south" || b.Hostname != first.Deployment.Hostname {
		t.Errorf("board site %q hostname %q, want south and %q", b.Site, b.Hostname, first.Deployment.Hostname)
	}
	if len(b.Deployments) != 1 || b.Deployments[0].Site != "south" {
		t.Errorf("board's deployments %+v, want the one deployment, now at south", b.Deployments)
	}
	var hellos []string
	for _, e := range b.History {
		if e.Kind == "agent.hello" {
			hellos = append(hellos, e.Site)
		}
	}
	if diff := cmp.Diff([]string{"north", "south"}, hellos); diff != "" {
		t.Errorf("sites of the board's hello history (-want +got):\n%s", diff)
	}
	// South's stream followed for north carries nothing of the board that left it.
	if buf, _ := cur.Read(nil, 0); strings.Contains(string(buf), serial) {
		t.Errorf("a stream of north got south's events about %s:\n%s", serial, buf)
	}

	for _, tc := range []struct {
		site        string
		boards, dep []string
	}{
		{"north", []string{other}, []string{other}},
		{"south", []string{serial}, []string{serial}},
		{"", []string{other, serial}, []string{other, serial}},
		{"east", nil, nil},
	} {
		bs, err := south.Boards(ctx, domain.BoardFilter{Site: tc.site})
		if err != nil {
			t.Fatal(err)
		}
		ds, err := south.Deployments(ctx, domain.DeploymentFilter{Site: tc.site})
		if err != nil {
			t.Fatal(err)
		}
		f, err := south.Fleet(ctx, tc.site)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.boards, serials(bs, func(b mgmtapi.Board) string { return b.Serial })); diff != "" {
			t.Errorf("boards of site %q (-want +got):\n%s", tc.site, diff)
		}
		if diff := cmp.Diff(tc.dep, serials(ds, func(d mgmtapi.Deployment) string { return d.Serial })); diff != "" {
			t.Errorf("deployments of site %q (-want +got):\n%s", tc.site, diff)
		}
		if diff := cmp.Diff(tc.dep, serials(f.Active, func(d mgmtapi.Deployment) string { return d.Serial })); diff != "" {
			t.Errorf("fleet of site %q, active (-want +got):\n%s", tc.site, diff)
		}
		if f.Counts["open"] != int64(len(tc.dep)) {
			t.Errorf("fleet of site %q counts %v, want %d open", tc.site, f.Counts, len(tc.dep))
		}
	}

	sites, err := south.Sites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sites {
		if sites[i].CreatedAt == "" || sites[i].StartedAt == "" {
			t.Errorf("site %q has no start time: %+v", sites[i].Name, sites[i])
		}
		sites[i].CreatedAt, sites[i].StartedAt = "", ""
	}
	want := []mgmtapi.Site{{Name: "north", Boards: 1, Deployments: 1, Open: 1}, {Name: "south", Current: true, Boards: 1, Deployments: 1, Open: 1}}
	if diff := cmp.Diff(want, sites); diff != "" {
		t.Errorf("sites (-want +got):\n%s", diff)
	}
}

// serials sorts what key picks from each row.
func serials[T any](rows []T, key func(T) string) []string {
	var out []string
	for _, r := range rows {
		out = append(out, key(r))
	}
	slices.Sort(out)
	return out
}

// TestValidSite: a site name is 1–32 of [a-z0-9-]; anything else is ErrInvalid on
// the field "site".
func TestValidSite(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"main", true}, {"hall-2", true}, {strings.Repeat("a", 32), true},
		{"", false}, {strings.Repeat("a", 33), false}, {"Main", false}, {"a b", false}, {"a_b", false},
		{"münchen", false}, {"a\n", false}, {"../x", false},
	} {
		err := domain.ValidSite(tc.name)
		var fe *domain.FieldError
		if tc.ok != (err == nil) || (err != nil && (!errors.Is(err, domain.ErrInvalid) || !errors.As(err, &fe) || fe.Field != "site")) {
			t.Errorf("ValidSite(%q) = %v, want ok=%v (else a FieldError on site)", tc.name, err, tc.ok)
		}
	}
}

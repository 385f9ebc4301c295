package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestSites: a data directory served first as site north, then as site south (the
// way two servers share one database, one after the other): boards and deployments
// carry the site that saw them last, ?site= filters the lists, the fleet, the
// metrics and the event stream, /api/v1/sites counts each site, and a name that
// cannot be a site is answered 400.
func TestSites(t *testing.T) {
	dir := t.TempDir()
	north := servertest.Start(t, servertest.Options{DataDir: dir, Args: []string{"--site", "north"}})
	north.Setup(t, servertest.Fleet{Venue: "ARIA", Product: "RXP2", Count: 10, Image: testImage(t)})
	first := hello(t, north, helloOf(1))
	hello(t, north, helloOf(2))
	north.Stop()
	south := servertest.Start(t, servertest.Options{DataDir: dir, Token: north.Token, Args: []string{"--site", "south"}})
	if again := hello(t, south, helloOf(1)); again.Deployment == nil || again.Deployment.ID != first.Deployment.ID ||
		again.Deployment.Hostname != first.Deployment.Hostname {
		t.Fatalf("board 1 at south: %+v, want north's deployment %d %s", again, first.Deployment.ID, first.Deployment.Hostname)
	}
	hello(t, south, helloOf(3))
	checkSites(t, south, "south")
}

// TestSitesOnPostgres: two servers of two sites at once on one PostgreSQL database
// (pgtest), each with a data directory of its own: a board that said hello at north
// and then at south keeps its deployment and name, and either server lists and
// filters the same inventory by site.
func TestSitesOnPostgres(t *testing.T) {
	db := pgtest.Start(t).CreateDB(t)
	north := servertest.Start(t, servertest.Options{DB: db, Args: []string{"--site", "north"}})
	fleet := north.Setup(t, servertest.Fleet{Venue: "ARIA", Product: "RXP2", Count: 10, Image: testImage(t)})
	south := servertest.Start(t, servertest.Options{DB: db, Args: []string{"--site", "south"}})
	south.PullImage(t, fleet.ImageName) // south deploys only what its own data directory holds
	first := hello(t, north, helloOf(1))
	hello(t, north, helloOf(2))
	if again := hello(t, south, helloOf(1)); again.Deployment == nil || again.Deployment.ID != first.Deployment.ID ||
		again.Deployment.Hostname != first.Deployment.Hostname {
		t.Fatalf("board 1 at south: %+v, want north's deployment %d %s", again, first.Deployment.ID, first.Deployment.Hostname)
	}
	hello(t, south, helloOf(3))
	checkSites(t, north, "north")
	checkSites(t, south, "south")
}

// checkSites checks what srv (of site current) answers when board 2 was seen last
// at north and boards 1 and 3 at south, each with its open deployment.
func checkSites(t *testing.T, srv *servertest.Server, current string) {
	t.Helper()
	ctx := context.Background()
	var sites []mgmtapi.Site
	if err := srv.Client.Get(ctx, "/api/v1/sites", nil, &sites); err != nil {
		t.Fatal(err)
	}
	for i := range sites {
		sites[i].CreatedAt, sites[i].StartedAt = "", ""
	}
	want := []mgmtapi.Site{{Name: "north", Boards: 1, Deployments: 1, Open: 1}, {Name: "south", Boards: 2, Deployments: 2, Open: 2}}
	for i := range want {
		want[i].Current = want[i].Name == current
	}
	if diff := cmp.Diff(want, sites); diff != "" {
		t.Errorf("GET /api/v1/sites at %s (-want +got):\n%s", current, diff)
	}

	for _, tc := range []struct {
		site string
		want []string
	}{
		{"north", []string{serialOf(2)}},
		{"south", []string{serialOf(1), serialOf(3)}},
		{"", []string{serialOf(1), serialOf(2), serialOf(3)}},
		{"nowhere", nil},
	} {
		q := url.Values{}
		if tc.site != "" {
			q.Set("site", tc.site)
		}
		var bs []mgmtapi.Board
		var ds []mgmtapi.Deployment
		var fleet mgmtapi.Fleet
		for path, out := range map[string]any{"/api/v1/boards": &bs, "/api/v1/deployments": &ds, "/api/v1/fleet": &fleet} {
			if err := srv.Client.Get(ctx, path, q, out); err != nil {
				t.Fatalf("%s?%s: %v", path, q.Encode(), err)
			}
		}
		for what, got := range map[string][]string{
			"boards":       siteSerials(bs, func(b mgmtapi.Board) (string, string) { return b.Serial, b.Site }, tc.site),
			"deployments":  siteSerials(ds, func(d mgmtapi.Deployment) (string, string) { return d.Serial, d.Site }, tc.site),
			"fleet active": siteSerials(fleet.Active, func(d mgmtapi.Deployment) (string, string) { return d.Serial, d.Site }, tc.site),
		} {
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s of site %q at %s (-want +got):\n%s", what, tc.site, current, diff)
			}
		}
		metrics := getText(t, srv, "/metrics?"+q.Encode())
		if line := fmt.Sprintf("rpideploy_deployments{state=\"open\"} %d\n", len(tc.want)); !strings.Contains(metrics, line) {
			t.Errorf("metrics of site %q at %s lack %q", tc.site, current, line)
		}
	}

	// Board 1 said hello at north, then at south: its history holds both, each with
	// the site that recorded it.
	for site, want := range map[string][]string{"north": {"north"}, "south": {"south"}, "": {"north", "south"}} {
		var evs []mgmtapi.BoardEvent
		if err := srv.Client.Get(ctx, "/api/v1/boards/"+serialOf(1)+"/events", url.Values{"site": {site}}, &evs); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			if e.Kind == "agent.hello" {
				got = append(got, e.Site)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("board 1's hellos recorded at site %q, asked at %s (-want +got):\n%s", site, current, diff)
		}
	}

	for _, path := range []string{"/api/v1/boards", "/api/v1/deployments", "/api/v1/fleet", "/api/v1/events", "/metrics", "/api/v1/boards/" + serialOf(1) + "/events"} {
		for _, bad := range []string{"North", "a b", strings.Repeat("x", 33), "../main"} {
			code, body := getRaw(t, srv, path+"?site="+url.QueryEscape(bad))
			if code != http.StatusBadRequest || !strings.Contains(body, "site") {
				t.Errorf("%s?site=%q: %d %s, want 400 naming the site", path, bad, code, body)
			}
		}
	}
}

// TestEventStreamOfOneSite: a stream opened with ?site= carries the events of its
// site's boards and deployments and those of no site (batches), never another
// site's.
func TestEventStreamOfOneSite(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--site", "south"}})
	srv.Setup(t, servertest.Fleet{Venue: "ARIA", Product: "RXP2", Count: 5, Image: testImage(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	north := openStream(ctx, t, srv, "north")
	south := openStream(ctx, t, srv, "south")
	hello(t, srv, helloOf(7))
	got := func(sc *bufio.Scanner) []string {
		var types []string
		for sc.Scan() {
			if e, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				types = append(types, e)
				if e == "batch.changed" {
					return types
				}
			}
		}
		t.Fatalf("stream ended before batch.changed (got %v): %v", types, sc.Err())
		return nil
	}
	if types := got(north); !slices.Equal(types, []string{"batch.changed"}) {
		t.Errorf("north's stream got %v, want only the batch", types)
	}
	if types := got(south); !slices.Contains(types, "deployment.created") || !slices.Contains(types, "board.changed") {
		t.Errorf("south's stream got %v, want the board and its deployment", types)
	}
}

// openStream opens /api/v1/events?site=site and returns its lines once connected.
func openStream(ctx context.Context, t *testing.T, srv *servertest.Server, site string) *bufio.Scanner {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/events?site="+site, nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events?site=%s: %s", site, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), ": connected") {
		t.Fatalf("events?site=%s: first line %q, %v", site, sc.Text(), sc.Err())
	}
	return sc
}

// siteSerials are the serials of rows, sorted; a row whose site is not site (when
// site is given) is reported as "SERIAL@SITE" so that the diff shows it.
func siteSerials[T any](rows []T, key func(T) (serial, site string), site string) []string {
	var out []string
	for _, r := range rows {
		serial, at := key(r)
		if site != "" && at != site {
			serial += "@" + at
		}
		out = append(out, serial)
	}
	slices.Sort(out)
	return out
}

// getRaw is a GET with the admin token, returning the status and body.
func getRaw(t *testing.T, srv *servertest.Server, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// getText is getRaw that wants 200.
func getText(t *testing.T, srv *servertest.Server, path string) string {
	t.Helper()
	code, body := getRaw(t, srv, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	return body
}

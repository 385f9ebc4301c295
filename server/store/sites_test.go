package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// oldDatabase makes the database cfg names as a server without sites left it: every
// migration but 0033, 0051, 0037, 0039 and 0040 applied, then the rows of one board that got a
// deployment, said hello and holds a DHCP lease, written by plain SQL.
func oldDatabase(t *testing.T, cfg Config) {
	t.Helper()
	d, driver, dsn := dialectSQLite, "sqlite", "file:"+filepath.Join(cfg.Dir, FileName)
	if cfg.URL != "" {
		d, driver, dsn = dialectPostgres, "pgx", cfg.URL
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	all, err := migrationFiles(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		// The site migrations, 0037 and 0039, which index the site column 0033 adds,
		// and 0040, which drops indexes of 0033.
		if m.version == 33 || m.version == 51 || m.version == 37 || m.version == 39 || m.version == 40 {
			continue
		}
		body, err := migrations.ReadFile(migrationDir(d) + "/" + m.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if _, err := db.Exec(d.text(`INSERT INTO schema_migrations VALUES (?, ?, '2026-01-01T00:00:00.000000000Z')`), m.version, m.name); err != nil {
			t.Fatal(err)
		}
	}
	const at = "2026-01-01T00:00:00.000000000Z"
	for _, q := range []string{
		`INSERT INTO boards (serial, mac, first_seen, last_seen) VALUES ('10000000deadbeef', '2c:cf:67:00:00:01', '` + at + `', '` + at + `')`,
		`INSERT INTO deployments (serial, venue, product, hostname, image, state, phase, started_at, updated_at)
			VALUES ('10000000deadbeef', 'CORO', 'RXP2', 'RXP2-CORO-DEADBEEF', 'img', 'open', 'hello', '` + at + `', '` + at + `')`,
		`INSERT INTO board_events (serial, mac, at, kind) VALUES ('10000000deadbeef', '2c:cf:67:00:00:01', '` + at + `', 'agent.hello')`,
		`INSERT INTO dhcp_leases (mac, ip, serial, kind, expires_at, updated_at) VALUES ('2c:cf:67:00:00:01', '10.42.0.100', 'deadbeef', 'agent', '` + at + `', '` + at + `')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestSitesMigration: a database of a server without sites opens with every row it
// holds at site main: the board, its deployment, its history and its DHCP lease;
// the sites list names main with them.
func TestSitesMigration(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		oldDatabase(t, cfg)
		s := openCfg(t, cfg)
		b, err := s.Board(ctx, "10000000deadbeef")
		if err != nil || b.Site != "main" {
			t.Errorf("board %+v, %v; want site main", b, err)
		}
		ds, err := s.Deployments(ctx, DeploymentFilter{Site: "main"})
		if err != nil || len(ds) != 1 || ds[0].Site != "main" || ds[0].Hostname != "RXP2-CORO-DEADBEEF" {
			t.Errorf("deployments at main %+v, %v; want the one", ds, err)
		}
		evs, err := s.BoardEvents(ctx, "10000000deadbeef", "", 0)
		if err != nil || len(evs) != 1 || evs[0].Site != "main" {
			t.Errorf("history %+v, %v; want one event at main", evs, err)
		}
		ls, err := s.DHCPLeases(ctx, "main")
		if err != nil || len(ls) != 1 || ls[0].IP != "10.42.0.100" || ls[0].Serial != "deadbeef" {
			t.Errorf("leases at main %+v, %v; want the one at 10.42.0.100", ls, err)
		}
		sites, err := s.Sites(ctx)
		if err != nil || len(sites) != 1 || sites[0] != (Site{Name: "main", Boards: 1, Deployments: 1, Open: 1}) {
			t.Errorf("sites %+v, %v; want main with its board and open deployment", sites, err)
		}
	})
}

// TestSeeSite: a server's start records its site once (created_at stays, started_at
// moves), and the site is listed with no rows of its own.
func TestSeeSite(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		for range 2 {
			if err := s.Update(ctx, func(t *Tx) error { return t.SeeSite(ctx, "hall-2") }); err != nil {
				t.Fatal(err)
			}
		}
		sites, err := s.Sites(ctx)
		if err != nil || len(sites) != 1 || sites[0].Name != "hall-2" || sites[0].Boards != 0 || sites[0].CreatedAt == "" ||
			sites[0].StartedAt < sites[0].CreatedAt {
			t.Errorf("sites %+v, %v; want hall-2 once, with its start times", sites, err)
		}
	})
}

// TestCountsPerSite: stream slots and the open deployments of one address are a
// site's: a site's hellos never count the deployments of another site, whose
// boards are on another network behind another server's link. The board lists,
// deployment lists and counts filter by site too.
func TestCountsPerSite(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		err := s.Update(ctx, func(tx *Tx) error {
			for i, site := range []string{"north", "north", "south"} {
				serial := fmt.Sprintf("%016x", i+1)
				if err := tx.SeeBoard(ctx, Board{Serial: serial, Site: site}); err != nil {
					return err
				}
				id, err := tx.AddDeployment(ctx, Deployment{Serial: serial, Venue: "CORO", Product: "RXP2", Hostname: serial,
					Image: "i", Phase: "hello", Site: site})
				if err != nil {
					return err
				}
				if err := tx.SetDeploymentClaim(ctx, id, "", "10.42.0.7"); err != nil {
					return err
				}
			}
			since := FormatTime(tx.Now.Add(-time.Minute))
			for _, tc := range []struct {
				site        string
				slots, from int
			}{{"north", 2, 2}, {"south", 1, 1}, {"east", 0, 0}} {
				slots, err := tx.CountSlots(ctx, tc.site, since, since, 10)
				if err != nil {
					return err
				}
				from, err := tx.CountOpenFromSource(ctx, tc.site, "10.42.0.7", 10)
				if err != nil {
					return err
				}
				if slots != tc.slots || from != tc.from {
					t.Errorf("site %s: %d slots, %d open from 10.42.0.7; want %d and %d", tc.site, slots, from, tc.slots, tc.from)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			site string
			n    int
		}{{"north", 2}, {"south", 1}, {"", 3}, {"east", 0}} {
			bs, err := s.Boards(ctx, BoardFilter{Site: tc.site})
			if err != nil {
				t.Fatal(err)
			}
			ds, err := s.Deployments(ctx, DeploymentFilter{Site: tc.site})
			if err != nil {
				t.Fatal(err)
			}
			counts, err := s.DeploymentCounts(ctx, tc.site)
			if err != nil {
				t.Fatal(err)
			}
			open := int64(0)
			for _, c := range counts {
				if c.State == DeployOpen {
					open = c.N
				}
			}
			if len(bs) != tc.n || len(ds) != tc.n || open != int64(tc.n) {
				t.Errorf("site %q: %d boards, %d deployments, %d counted open; want %d of each", tc.site, len(bs), len(ds), open, tc.n)
			}
		}
		sites, err := s.Sites(ctx)
		if err != nil || len(sites) != 2 || sites[0] != (Site{Name: "north", Boards: 2, Deployments: 2, Open: 2}) ||
			sites[1] != (Site{Name: "south", Boards: 1, Deployments: 1, Open: 1}) {
			t.Errorf("sites %+v, %v; want north 2/2/2 and south 1/1/1", sites, err)
		}
	})
}

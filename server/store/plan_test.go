package store

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestHelloReadsUseTheirIndexes pins SQLite's plans of the counts a hello reads:
// the open deployments from a source at a site through deployments_open_source
// (source, site), never deployments_site, which holds every deployment of the site
// (before migration 0037 the planner took it and read all of them: 55 000 rows per
// hello with per-source limits on); the board by its key; the open deployments
// outside any batch through deployments_unbatched (migration 0040); the serial
// name's check through boards_hostname; the stream slots through their
// partial indexes, without reading the table; the deployment list in the table's order, unsorted.
// PostgreSQL plans by its statistics.
func TestHelloReadsUseTheirIndexes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name, query string
		args        int
		want        []string
	}{
		{"CountOpenFromSource", `SELECT ` + openFromSourceSQL, 3, []string{"deployments_open_source (source=? AND site=?)"}},
		{"HelloFacts", helloFactsSQL, 6, []string{"deployments_open_source (source=? AND site=?)", "boards_hostname (hostname=?)",
			"sqlite_autoindex_boards_1 (serial=?)", "deployments_unbatched (state=?)"}},
		{"HelloBatches", helloBatchesSQL, 0, []string{"batches_state (state=?)", "sqlite_autoindex_products_1 (code=?)",
			"sqlite_autoindex_images_1 (name=?)"}},
		// Every hello checks its site's stream slots (once the open deployments
		// reach MaxStreams): the open deployments by start and by update time,
		// each a range of its partial index, which holds the site too (migration
		// 0039): no table row is read (before, each entry in the time range had
		// its row read for its site).
		{"CountSlots", slotsSQLite, 10, []string{"COVERING INDEX deployments_claims (site=? AND started_at>?)",
			"COVERING INDEX deployments_active (site=? AND updated_at>?)"}},
		// The list reads newest first, in the table's own order: no sort, and no
		// index on started_at needed for its time filters (migration 0038 dropped
		// deployments_started, which no plan used).
		{"Deployments", deploymentListSQL, 20, []string{"SCAN d\n", "sqlite_autoindex_boards_1 (serial=?)"}},
	} {
		rows, err := s.RDB.QueryContext(ctx, `EXPLAIN QUERY PLAN `+tc.query, make([]any, tc.args)...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		all := strings.Join(plan, "\n")
		for _, w := range tc.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: plan lacks %q:\n%s", tc.name, w, all)
			}
		}
		if (tc.name == "Deployments" || tc.name == "CountSlots") && strings.Contains(all, "TEMP B-TREE") {
			t.Errorf("%s: plan sorts:\n%s", tc.name, all)
		}
		if strings.Contains(all, "deployments_site") || strings.Contains(all, "SCAN deployments") {
			t.Errorf("%s: plan reads deployments by site or whole:\n%s", tc.name, all)
		}
	}
}

// TestHelloIndexWrites pins the indexes a new board's hello writes on SQLite: its
// board row (a new one, or last_seen of a stored one) and its deployment in a
// batch. Each index there is a b-tree insert in the writer for every hello, the
// largest part of the deployment's INSERT; migration 0040 dropped deployments_site
// and boards_site (the sites page's counts read every row either way) and replaced
// deployments_batch by deployments_unbatched, which holds only deployments outside
// any batch. A new index on either table has to be worth that.
func TestHelloIndexWrites(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := collect(ctx, s.r, func(r scanner) (string, error) {
		var tbl, name, sql string
		err := r.Scan(&tbl, &name, &sql)
		return tbl + " " + name + " partial=" + strconv.FormatBool(strings.Contains(sql, " WHERE ")), err
	}, `SELECT tbl_name, name, coalesce(sql, '') FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('boards', 'deployments')
		ORDER BY tbl_name, name`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"boards boards_hostname partial=false",
		"boards boards_mac partial=false",
		"boards sqlite_autoindex_boards_1 partial=false",
		"deployments deployments_active partial=true", // open and streamed: not at hello
		"deployments deployments_claims partial=true",
		"deployments deployments_one_open partial=true",
		"deployments deployments_open_source partial=true",
		"deployments deployments_serial partial=false",
		"deployments deployments_state_updated partial=false",
		"deployments deployments_unbatched partial=true", // outside any batch: not at a batch's hello
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("indexes of boards and deployments (-want +got):\n%s", diff)
	}
}

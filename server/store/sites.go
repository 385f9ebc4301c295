package store

import (
	"context"
	"fmt"
)

// DefaultSite is the site of rows written without one: those of the one server there
// was before sites (migration 0033), and of callers that name none.
const DefaultSite = "main"

// siteOr is site, or DefaultSite for "".
func siteOr(site string) string {
	if site == "" {
		return DefaultSite
	}
	return site
}

// Site is one site known to the database (rpi-deployd serve --site) with what it holds.
type Site struct {
	Name        string
	Boards      int64  // boards it saw last
	Deployments int64  // deployments that run or ran there
	Open        int64  // of them, open now
	CreatedAt   string // first start of a server of the site; "" for a site known only from rows
	StartedAt   string // latest start; "" likewise
}

// SeeSite records that a server of site started now.
func (t *Tx) SeeSite(ctx context.Context, site string) error {
	now := t.nowText()
	_, err := t.tx.ExecContext(ctx, `INSERT INTO sites (name, created_at, started_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at`, site, now, now)
	if err != nil {
		return fmt.Errorf("record site %q: %w", site, err)
	}
	return nil
}

// Sites lists every site that a server started as, or that a board or deployment
// names, by name, with its counts.
func (s *Store) Sites(ctx context.Context) ([]Site, error) {
	return collect(ctx, s.r, func(r scanner) (Site, error) {
		var x Site
		err := r.Scan(&x.Name, &x.Boards, &x.Deployments, &x.Open, &x.CreatedAt, &x.StartedAt)
		return x, err
	}, `SELECT name, max(boards), max(deployments), max(open), max(created_at), max(started_at) FROM (
		SELECT name, 0 AS boards, 0 AS deployments, 0 AS open, created_at, started_at FROM sites
		UNION ALL SELECT site, count(*), 0, 0, '', '' FROM boards GROUP BY site
		UNION ALL SELECT site, 0, count(*), 0, '', '' FROM deployments GROUP BY site
		UNION ALL SELECT site, 0, 0, count(*), '', '' FROM deployments WHERE state = 'open' GROUP BY site
	) AS known GROUP BY name ORDER BY name`)
}

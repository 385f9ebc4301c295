package store

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCountSlots: one count of a site's stream slots (what every hello runs
// once the open deployments reach --max-streams) with 60 000 open deployments, half
// of them streaming, all holding a slot, limit 100 000: through the partial
// indexes of migration 0039 (site first, covering the count) and, in the same run,
// through those of 0030 (the time alone: each entry's row read for its site).
func BenchmarkCountSlots(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := FormatTime(time.Now())
	const series = `WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 60000) `
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{series + `INSERT INTO boards (serial, mac, first_seen, last_seen) SELECT printf('5eed%012x', x), '2c:cf:67:00:00:00', ?, ? FROM n`,
			[]any{now, now}},
		{series + `INSERT INTO deployments (serial, venue, product, hostname, image, state, phase, total, started_at, updated_at,
			streamed_at, source) SELECT printf('5eed%012x', x), 'SEED', 'RXP2', printf('RXP2-SEED-%08X', x), 'bench', 'open',
			'hello', 1, ?, ?, CASE x % 2 WHEN 0 THEN ? END, '10.0.0.1' FROM n`, []any{now, now, now}},
	} {
		if _, err := s.DB.ExecContext(ctx, q.sql, q.args...); err != nil {
			b.Fatal(err)
		}
	}
	since := FormatTime(time.Now().Add(-time.Hour))
	count := func(b *testing.B) {
		for b.Loop() {
			err := s.Update(ctx, func(tx *Tx) error {
				n, err := tx.CountSlots(ctx, DefaultSite, since, since, 100000)
				if err == nil && n != 60000 {
					b.Fatalf("counted %d slots, want 60000", n)
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("0039", count)
	for _, q := range []string{`DROP INDEX deployments_claims`, `DROP INDEX deployments_active`,
		`CREATE INDEX deployments_claims ON deployments (started_at) WHERE state = 'open' AND streamed_at IS NULL`,
		`CREATE INDEX deployments_active ON deployments (updated_at) WHERE state = 'open' AND streamed_at IS NOT NULL`} {
		if _, err := s.DB.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("0030", count)
}

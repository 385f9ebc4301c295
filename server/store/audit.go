package store

import "context"

// AuditEntry is one operator action.
type AuditEntry struct {
	ID     int64
	At     string
	Actor  string // "token", "user:NAME", "cli"
	Action string
	Object string
	Detail string
}

// Audit appends to the audit log.
func (t *Tx) Audit(ctx context.Context, actor, action, object, detail string) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO audit (at, actor, action, object, detail) VALUES (?, ?, ?, ?, ?)`,
		t.nowText(), actor, action, object, detail)
	return err
}

// AuditFilter selects audit entries; empty fields match all.
type AuditFilter struct {
	Actor  string // exact
	Action string // prefix, e.g. "batch." or "batch.add"
	Object string // exact
	Limit  int    // 0 = 500
}

// AuditLog returns the newest entries first.
func (s *Store) AuditLog(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	return collect(ctx, s.r, func(r scanner) (AuditEntry, error) {
		var a AuditEntry
		err := r.Scan(&a.ID, &a.At, &a.Actor, &a.Action, &a.Object, &a.Detail)
		return a, err
	}, `SELECT id, at, actor, action, object, detail FROM audit WHERE (? = '' OR actor = ?)
		AND (? = '' OR substr(action, 1, length(?)) = ?) AND (? = '' OR object = ?) ORDER BY id DESC LIMIT ?`,
		f.Actor, f.Actor, f.Action, f.Action, f.Action, f.Object, f.Object, limit)
}

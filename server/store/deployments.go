package store

import (
	"context"
	"fmt"
)

// Deployment states.
const (
	DeployOpen      = "open"      // allocated; the agent is working
	DeployVerified  = "verified"  // terminal: the card was read back and matched
	DeployFailed    = "failed"    // terminal: the agent reported a failure
	DeployAbandoned = "abandoned" // terminal: closed by an operator or superseded
)

// Deployment is one board's assignment and its progress.
type Deployment struct {
	ID           int64
	Serial       string
	MAC          string // the board's, joined in
	BatchID      int64
	Venue        string
	Product      string
	Hostname     string
	Image        string
	State        string
	Phase        string
	Bytes        int64
	Total        int64
	RateBps      float64
	Message      string
	Error        string
	ErrorPhase   string
	SHA256       string
	BytesWritten int64
	BytesFetched int64
	DurationMS   int64
	StartedAt    string
	UpdatedAt    string
	FinishedAt   string
	Site         string // the site it runs (ran) at: the one its board said hello to last
}

const deploymentCols = `d.id, d.serial, coalesce(bo.mac, ''), coalesce(d.batch_id, 0), d.venue, d.product, d.hostname, d.image,
	d.state, d.phase, d.bytes, d.total, d.rate_bps, d.message, d.error, d.error_phase, d.sha256, d.bytes_written,
	d.bytes_fetched, d.duration_ms, d.started_at, d.updated_at, coalesce(d.finished_at, ''), d.site`

const deploymentFrom = ` FROM deployments d LEFT JOIN boards bo ON bo.serial = d.serial`

func scanDeployment(r scanner) (Deployment, error) {
	var d Deployment
	err := r.Scan(&d.ID, &d.Serial, &d.MAC, &d.BatchID, &d.Venue, &d.Product, &d.Hostname, &d.Image, &d.State, &d.Phase,
		&d.Bytes, &d.Total, &d.RateBps, &d.Message, &d.Error, &d.ErrorPhase, &d.SHA256, &d.BytesWritten, &d.BytesFetched,
		&d.DurationMS, &d.StartedAt, &d.UpdatedAt, &d.FinishedAt, &d.Site)
	return d, err
}

// DeploymentFilter selects deployments; zero fields match all.
type DeploymentFilter struct {
	State   string // open, verified, failed, abandoned
	Venue   string
	Product string
	BatchID int64
	Serial  string
	Search  string // substring of hostname or serial
	Since   string // started at or after (RFC 3339)
	Until   string // started before (RFC 3339)
	Site    string // runs (ran) at this site
	Limit   int    // 0 = 1000
}

// Deployments lists deployments, newest first.
func (s *Store) Deployments(ctx context.Context, f DeploymentFilter) ([]Deployment, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	like := "%" + f.Search + "%"
	return collect(ctx, s.r, scanDeployment, deploymentListSQL,
		f.State, f.State, f.Venue, f.Venue, f.Product, f.Product, f.BatchID, f.BatchID, f.Serial, f.Serial,
		f.Search, like, like, f.Since, f.Since, f.Until, f.Until, f.Site, f.Site, f.Limit)
}

// deploymentListSQL is Deployments' query: SQLite reads the table newest first
// (ORDER BY id DESC LIMIT), no index (each filter is a term that holds when its
// argument is empty, which no index can serve).
const deploymentListSQL = `SELECT ` + deploymentCols + deploymentFrom + ` WHERE
		(? = '' OR d.state = ?) AND (? = '' OR d.venue = ?) AND (? = '' OR d.product = ?) AND (? = 0 OR d.batch_id = ?)
		AND (? = '' OR d.serial = ?) AND (? = '' OR lower(d.hostname) LIKE lower(?) OR lower(d.serial) LIKE lower(?))
		AND (? = '' OR d.started_at >= ?) AND (? = '' OR d.started_at < ?) AND (? = '' OR d.site = ?)
		ORDER BY d.id DESC LIMIT ?`

// Deployment returns one deployment.
func (s *Store) Deployment(ctx context.Context, id int64) (Deployment, error) {
	return one(ctx, s.r, scanDeployment, `SELECT `+deploymentCols+deploymentFrom+` WHERE d.id = ?`, id)
}

// Deployment returns one deployment inside the transaction.
func (t *Tx) Deployment(ctx context.Context, id int64) (Deployment, error) {
	return one(ctx, t.tx, scanDeployment, `SELECT `+deploymentCols+deploymentFrom+` WHERE d.id = ?`, id)
}

// OpenDeployment returns the board's open deployment, or ErrNotFound.
func (t *Tx) OpenDeployment(ctx context.Context, serial string) (Deployment, error) {
	return one(ctx, t.tx, scanDeployment, `SELECT `+deploymentCols+deploymentFrom+` WHERE d.serial = ? AND d.state = 'open'`, serial)
}

// LastDeployment returns the board's most recent deployment, or ErrNotFound.
func (t *Tx) LastDeployment(ctx context.Context, serial string) (Deployment, error) {
	return one(ctx, t.tx, scanDeployment, `SELECT `+deploymentCols+deploymentFrom+` WHERE d.serial = ? ORDER BY d.id DESC LIMIT 1`, serial)
}

// SilentDeployments lists open deployments last updated before before.
func (t *Tx) SilentDeployments(ctx context.Context, before string) ([]Deployment, error) {
	return collect(ctx, t.tx, scanDeployment, `SELECT `+deploymentCols+deploymentFrom+` WHERE d.state = 'open' AND d.updated_at < ?`, before)
}

// OpenDeploymentsNamed counts open deployments under hostname.
func (t *Tx) OpenDeploymentsNamed(ctx context.Context, hostname string) (int, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM deployments WHERE state = 'open' AND hostname = ?`, hostname).Scan(&n)
	return n, err
}

// CountOpen counts open deployments updated at or after since (RFC 3339; "" = all),
// up to limit: it never reads more than limit rows.
func (t *Tx) CountOpen(ctx context.Context, since string, limit int) (int, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM deployments WHERE state = 'open' AND updated_at >= ? LIMIT ?) AS o`,
		since, limit).Scan(&n)
	return n, err
}

// AddDeployment inserts an open deployment in phase hello at site d.Site ("" =
// DefaultSite) and returns its ID; its first phase is recorded at the commit.
func (t *Tx) AddDeployment(ctx context.Context, d Deployment) (int64, error) {
	d, err := t.AddClaimedDeployment(ctx, d, "", "")
	return d.ID, err
}

// AddClaimedDeployment is AddDeployment that also records the SHA-256 (hex) of the
// deployment's secret and the address its hello came from (SetDeploymentClaim) in
// the same INSERT. It returns the deployment as stored, made from d and what the
// INSERT wrote rather than read back: ID, state open, started and updated now, the
// counters zero, its site. MAC (the board's, joined in on reads) is d.MAC as given.
// Its first phase (d.Phase) goes into its phase history at the commit (later.go).
func (t *Tx) AddClaimedDeployment(ctx context.Context, d Deployment, secretSHA256, source string) (Deployment, error) {
	now := t.nowText()
	var batch any
	if d.BatchID != 0 {
		batch = d.BatchID
	}
	d.Site = siteOr(d.Site)
	id, err := t.insert(ctx, addDeploymentSQL, d.Serial, batch, d.Venue, d.Product, d.Hostname, d.Image, d.Phase, d.Total, now, now, d.Site, secretSHA256, source)
	if isUnique(err) {
		return Deployment{}, fmt.Errorf("board %q already has an open deployment: %w", d.Serial, ErrConflict)
	}
	if err != nil {
		return Deployment{}, err
	}
	t.g.slotClaimed(d.Site, now) // in the slots SlotsFull keeps for the group (shared.go)
	if d.BatchID != 0 {
		if _, err := t.tx.ExecContext(ctx, `UPDATE batches SET in_progress = in_progress + 1 WHERE id = ?`, d.BatchID); err != nil {
			return Deployment{}, err
		}
		t.g.countDeployment(d.BatchID) // in what HelloBatches keeps for the group (shared.go)
	}
	stored := Deployment{ID: id, Serial: d.Serial, MAC: d.MAC, BatchID: d.BatchID, Venue: d.Venue, Product: d.Product,
		Hostname: d.Hostname, Image: d.Image, State: DeployOpen, Phase: d.Phase, Total: d.Total, StartedAt: now,
		UpdatedAt: now, Site: d.Site}
	t.addPhaseAtCommit(id, d.Phase) // its first phase, written at the group's commit (later.go)
	return stored, nil
}

// addDeploymentSQL is AddClaimedDeployment's INSERT.
const addDeploymentSQL = `INSERT INTO deployments (serial, batch_id, venue, product, hostname, image, state, phase,
		total, started_at, updated_at, site, secret_sha256, source) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?)`

// AddPhase records that a deployment entered a phase.
func (t *Tx) AddPhase(ctx context.Context, id int64, phase string, bytes int64, message string) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO deployment_phases (deployment_id, phase, at, bytes, message) VALUES (?, ?, ?, ?, ?)`,
		id, phase, t.nowText(), bytes, message)
	return err
}

// Progress updates an open deployment's phase and counters.
func (t *Tx) Progress(ctx context.Context, id int64, phase string, bytes, total int64, rate float64, message string) error {
	now := t.nowText()
	t.g.slotTouched(now, false) // shared.go
	_, err := t.tx.ExecContext(ctx, `UPDATE deployments SET phase = ?, bytes = ?, total = ?, rate_bps = ?, message = ?, updated_at = ?
		WHERE id = ?`, phase, bytes, total, rate, message, now, id)
	return err
}

// Touch marks an open deployment as active now (a hello re-sent), at site: a board
// that says hello again at another site's server now runs there.
func (t *Tx) Touch(ctx context.Context, id int64, site string) error {
	now := t.nowText()
	t.g.slotTouched(now, true) // shared.go
	_, err := t.tx.ExecContext(ctx, `UPDATE deployments SET updated_at = ?, site = ? WHERE id = ?`, now, siteOr(site), id)
	return err
}

// Finish closes an open deployment with its final state and result fields, and
// updates its batch's counters.
func (t *Tx) Finish(ctx context.Context, d Deployment) error {
	t.batchesChanged() // what HelloBatches keeps for the group (shared.go)
	t.g.slotFreed()    // and SlotsFull
	now := t.nowText()
	if d.BatchID != 0 {
		failed := 0
		if d.State == DeployFailed {
			failed = 1
		}
		if _, err := t.tx.ExecContext(ctx, `UPDATE batches SET in_progress = in_progress - 1, failed = failed + ? WHERE id = ?`,
			failed, d.BatchID); err != nil {
			return err
		}
	}
	_, err := t.tx.ExecContext(ctx, `UPDATE deployments SET state = ?, phase = ?, error = ?, error_phase = ?, sha256 = ?,
		bytes_written = ?, bytes_fetched = ?, duration_ms = ?, updated_at = ?, finished_at = ? WHERE id = ?`,
		d.State, d.Phase, d.Error, d.ErrorPhase, d.SHA256, d.BytesWritten, d.BytesFetched, d.DurationMS, now, now, d.ID)
	if err != nil {
		return err
	}
	return t.AddPhase(ctx, d.ID, d.Phase, d.BytesWritten, d.Error)
}

// Phase is one recorded phase change.
type Phase struct {
	Phase   string
	At      string
	Bytes   int64
	Message string
}

// Phases returns a deployment's phase history, oldest first.
func (s *Store) Phases(ctx context.Context, id int64) ([]Phase, error) {
	return collect(ctx, s.r, func(r scanner) (Phase, error) {
		var p Phase
		err := r.Scan(&p.Phase, &p.At, &p.Bytes, &p.Message)
		return p, err
	}, `SELECT phase, at, bytes, message FROM deployment_phases WHERE deployment_id = ? ORDER BY rowid`, id)
}

// StateCount is how many deployments are in one state.
type StateCount struct {
	State string
	N     int64
}

// DeploymentCounts counts deployments by state, of one site ("" = all).
func (s *Store) DeploymentCounts(ctx context.Context, site string) ([]StateCount, error) {
	return collect(ctx, s.r, func(r scanner) (StateCount, error) {
		var c StateCount
		err := r.Scan(&c.State, &c.N)
		return c, err
	}, `SELECT state, count(*) FROM deployments WHERE ? = '' OR site = ? GROUP BY state ORDER BY state`, site, site)
}

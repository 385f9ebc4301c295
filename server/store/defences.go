package store

import (
	"context"
	"database/sql"
	"errors"
)

// Deployment secrets, sources, stream claims and retention (migration 0020).

// SetDeploymentClaim records the SHA-256 (hex) of a deployment's secret and the
// address its hello came from.
func (t *Tx) SetDeploymentClaim(ctx context.Context, id int64, secretSHA256, source string) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE deployments SET secret_sha256 = ?, source = ? WHERE id = ?`, secretSHA256, source, id)
	return err
}

// SetDeploymentSecret replaces the SHA-256 (hex) of a deployment's secret.
func (t *Tx) SetDeploymentSecret(ctx context.Context, id int64, secretSHA256 string) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE deployments SET secret_sha256 = ? WHERE id = ?`, secretSHA256, id)
	return err
}

// SetPeerBytes records that a deployment's board has received n compressed image
// bytes from other boards in all; a smaller count than the one stored is ignored
// (announces may arrive out of order).
func (t *Tx) SetPeerBytes(ctx context.Context, id, n int64) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE deployments SET peer_bytes = ? WHERE id = ? AND peer_bytes < ?`, n, id, n)
	return err
}

// DeploymentSecret returns the SHA-256 (hex) of a deployment's secret ("" when it has
// none) and how many image bytes its board received: those served for its secret
// plus those it reported from other boards (SetPeerBytes).
func (t *Tx) DeploymentSecret(ctx context.Context, id int64) (secretSHA256 string, received int64, err error) {
	err = t.tx.QueryRowContext(ctx, `SELECT secret_sha256, served + peer_bytes FROM deployments WHERE id = ?`, id).Scan(&secretSHA256, &received)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, ErrNotFound
	}
	return secretSHA256, received, err
}

// AddServed counts n more image bytes served for a deployment.
func (t *Tx) AddServed(ctx context.Context, id, n int64) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE deployments SET served = served + ? WHERE id = ?`, n, id)
	return err
}

// OpenDeploymentSecret returns the SHA-256 (hex) of open deployment id's secret,
// read on the reader pool; ErrNotFound when no deployment with that ID is open.
// The secret is checked against the row its ID finds: no index of secrets is kept.
func (s *Store) OpenDeploymentSecret(ctx context.Context, id int64) (string, error) {
	var hash string
	err := s.r.QueryRowContext(ctx, `SELECT secret_sha256 FROM deployments WHERE id = ? AND state = 'open'`, id).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return hash, err
}

// MarkStreamed records that the board fetched image bytes for an open deployment
// (the first time only) and that it is active now. It reports whether the
// deployment is still open.
func (t *Tx) MarkStreamed(ctx context.Context, id int64) (bool, error) {
	now := t.nowText()
	t.g.slotTouched(now, false) // shared.go
	res, err := t.tx.ExecContext(ctx, `UPDATE deployments SET streamed_at = coalesce(streamed_at, ?), updated_at = ?
		WHERE id = ? AND state = 'open'`, now, now, id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// slotsQuery is the query of a site's stream slots (CountSlots, SlotsFull): how
// many open deployments of the site hold a claim (never fetched their image, said
// hello at or after the first argument) and how many an active slot (fetched it,
// active at or after the fourth), each up to a limit, and the earliest hello time
// and activity time among them ("" when none). Each part is a range of its partial
// index (migrations 0030, 0039): the counts read up to limit entries each, the
// earliest times one entry each. SQLite is told which partial index to read
// (INDEXED BY); PostgreSQL, which has no such clause, picks the same partial
// indexes by their WHERE (the migrations create both).
func slotsQuery(claims, active string) string {
	const (
		claimsWhere = ` WHERE state = 'open' AND streamed_at IS NULL AND started_at >= ? AND site = ?`
		activeWhere = ` WHERE state = 'open' AND streamed_at IS NOT NULL AND updated_at >= ? AND site = ?`
	)
	return `SELECT
		(SELECT count(*) FROM (SELECT 1 FROM ` + claims + claimsWhere + ` LIMIT ?) AS c),
		(SELECT count(*) FROM (SELECT 1 FROM ` + active + activeWhere + ` LIMIT ?) AS a),
		coalesce((SELECT started_at FROM ` + claims + claimsWhere + ` ORDER BY started_at LIMIT 1), ''),
		coalesce((SELECT updated_at FROM ` + active + activeWhere + ` ORDER BY updated_at LIMIT 1), '')`
}

var (
	slotsSQLite   = slotsQuery(`deployments INDEXED BY deployments_claims`, `deployments INDEXED BY deployments_active`)
	slotsPostgres = slotsQuery(`deployments`, `deployments`)
)

// readSlots runs slotsQuery for site, claimSince, activeSince and limit.
func (t *Tx) readSlots(ctx context.Context, site, claimSince, activeSince string, limit int) (slotCount, error) {
	c := slotCount{site: site, limit: limit, claimSince: claimSince, activeSince: activeSince}
	var claims, active int
	err := t.tx.QueryRowContext(ctx, t.d.pick(slotsSQLite, slotsPostgres), claimSince, site, limit, activeSince, site, limit,
		claimSince, site, activeSince, site).Scan(&claims, &active, &c.oldestClaim, &c.oldestActive)
	c.lower, c.upper = claims+active, claims+active
	if claims >= limit || active >= limit {
		c.upper = -1 // at least limit: how many more, not read
	}
	return c, err
}

// CountSlots counts the open deployments of site that hold a stream slot, up to
// limit: those that never fetched their image and said hello at or after
// claimSince, and those that fetched it and were active at or after activeSince.
// Each kind is a range of its own partial index (migration 0030), so it reads none
// of the deployments whose slot has lapsed. Slots are a site's: its server's link is
// what they share, so other sites' deployments do not count. It always reads;
// SlotsFull is what a hello asks.
func (t *Tx) CountSlots(ctx context.Context, site, claimSince, activeSince string, limit int) (int, error) {
	c, err := t.readSlots(ctx, site, claimSince, activeSince, limit)
	return min(c.lower, limit), err
}

// SlotsFull is whether CountSlots(site, claimSince, activeSince, limit) would
// reach limit, as the transaction stands. The first function of a writer group
// that asks counts; the functions after it in the group are answered from what
// it counted and what the group wrote since, and count again only when that
// cannot decide (shared.go).
func (t *Tx) SlotsFull(ctx context.Context, site, claimSince, activeSince string, limit int) (bool, error) {
	if full, ok := t.g.slotsFull(site, claimSince, activeSince, limit); ok {
		return full, nil
	}
	c, err := t.readSlots(ctx, site, claimSince, activeSince, limit)
	if err != nil {
		return false, err
	}
	t.g.keepSlots(c)
	return c.lower >= limit, nil
}

// CountOpenAll is the number of open deployments, read from what is kept counted
// rather than by counting them: the batches' in_progress counters (migration
// 0003, kept by AddDeployment and Finish) and the open deployments outside any
// batch (re-images, few; a range of the deployments_batch index).
func (t *Tx) CountOpenAll(ctx context.Context) (int, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT `+openAllSQL).Scan(&n)
	return n, err
}

const openAllSQL = `coalesce((SELECT sum(in_progress) FROM batches), 0) +
	(SELECT count(*) FROM deployments WHERE batch_id IS NULL AND state = 'open')`

// CountOpenFromSource counts the open deployments of site whose hello came from
// source, up to limit. An address is one host of one site's deploy network only:
// the same address at another site is another host.
func (t *Tx) CountOpenFromSource(ctx context.Context, site, source string, limit int) (int, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT `+openFromSourceSQL, source, site, limit).Scan(&n)
	return n, err
}

const openFromSourceSQL = `(SELECT count(*) FROM (SELECT 1 FROM deployments WHERE state = 'open' AND source = ? AND site = ?
	LIMIT ?) AS o)`

const helloFactsSQL = `SELECT b.serial, coalesce(b.mac, ''), coalesce(b.model, ''), coalesce(b.revision, ''),
	coalesce(b.ip, ''), coalesce(b.hostname, ''), coalesce(b.image, ''), coalesce(b.deployed, 0), coalesce(b.reimage, 0),
	coalesce(b.last_event, ''), coalesce(b.first_seen, ''), coalesce(b.last_seen, ''), coalesce(b.site, ''),
	` + openFromSourceSQL + `, ` + openAllSQL + `, EXISTS (SELECT 1 FROM profile_links),
	EXISTS (SELECT 1 FROM boards WHERE hostname = ? AND serial != ?)
	FROM (SELECT 1 AS one) AS x LEFT JOIN boards b ON b.serial = ?`

// HelloFacts is what a hello's transaction reads before it decides, in one query.
type HelloFacts struct {
	Board Board // the stored board; only Serial is set when it is not stored (Known false)
	Known bool
	// OpenFromSource is CountOpenFromSource of the hello's site and source up to
	// the limit asked for (0 when none is asked for).
	OpenFromSource int
	OpenAll        int // CountOpenAll
	// Profiles is whether any profile is attached to anything (profile_links has
	// a row): when none is, no new deployment gets one, and LinkedProfiles need
	// not be asked.
	Profiles bool
	// NameTaken is HostnameTaken of the name asked for and the hello's serial:
	// whether a board other than the hello's holds that name (false when no name
	// is asked for).
	NameTaken bool
}

// HelloFacts reads the board serial, CountOpenFromSource(site, source,
// sourceLimit) (site "" = DefaultSite; not counted when source is "" or
// sourceLimit ≤ 0), CountOpenAll, whether any profile is attached and
// HostnameTaken(name, serial) (when name is not "": the name the hello expects to
// give the board) in one query: a statement costs the writer more than the reads
// in it.
func (t *Tx) HelloFacts(ctx context.Context, serial, site, source string, sourceLimit int, name string) (HelloFacts, error) {
	if source == "" || sourceLimit < 0 {
		sourceLimit = 0
	}
	f := HelloFacts{Board: Board{Serial: serial}}
	b := &f.Board
	var stored sql.NullString
	err := t.tx.QueryRowContext(ctx, helloFactsSQL, source, siteOr(site), sourceLimit, name, serial, serial).Scan(
		&stored, &b.MAC, &b.Model, &b.Revision, &b.IP, &b.Hostname, &b.Image, &b.Deployed, &b.Reimage, &b.LastEvent,
		&b.FirstSeen, &b.LastSeen, &b.Site, &f.OpenFromSource, &f.OpenAll, &f.Profiles, &f.NameTaken)
	f.Known, f.NameTaken = stored.Valid, f.NameTaken && name != ""
	return f, err
}

// UnstreamedDeployments lists open deployments that never fetched their image and
// said hello before before.
func (t *Tx) UnstreamedDeployments(ctx context.Context, before string) ([]Deployment, error) {
	return collect(ctx, t.tx, scanDeployment, `SELECT `+deploymentCols+deploymentFrom+`
		WHERE d.state = 'open' AND d.streamed_at IS NULL AND d.started_at < ?`, before)
}

// VerifiedUnder reports whether the board ever had a verified deployment under hostname.
func (t *Tx) VerifiedUnder(ctx context.Context, serial, hostname string) (bool, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM deployments WHERE serial = ? AND hostname = ? AND state = 'verified'`,
		serial, hostname).Scan(&n)
	return n > 0, err
}

// HostnameTaken reports whether a board other than serial holds hostname.
func (t *Tx) HostnameTaken(ctx context.Context, hostname, serial string) (bool, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM boards WHERE hostname = ? AND serial != ?`, hostname, serial).Scan(&n)
	return n > 0, err
}

// CountPhases counts a deployment's recorded phase changes.
func (t *Tx) CountPhases(ctx context.Context, id int64) (int, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM deployment_phases WHERE deployment_id = ?`, id).Scan(&n)
	return n, err
}

// ReleasableNames lists the bound names of a pool (venue and product; "" = all)
// that no card can carry: bound by a deployment (imported bindings of boards flashed
// elsewhere are kept), whose board has no open deployment, and every deployment of
// the board under that name either reported a failure (the agent never leaves a
// failed card bootable) or never fetched a byte of its image. Names of deployments
// abandoned after they streamed are kept: the board may have booted its card and
// lost only its result.
func (t *Tx) ReleasableNames(ctx context.Context, venue, product string) ([]PoolName, error) {
	return collect(ctx, t.tx, scanPool, `SELECT `+poolCols+` FROM pool_names p
		WHERE p.serial IS NOT NULL AND (? = '' OR p.venue = ?) AND (? = '' OR p.product = ?)
		AND EXISTS (SELECT 1 FROM deployments d WHERE d.serial = p.serial AND d.hostname = p.name)
		AND NOT EXISTS (SELECT 1 FROM deployments d WHERE d.serial = p.serial AND d.state = 'open')
		AND NOT EXISTS (SELECT 1 FROM deployments d WHERE d.serial = p.serial AND d.hostname = p.name
			AND NOT ((d.state = 'failed' AND d.sha256 = '') OR d.streamed_at IS NULL))
		ORDER BY p.venue, p.product, p.seq`, venue, venue, product, product)
}

// PurgeSessions deletes the sessions that expired before now and returns how many.
func (t *Tx) PurgeSessions(ctx context.Context) (int64, error) {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, t.nowText())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// CapBoardEvents keeps the newest keep events of every board (by serial, and for
// events without a serial, by MAC) and deletes older ones; it returns how many.
func (t *Tx) CapBoardEvents(ctx context.Context, keep int) (int64, error) {
	var total int64
	for _, col := range []string{"serial", "mac"} {
		other := "mac"
		if col == "mac" {
			other = "serial"
		}
		// The keys over the cap, then per key everything older than its keep-th newest.
		keys, err := collect(ctx, t.tx, func(r scanner) (string, error) {
			var k string
			err := r.Scan(&k)
			return k, err
		}, `SELECT `+col+` FROM board_events WHERE `+col+` != '' AND (? = 'serial' OR `+other+` = '')
			GROUP BY `+col+` HAVING count(*) > ?`, col, keep)
		if err != nil {
			return total, err
		}
		for _, k := range keys {
			res, err := t.tx.ExecContext(ctx, `DELETE FROM board_events WHERE `+col+` = ? AND (? = 'serial' OR `+other+` = '')
				AND id <= (SELECT id FROM board_events WHERE `+col+` = ? AND (? = 'serial' OR `+other+` = '')
				ORDER BY id DESC LIMIT 1 OFFSET ?)`, k, col, k, col, keep)
			if err != nil {
				return total, err
			}
			n, _ := res.RowsAffected()
			total += n
		}
	}
	return total, nil
}

// ForgetIdleBoards deletes boards last seen before before that never had a
// deployment and hold no name (random serials of a hello flood), with their events.
// It returns how many boards it deleted.
func (t *Tx) ForgetIdleBoards(ctx context.Context, before string) (int64, error) {
	const idle = `SELECT serial FROM boards b WHERE b.last_seen < ? AND b.hostname = '' AND b.deployed = 0
		AND NOT EXISTS (SELECT 1 FROM deployments d WHERE d.serial = b.serial)
		AND NOT EXISTS (SELECT 1 FROM pool_names p WHERE p.serial = b.serial)`
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM board_events WHERE serial IN (`+idle+`)`, before); err != nil {
		return 0, err
	}
	res, err := t.tx.ExecContext(ctx, `DELETE FROM boards WHERE serial IN (`+idle+`)`, before)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

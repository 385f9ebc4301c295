package store

import (
	"context"
)

// Board is a Raspberry Pi the server has heard of, by serial.
type Board struct {
	Serial    string // 16 lower-case hex digits
	MAC       string
	Model     string
	Revision  string
	IP        string
	Hostname  string
	Image     string // image of the last verified deployment
	Deployed  bool   // its card holds a verified image
	Reimage   bool   // re-image on next boot
	LastEvent string
	FirstSeen string
	LastSeen  string
	Site      string // the site (rpi-deployd --site) that last saw it
}

const boardCols = `serial, mac, model, revision, ip, hostname, image, deployed, reimage, last_event, first_seen, last_seen, site`

func scanBoard(r scanner) (Board, error) {
	var b Board
	err := r.Scan(&b.Serial, &b.MAC, &b.Model, &b.Revision, &b.IP, &b.Hostname, &b.Image, &b.Deployed, &b.Reimage,
		&b.LastEvent, &b.FirstSeen, &b.LastSeen, &b.Site)
	return b, err
}

// BoardFilter selects boards; empty fields match all.
type BoardFilter struct {
	Search string // substring of serial, MAC or hostname
	Site   string // the site that last saw it
	Limit  int    // 0 = 1000
}

// Boards lists boards, most recently seen first.
func (s *Store) Boards(ctx context.Context, f BoardFilter) ([]Board, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	like := "%" + f.Search + "%"
	return collect(ctx, s.r, scanBoard, `SELECT `+boardCols+` FROM boards
		WHERE (? = '' OR lower(serial) LIKE lower(?) OR lower(mac) LIKE lower(?) OR lower(hostname) LIKE lower(?))
		AND (? = '' OR site = ?)
		ORDER BY last_seen DESC LIMIT ?`,
		f.Search, like, like, like, f.Site, f.Site, f.Limit)
}

// Board returns one board by serial.
func (s *Store) Board(ctx context.Context, serial string) (Board, error) {
	return one(ctx, s.r, scanBoard, `SELECT `+boardCols+` FROM boards WHERE serial = ?`, serial)
}

// Board returns one board inside the transaction.
func (t *Tx) Board(ctx context.Context, serial string) (Board, error) {
	return one(ctx, t.tx, scanBoard, `SELECT `+boardCols+` FROM boards WHERE serial = ?`, serial)
}

// BoardByMAC returns the most recently seen board with that MAC.
func (t *Tx) BoardByMAC(ctx context.Context, mac string) (Board, error) {
	return one(ctx, t.tx, scanBoard, `SELECT `+boardCols+` FROM boards WHERE mac = ? ORDER BY last_seen DESC LIMIT 1`, mac)
}

// SeeBoard records that a board was seen at site b.Site ("" = DefaultSite): creates
// it, or updates MAC, model, revision and IP (non-empty values only), last_seen and
// its site (the site that saw it last). Its serial, hostname and history stay
// whatever the site.
func (t *Tx) SeeBoard(ctx context.Context, b Board) error {
	now := t.nowText()
	_, err := t.tx.ExecContext(ctx, `INSERT INTO boards (serial, mac, model, revision, ip, last_event, first_seen, last_seen, site)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (serial) DO UPDATE SET
		mac = CASE WHEN excluded.mac != '' THEN excluded.mac ELSE boards.mac END,
		model = CASE WHEN excluded.model != '' THEN excluded.model ELSE boards.model END,
		revision = CASE WHEN excluded.revision != '' THEN excluded.revision ELSE boards.revision END,
		ip = CASE WHEN excluded.ip != '' THEN excluded.ip ELSE boards.ip END,
		last_event = CASE WHEN excluded.last_event != '' THEN excluded.last_event ELSE boards.last_event END,
		last_seen = excluded.last_seen, site = excluded.site`,
		b.Serial, b.MAC, b.Model, b.Revision, b.IP, b.LastEvent, now, now, siteOr(b.Site))
	return err
}

// SaveBoard writes b as its board's row in one statement and returns it as
// stored: last_seen now, first_seen b.FirstSeen (now when empty; a stored board
// keeps its own), site b.Site ("" = DefaultSite). A new board is inserted; a stored
// one gets every other field of b. It is for a caller that read the board in the
// same transaction (Tx.Board) and changed it: the hello reads its board once,
// decides, and writes it once.
func (t *Tx) SaveBoard(ctx context.Context, b Board) (Board, error) {
	now := t.nowText()
	if b.FirstSeen == "" {
		b.FirstSeen = now
	}
	b.LastSeen, b.Site = now, siteOr(b.Site)
	_, err := t.tx.ExecContext(ctx, `INSERT INTO boards (serial, mac, model, revision, ip, hostname, image, deployed, reimage,
		last_event, first_seen, last_seen, site) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (serial) DO UPDATE SET mac = excluded.mac, model = excluded.model, revision = excluded.revision,
		ip = excluded.ip, hostname = excluded.hostname, image = excluded.image, deployed = excluded.deployed,
		reimage = excluded.reimage, last_event = excluded.last_event, last_seen = excluded.last_seen, site = excluded.site`,
		b.Serial, b.MAC, b.Model, b.Revision, b.IP, b.Hostname, b.Image, b.Deployed, b.Reimage, b.LastEvent, b.FirstSeen,
		b.LastSeen, b.Site)
	return b, err
}

// SetBoardHostname records the hostname a board holds.
func (t *Tx) SetBoardHostname(ctx context.Context, serial, hostname string) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE boards SET hostname = ? WHERE serial = ?`, hostname, serial)
	return err
}

// SetBoardDeployed records a verified deployment on the board and clears its re-image flag.
func (t *Tx) SetBoardDeployed(ctx context.Context, serial, hostname, image string) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE boards SET hostname = ?, image = ?, deployed = 1, reimage = 0 WHERE serial = ?`,
		hostname, image, serial)
	return err
}

// SetBoardReimage sets or clears the re-image flag.
func (t *Tx) SetBoardReimage(ctx context.Context, serial string, reimage bool) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE boards SET reimage = ? WHERE serial = ?`, reimage, serial)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// BoardEvent is one line of a board's history (netboot and agent events).
type BoardEvent struct {
	ID     int64
	Serial string
	MAC    string
	At     string
	Kind   string
	Detail string
	Site   string // the site that recorded it
}

// AddBoardEvent appends to a board's history, recorded at site e.Site ("" =
// DefaultSite).
func (t *Tx) AddBoardEvent(ctx context.Context, e BoardEvent) (int64, error) {
	return t.insert(ctx, `INSERT INTO board_events (serial, mac, at, kind, detail, site) VALUES (?, ?, ?, ?, ?, ?)`,
		e.Serial, e.MAC, t.nowText(), e.Kind, e.Detail, siteOr(e.Site))
}

// BoardEvents returns a board's history (by serial, and by MAC when given), oldest first.
func (s *Store) BoardEvents(ctx context.Context, serial, mac string, limit int) ([]BoardEvent, error) {
	return s.BoardEventsAt(ctx, serial, mac, "", limit)
}

// BoardEventsAt is BoardEvents of the events recorded at site ("" = every site): the
// newest limit of those, oldest first.
func (s *Store) BoardEventsAt(ctx context.Context, serial, mac, site string, limit int) ([]BoardEvent, error) {
	if limit <= 0 {
		limit = 500
	}
	return collect(ctx, s.r, func(r scanner) (BoardEvent, error) {
		var e BoardEvent
		err := r.Scan(&e.ID, &e.Serial, &e.MAC, &e.At, &e.Kind, &e.Detail, &e.Site)
		return e, err
	}, `SELECT id, serial, mac, at, kind, detail, site FROM (SELECT * FROM board_events
		WHERE ((serial = ? AND serial != '') OR (mac = ? AND mac != '')) AND (? = '' OR site = ?)
		ORDER BY id DESC LIMIT ?) AS e ORDER BY id`,
		serial, mac, site, site, limit)
}

// SetBoardDeployedFlag sets or clears whether the board's card holds a verified image.
func (t *Tx) SetBoardDeployedFlag(ctx context.Context, serial string, deployed bool) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE boards SET deployed = ? WHERE serial = ?`, deployed, serial)
	return err
}

// BoardByShortSerial returns the most recently seen board whose serial ends in the
// 8 hex digits short (lower case).
func (t *Tx) BoardByShortSerial(ctx context.Context, short string) (Board, error) {
	return one(ctx, t.tx, scanBoard, `SELECT `+boardCols+` FROM boards WHERE substr(serial, 9) = ? ORDER BY last_seen DESC LIMIT 1`, short)
}

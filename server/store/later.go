package store

import (
	"context"
	"fmt"
	"strings"
)

// History rows written at the group's commit. A new board's hello appends two rows
// that nothing in its transaction reads: the board's "agent.hello" event and its
// new deployment's first phase. One INSERT each, they were two of the eleven
// statements the writer ran for it, and a statement costs the writer more than the
// rows in it. Appended with AddBoardEventAtCommit and AddClaimedDeployment instead,
// they stay with the function's Tx; once the function has returned nil (its
// savepoint, if it has one, released) they join its group's, and the group
// writes them all in a few multi-row INSERTs just before COMMIT, in the order the
// functions ran. A function that fails leaves none. If writing them fails, the
// whole group is rolled back and every caller of it gets the error, as when
// COMMIT fails.
//
// What that changes, and nothing in the store or the domain depends on it: such a
// row is not visible to its own transaction nor to the functions after it in the
// group, only after the commit; its ID comes after those of every row the group
// wrote directly (its time is its own transaction's, Tx.Now).

// laterRows are history rows kept for the group's commit.
type laterRows struct {
	events []BoardEvent // At set
	phases []laterPhase
}

// laterPhase is a deployment_phases row kept for the group's commit.
type laterPhase struct {
	deployment int64
	phase, at  string
}

// add appends o's rows to l's.
func (l *laterRows) add(o *laterRows) {
	if o == nil {
		return
	}
	l.events = append(l.events, o.events...)
	l.phases = append(l.phases, o.phases...)
}

// AddBoardEventAtCommit appends to a board's history, recorded at site e.Site (""
// = DefaultSite) at t.Now, like AddBoardEvent, but writes the row with the rest of
// its group's at the commit (see above): it is not visible in this transaction, and
// its ID is not known here.
func (t *Tx) AddBoardEventAtCommit(e BoardEvent) {
	e.At, e.Site = t.nowText(), siteOr(e.Site)
	t.laterRows().events = append(t.laterRows().events, e)
}

// addPhaseAtCommit is AddPhase(id, phase, 0, "") written at the group's commit.
func (t *Tx) addPhaseAtCommit(id int64, phase string) {
	t.laterRows().phases = append(t.laterRows().phases, laterPhase{deployment: id, phase: phase, at: t.nowText()})
}

func (t *Tx) laterRows() *laterRows {
	if t.later == nil {
		t.later = &laterRows{}
	}
	return t.later
}

// write inserts l's rows in q, board events first, then phases, each table in
// order, in INSERTs of up to laterChunks[0] rows.
func (l *laterRows) write(ctx context.Context, q querier) error {
	err := insertRows(ctx, q, laterEventsSQL, len(l.events), func(args []any, i int) []any {
		e := &l.events[i]
		return append(args, e.Serial, e.MAC, e.At, e.Kind, e.Detail, e.Site)
	})
	if err != nil {
		return fmt.Errorf("board history: %w", err)
	}
	err = insertRows(ctx, q, laterPhasesSQL, len(l.phases), func(args []any, i int) []any {
		p := &l.phases[i]
		return append(args, p.deployment, p.phase, p.at)
	})
	if err != nil {
		return fmt.Errorf("deployment phases: %w", err)
	}
	return nil
}

// laterChunks are the row counts of the multi-row INSERTs, largest first: a group
// of n rows takes n/32 INSERTs of 32 and at most 3 and 7 of 8 and 1, and the store
// prepares at most three texts per table.
var laterChunks = []int{32, 8, 1}

// multiInsert is an INSERT statement's text for each row count of laterChunks.
type multiInsert map[int]string

func newMultiInsert(head, row string) multiInsert {
	m := multiInsert{}
	for _, n := range laterChunks {
		m[n] = head + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
	}
	return m
}

var (
	laterEventsSQL = newMultiInsert(`INSERT INTO board_events (serial, mac, at, kind, detail, site) VALUES `,
		`(?, ?, ?, ?, ?, ?)`)
	// A phase at the commit is always a deployment's first, with no bytes and no
	// message (addPhaseAtCommit): those two are in the text, not bound.
	laterPhasesSQL = newMultiInsert(`INSERT INTO deployment_phases (deployment_id, phase, at, bytes, message) VALUES `,
		`(?, ?, ?, 0, '')`)
)

// insertRows inserts rows rows with the texts of ins, as few statements as
// laterChunks allow; row appends the values of row i to args, in the text's column
// order.
func insertRows(ctx context.Context, q querier, ins multiInsert, rows int, row func(args []any, i int) []any) error {
	var args []any
	for next := 0; next < rows; {
		n := laterChunks[len(laterChunks)-1]
		for _, c := range laterChunks {
			if c <= rows-next {
				n = c
				break
			}
		}
		args = args[:0]
		for i := next; i < next+n; i++ {
			args = row(args, i)
		}
		if _, err := q.ExecContext(ctx, ins[n], args...); err != nil {
			return err
		}
		next += n
	}
	return nil
}

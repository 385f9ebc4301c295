// Package pgrelay carries the events of rpi-deployd servers that share one
// PostgreSQL database, so that a change committed at one server reaches the event
// stream of every server, in one global order, and a client can resume after a
// sequence number at any of them.
//
// A Relay takes over its server's events.Bus (Bus.Relay): what the domain publishes
// waits in memory, and one writer connection moves everything waiting into the
// events table (migration 0034) in one transaction:
//
//	BEGIN
//	SELECT pg_advisory_xact_lock(lockClass, lockObject)
//	INSERT INTO events … seq = (SELECT max(seq) FROM events) + 1, + 2, …
//	SELECT pg_notify(Channel, new max)
//	COMMIT
//
// The advisory lock is held until COMMIT has made the rows visible, so transactions
// of all servers number their events one after the other: commit order is seq order,
// and a reader that has seen seq N never later finds a committed seq below N. (The
// primary key alone would keep the numbering right too, by failing one of two
// writers that took the same number; the lock makes the second wait instead.)
//
// A second connection LISTENs on Channel. A notification is only a wake-up: the
// table is the truth. On a notification, every Options.Poll without one, and after
// every reconnect, the relay reads the rows after the last seq its bus holds, in
// order, and appends them to the bus with their global numbers (Bus.Append). A relay
// that starts fills its bus with the bus's length of the latest events first, so a
// client that read them at another server resumes here without loss or duplicates.
//
// While the database cannot be reached, published events wait in memory (at most
// Options.MaxPending; past it the oldest are dropped, and one "reset" event, which
// tells dashboards to fetch a new snapshot, goes out first when the database is back)
// and the server goes on serving. A batch whose COMMIT's answer was lost is looked
// for by its origin before it is written again, so it is written once.
//
// Retention: the table keeps the latest Options.Keep events (100 000 by default);
// older rows are deleted as new ones arrive. A relay that falls further behind than
// that appends a gap to its bus, and the clients reading across it get "reset".
package pgrelay

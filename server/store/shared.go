package store

import "slices"

// Reads shared by the functions of one group (writer.go). Every new board's hello
// lists the batches it may join (HelloBatches), and in a fleet's burst the
// functions of a group are nearly all such hellos: the list was read once per hello
// (the costliest read of a hello's transaction, about a fifth of the writer's
// time). Now the first function of a group that asks reads it, and the functions
// after it in the same group are given what it read, kept as the group's
// transaction stands:
//
//   - AddClaimedDeployment counts its deployment in its batch's InFlight, as its
//     UPDATE does in the table, and drops the batch from the list once its
//     verified plus open deployments reach its count, as the query's WHERE does;
//   - any other write of the store to batches, products or images (AddBatch,
//     UpdateBatch, SetBatchP2P, Finish, PutImage, SetImageReady, DeleteImage,
//     SetImageP2P, PutProduct, SetProductImage, ClearImageEverywhere) forgets the
//     list, and the next function that asks reads it again;
//   - a function that fails or panics forgets it too: its savepoint is rolled
//     back, and with it whatever it counted (on SQLite's first run of a group,
//     without savepoints, the whole run is rolled back and run again: writer.go).
//
// A group's list is never kept past its transaction: each group (and each run
// again of it, each attempt of a serializable group) starts without one. Within a group no other
// connection writes (SQLite: BEGIN IMMEDIATE; PostgreSQL: the write lock, or a
// SERIALIZABLE snapshot that a second read would see alike), so what the store's
// own writes change is all that can change.

// groupReads are the reads kept for the functions of one group.
type groupReads struct {
	batches     []HelloBatch // HelloBatches as the transaction stands, when batchesRead
	batchesRead bool
	slots       slotCount // SlotsFull's count, when slotsRead
	slotsRead   bool
}

// helloBatches returns a copy of the kept list (the caller may reorder it), and
// whether one is kept.
func (g *groupReads) helloBatches() ([]HelloBatch, bool) {
	if !g.batchesRead {
		return nil, false
	}
	return slices.Clone(g.batches), true
}

// keepBatches keeps bs, as just read, for the functions after this one.
func (g *groupReads) keepBatches(bs []HelloBatch) {
	g.batches, g.batchesRead = slices.Clone(bs), true
}

// forget drops all that is kept: a function failed, and what it counted here is
// rolled back in the table.
func (g *groupReads) forget() {
	g.forgetBatches()
	g.slotsRead = false
}

// forgetBatches drops the kept list: the transaction changed it in a way not
// counted here.
func (g *groupReads) forgetBatches() {
	g.batches, g.batchesRead = nil, false
}

// countDeployment counts a new open deployment of batch id in the kept list, as
// AddClaimedDeployment's UPDATE counts it in the table; a batch whose count is
// then reached leaves the list, as HelloBatches' WHERE would leave it out.
func (g *groupReads) countDeployment(id int64) {
	if !g.batchesRead {
		return
	}
	for i := range g.batches {
		b := &g.batches[i].Batch
		if b.ID != id {
			continue
		}
		b.InFlight++
		if b.Count > 0 && b.Done+b.InFlight >= b.Count {
			g.batches = slices.Delete(g.batches, i, i+1)
		}
		return
	}
}

// batchesChanged is called by every write of the store to batches, products or
// images other than AddClaimedDeployment's count: what HelloBatches would read
// may differ now.
func (t *Tx) batchesChanged() { t.g.forgetBatches() }

// The stream slots of a site (SlotsFull, defences.go) are counted once per group
// too. Past --max-streams open deployments every hello that would open one asks
// whether its site's slots are full, and a count reads up to max-streams entries
// of two partial indexes: milliseconds per hello with tens of thousands held. The
// first function of a group that asks counts; the functions after it get an answer
// from what it counted, kept as two bounds on the count as the transaction stands:
//
//   - lower, a number of deployments that certainly hold a slot, and upper, a
//     number that certainly no more hold one (unknown when the count stopped at
//     its limit);
//   - AddClaimedDeployment at the counted site raises both (a new claim);
//     Progress, MarkStreamed and Touch may make an open deployment active (a
//     lapsed slot held again) and raise upper; Touch may move one to another
//     site, and Finish closes one, so both take one from lower; Progress and
//     MarkStreamed take one from it too when their time is before the counted activity bound;
//   - slots lapse as the functions' clocks move on, which only lowers the count:
//     upper holds, and lower holds while no deployment it counts is older than
//     the asking function's bounds (the earliest hello and activity times among
//     them are kept, and lowered by every write that sets one);
//   - a function whose bounds are before the counted ones (its clock behind the
//     counting function's), or another site or limit, counts afresh.
//
// upper < limit is "not full" and lower ≥ limit "full", exactly as a count in the
// same function would say; between the two, the function counts again. A
// function that fails forgets the count with the batches (forget), and a group
// run again starts without it: what it counted is rolled back.

// slotCount is a site's stream slots as counted by readSlots, with the group's
// writes since.
type slotCount struct {
	site, claimSince, activeSince string // what it counted
	limit                         int
	// lower and upper bound how many open deployments of site hold a slot by
	// claimSince and activeSince; upper < 0: unknown (at least limit).
	lower, upper int
	// oldestClaim and oldestActive are at or before the hello time of every claim
	// and the activity time of every active slot counted in lower ("": none).
	oldestClaim, oldestActive string
}

// slotsFull answers SlotsFull from the kept count: ok is false when none is kept
// for site and limit, when claimSince or activeSince is before the kept count's,
// or when its bounds cannot decide.
func (g *groupReads) slotsFull(site, claimSince, activeSince string, limit int) (full, ok bool) {
	c := &g.slots
	if !g.slotsRead || site != c.site || limit != c.limit || claimSince < c.claimSince || activeSince < c.activeSince {
		return false, false
	}
	if c.upper >= 0 && c.upper < limit {
		return false, true
	}
	lapsed := c.oldestClaim != "" && c.oldestClaim < claimSince || c.oldestActive != "" && c.oldestActive < activeSince
	if !lapsed && c.lower >= limit {
		return true, true
	}
	return false, false
}

// keepSlots keeps c, as just read, for the functions after this one.
func (g *groupReads) keepSlots(c slotCount) { g.slots, g.slotsRead = c, true }

// slotClaimed counts a new open deployment of site that said hello at now
// (AddClaimedDeployment).
func (g *groupReads) slotClaimed(site, now string) {
	c := &g.slots
	if !g.slotsRead || site != c.site || now < c.claimSince {
		return
	}
	c.lower++
	if c.upper >= 0 {
		c.upper++
	}
	c.oldestClaim = earliest(c.oldestClaim, now)
}

// slotTouched counts a write that set one deployment's activity time to now
// (Progress, MarkStreamed, Touch): it may hold a slot it did not (upper), and,
// when moved (Touch: to another site) or set before the counted activity bound,
// no longer hold one it did (lower).
func (g *groupReads) slotTouched(now string, moved bool) {
	c := &g.slots
	if !g.slotsRead {
		return
	}
	if c.upper >= 0 {
		c.upper++
	}
	if moved || now < c.activeSince {
		c.lower--
	}
	c.oldestActive = earliest(c.oldestActive, now)
}

// slotFreed counts a deployment closed (Finish): it may have held a slot.
func (g *groupReads) slotFreed() { g.slots.lower-- }

// earliest is the earlier of kept time a ("": none) and b.
func earliest(a, b string) string {
	if a == "" || b < a {
		return b
	}
	return a
}

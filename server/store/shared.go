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

// forget drops what is kept: the transaction changed it in a way not counted here.
func (g *groupReads) forget() {
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
func (t *Tx) batchesChanged() { t.g.forget() }

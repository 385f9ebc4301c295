package domain

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// hello is a board's checked hello and where it came from.
type hello struct {
	agentapi.Hello
	serial, mac string // normalised
	source      string // network address of the sender (WithSource), "" when unknown
	// key and keyHash are the secret key of the deployment the answer may carry
	// (newSecretKey), made before the write transaction so the writer does not
	// spend its time on them.
	key, keyHash string
}

// helloOutcome is what one hello transaction decided; each attempt starts from a
// zero outcome.
type helloOutcome struct {
	resp    agentapi.HelloResponse
	board   store.Board       // the board as the hello left it
	saved   bool              // board is written (else recordHello writes it)
	known   bool              // the board was stored before this hello
	created *store.Deployment // the deployment opened, if any
	p2p     P2PModes          // the peer-to-peer modes of created's batch and image
	batchID int64             // the batch it was opened in (0: none, or a re-image)
	limited bool              // the source is over its open-deployment limit
	// profiles is whether any profile is attached to anything
	// (store.HelloFacts.Profiles); when none is, a new deployment's profile is
	// not looked up.
	profiles bool
	// batches are the open batches a new board may join (store.Tx.HelloBatches),
	// read before the hello's facts; nothing in the hello's transaction changes
	// them before it allocates.
	batches []store.HelloBatch
	// name is the serial name checked with the hello's facts (serialNameGuess).
	name nameCheck
	// batch is batchID's batch as the transaction left it, batchOrd the
	// batchOrder of that change (publishBatch).
	batch    mgmtapi.Batch
	batchOrd int64
}

// nameCheck is a hostname checked with a hello's facts (store.HelloFacts.NameTaken):
// whether a board other than the hello's holds it. The answer holds for the rest of
// the hello's transaction, which writes no other board's hostname.
type nameCheck struct {
	name  string // "" when none was checked
	taken bool
}

// Hello answers a board's hello: its open deployment if it has one, boot-local if
// its card already holds a verified image (and no re-image is asked for), a new
// deployment from the best active batch, or retry. Input is checked before anything
// is written; a bad serial or MAC leaves no row behind. Image URLs in the answer are
// paths relative to the server. A deploy answer carries a fresh deployment secret
// (a re-hello replaces the previous one). The source address of ctx (WithSource)
// is held to NewSerialsPerMinute and MaxOpenPerSource; answers over those limits
// are held OverLimitDelay. While the database cannot be reached
// (store.ErrUnavailable) the answer is retry: nothing was allocated, and the board
// asks again after RetryAfter.
func (s *Service) Hello(ctx context.Context, h agentapi.Hello) (agentapi.HelloResponse, error) {
	resp, _, err := s.HelloP2P(ctx, h)
	return resp, err
}

// HelloP2P is Hello that also returns the peer-to-peer modes of the deployment it
// opened, read with its allocation (so the caller need not read them again with
// P2PFor); they are not Known for any other answer.
func (s *Service) HelloP2P(ctx context.Context, h agentapi.Hello) (agentapi.HelloResponse, P2PModes, error) {
	in, err := checkHello(h)
	if err != nil {
		return agentapi.HelloResponse{}, P2PModes{}, err
	}
	out, err := s.hello(ctx, in)
	if errors.Is(err, store.ErrUnavailable) {
		s.logUnavailable(in, err)
		return s.retry("database unavailable"), P2PModes{}, nil
	}
	if err != nil {
		return agentapi.HelloResponse{}, P2PModes{}, err
	}
	return out.resp, out.p2p, nil
}

// hello is Hello after the input check. The hello and its outcome go by pointer
// down the connection's goroutine: copied in every frame they made its stack
// deeper than the goroutine's first stack, which then grew (copied) on every hello.
func (s *Service) hello(ctx context.Context, in *hello) (*helloOutcome, error) {
	in.source = sourceOf(ctx)
	charged, resp, err := s.admitSerial(ctx, in)
	if err != nil || resp != nil {
		if resp == nil {
			return nil, err
		}
		return &helloOutcome{resp: *resp}, err
	}
	in.key, in.keyHash = newSecretKey()
	out := new(helloOutcome)
	err = s.st.Update(ctx, func(t *store.Tx) error {
		var err error
		if *out, err = s.decideHello(ctx, t, *in); err != nil {
			return err
		}
		return s.recordHello(ctx, t, *in, out)
	})
	if charged && out.known {
		s.newSerials.refund(in.source) // the board was not new
	}
	if err != nil {
		return nil, err
	}
	if out.limited {
		s.overLimit(ctx) // after the commit: the writer is not held
	}
	s.publishHello(ctx, in, out)
	return out, nil
}

//go:noinline
func (s *Service) logUnavailable(in *hello, err error) {
	s.log.Warn("hello answered retry: database unavailable", "serial", in.serial, "mac", in.mac, "err", err)
}

// checkHello checks and normalises a hello's fields.
func checkHello(h agentapi.Hello) (*hello, error) {
	in := &hello{Hello: h}
	var err error
	if in.serial, err = agentapi.NormalizeSerial(h.Serial); err != nil {
		return in, invalid("serial", "%v", err)
	}
	if in.mac, err = agentapi.NormalizeMAC(h.MAC); err != nil {
		return in, invalid("mac", "%v", err)
	}
	if h.Disk.SizeBytes < 0 {
		return in, invalid("disk.size_bytes", "disk size %d is negative", h.Disk.SizeBytes)
	}
	for _, f := range []struct{ name, v string }{{"model", h.Model}, {"revision", h.Revision}, {"agent_version", h.AgentVersion},
		{"ip", h.IP}, {"disk.device", h.Disk.Device}, {"disk.cid", h.Disk.CID}} {
		if len(f.v) > 200 {
			return in, invalid(f.name, "%s is longer than 200 bytes", f.name)
		}
	}
	return in, nil
}

// admitSerial charges a serial never seen before to its source's budget
// (NewSerialsPerMinute): random serials cannot flood the boards table or the pools
// faster than the limit. While the source has budget left, every hello takes one
// unit (charged), and the caller gives it back once its transaction found the
// board already stored: so a hello costs no read before the write transaction.
// Only a source over its budget has its serial read on the reader pool first, and
// only a board already stored goes on, so a flood over its budget does not queue
// for the writer. A non-nil answer is the retry to send (already held
// OverLimitDelay).
func (s *Service) admitSerial(ctx context.Context, in *hello) (charged bool, resp *agentapi.HelloResponse, err error) {
	if s.newSerials.allow(in.source, s.now()) {
		return true, nil, nil
	}
	_, err = s.st.Board(ctx, in.serial)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return false, nil, err
	}
	s.log.Debug("new serial over its source's limit", "serial", in.serial, "source", in.source)
	s.overLimit(ctx)
	return false, &agentapi.HelloResponse{Action: agentapi.ActionRetry, RetryAfterMS: s.opt.RetryAfter.Milliseconds(),
		Reason: fmt.Sprintf("too many new boards from %s (limit %d a minute)", in.source, s.opt.NewSerialsPerMinute)}, nil
}

// decideHello picks the answer to a hello inside its transaction: the open
// deployment again, boot-local, retry (a limit reached), or a new deployment. The
// board is read once here and written once, by allocate (before the deployment
// that references it) or by recordHello.
func (s *Service) decideHello(ctx context.Context, t *store.Tx, in hello) (helloOutcome, error) {
	batches, err := t.HelloBatches(ctx)
	if err != nil {
		return helloOutcome{}, err
	}
	guess := serialNameGuess(batches, in.serial)
	f, err := t.HelloFacts(ctx, in.serial, s.opt.Site, in.source, s.opt.MaxOpenPerSource, guess)
	if err != nil {
		return helloOutcome{}, err
	}
	b, known := seenBoard(f, in, s.opt.Site), f.Known
	out := helloOutcome{board: b, known: known, profiles: f.Profiles, batches: batches,
		name: nameCheck{name: guess, taken: f.NameTaken}}
	// The board's open deployment, if it has one, is its newest: a deployment is
	// opened only while the board has none open (deployments_one_open) and a closed
	// one never opens again. So one read gives both the open deployment and the last
	// one (which candidateBatches wants). A board not stored yet has none
	// (deployments.serial references boards).
	var lastp *store.Deployment
	if known {
		last, err := t.LastDeployment(ctx, in.serial)
		switch {
		case err == nil && last.State == store.DeployOpen:
			// The same board again while its deployment is open: the same answer.
			out.resp, err = s.reopen(ctx, t, last, in)
			return out, err
		case err == nil:
			lastp = &last
		case !errors.Is(err, store.ErrNotFound):
			return out, err
		}
	}
	if b.Deployed && !b.Reimage {
		out.resp = agentapi.HelloResponse{Action: agentapi.ActionBootLocal,
			Reason: fmt.Sprintf("card holds verified image %q as %s", b.Image, b.Hostname)}
		return out, nil
	}
	why, limited, err := s.admitDeployment(ctx, t, in.source, f)
	if err != nil || why != "" {
		out.resp, out.limited = s.retry(why), limited
		return out, err
	}
	return s.allocateHello(ctx, t, in, out, lastp)
}

// serialNameGuess is the name a new board's deployment most likely gets: its
// serial name (the low 8 hex digits) in the first of batches (the open batches a
// new board may join), when that batch's product is serial-named; "" when there is
// none. HelloFacts checks whether another board holds it in the same query, so that
// uniqueSerialHostname need not ask in a statement of its own (it still asks for
// any other name: a board that holds a longer serial name, another batch first).
func serialNameGuess(batches []store.HelloBatch, serial string) string {
	if len(batches) == 0 {
		return ""
	}
	hb := batches[0]
	if !hb.ProductKnown || hb.Product.Naming != store.NamingSerial {
		return ""
	}
	return serialHostname(hb.Product.Code, hb.Venue, serial, 8)
}

// seenBoard is the board of hello in as the hello leaves it, not yet written: the
// stored board (f.Known) or a new one, with the MAC, model, revision and IP the
// hello gives (those it leaves empty keep their stored values), last_event "hello",
// seen at site.
func seenBoard(f store.HelloFacts, in hello, site string) store.Board {
	b := f.Board
	// Field by field: a loop over the fields' addresses moved b to the heap.
	b.MAC = cmp.Or(in.mac, b.MAC)
	b.Model = cmp.Or(in.Model, b.Model)
	b.Revision = cmp.Or(in.Revision, b.Revision)
	b.IP = cmp.Or(in.IP, b.IP)
	b.LastEvent, b.Site = "hello", site
	return b
}

// reopen answers a board whose deployment is still open with that deployment
// and a new secret (made of in's key): only the secret's hash is stored, so the
// board (which may have rebooted and lost it) gets a new one, and the old one stops
// working.
func (s *Service) reopen(ctx context.Context, t *store.Tx, d store.Deployment, in hello) (agentapi.HelloResponse, error) {
	if err := t.Touch(ctx, d.ID, s.opt.Site); err != nil {
		return agentapi.HelloResponse{}, err
	}
	if err := t.SetDeploymentSecret(ctx, d.ID, in.keyHash); err != nil {
		return agentapi.HelloResponse{}, err
	}
	resp, err := s.deployResponse(ctx, t, d)
	if resp.Deployment != nil {
		resp.Deployment.Secret = secretOf(d.ID, in.key)
	}
	return resp, err
}

// admitDeployment says why a new deployment cannot be opened now ("" when it can):
// the source holds MaxOpenPerSource open deployments (limited), or MaxStreams
// boards hold a stream slot. f holds both counts, read with the board: the open
// deployments from the source (up to the limit) and all open deployments. The
// slots are looked at only when at least MaxStreams deployments are open at all,
// which the maintained counters tell cheaply: with tens of thousands open,
// counting them on every hello was the hello's whole cost. Past that, the store
// counts them once per writer group (store.Tx.SlotsFull): a count reads up to
// MaxStreams index entries.
func (s *Service) admitDeployment(ctx context.Context, t *store.Tx, source string, f store.HelloFacts) (why string, limited bool, err error) {
	if source != "" && s.opt.MaxOpenPerSource > 0 && f.OpenFromSource >= s.opt.MaxOpenPerSource {
		return fmt.Sprintf("%d deployments open from %s, the limit is %d", f.OpenFromSource, source, s.opt.MaxOpenPerSource), true, nil
	}
	// Fewer deployments open than slots: no need to count which of them hold one.
	if f.OpenAll < s.opt.MaxStreams {
		return "", false, nil
	}
	full, err := t.SlotsFull(ctx, s.opt.Site, store.FormatTime(t.Now.Add(-s.opt.ClaimWindow)), store.FormatTime(t.Now.Add(-s.opt.StaleAfter)),
		s.opt.MaxStreams)
	if err != nil || !full {
		return "", false, err
	}
	return fmt.Sprintf("%d boards streaming, the limit is %d", s.opt.MaxStreams, s.opt.MaxStreams), false, nil
}

// retry is the answer "ask again later" for reason.
func (s *Service) retry(reason string) agentapi.HelloResponse {
	return agentapi.HelloResponse{Action: agentapi.ActionRetry, Reason: reason, RetryAfterMS: s.opt.RetryAfter.Milliseconds()}
}

// recordHello writes the hello into the board's row (unless allocate did) and
// into its history, in its transaction (the history row at its commit). Retries are not history (a waiting board
// asks every few seconds): the board's last_event says why it waits.
func (s *Service) recordHello(ctx context.Context, t *store.Tx, in hello, out *helloOutcome) error {
	resp := out.resp
	if !out.saved {
		if resp.Action == agentapi.ActionRetry {
			out.board.LastEvent = "retry: " + resp.Reason
		}
		var err error
		if out.board, err = t.SaveBoard(ctx, out.board); err != nil {
			return err
		}
	}
	if resp.Action == agentapi.ActionRetry {
		return nil
	}
	t.AddBoardEventAtCommit(store.BoardEvent{Serial: in.serial, MAC: in.mac, Kind: "agent.hello", Detail: helloDetail(&resp, &in),
		Site: s.opt.Site})
	return nil
}

// helloDetail is the history line of a hello answered resp, as
// fmt.Sprintf("%s; agent %s, disk %s %d bytes") of the action, agent version, disk
// device and size wrote it, or with "deploy %d as %s" of the deployment's ID and
// hostname in place of the action; without fmt's boxing of each argument, in the
// write transaction of every hello.
func helloDetail(resp *agentapi.HelloResponse, in *hello) string {
	var a [160]byte // on the stack: the string is the line's one allocation
	b := a[:0]
	if d := resp.Deployment; d != nil {
		b = strconv.AppendInt(append(b, "deploy "...), d.ID, 10)
		b = append(append(b, " as "...), d.Hostname...)
	} else {
		b = append(b, resp.Action...)
	}
	b = append(append(b, "; agent "...), in.AgentVersion...)
	b = append(append(b, ", disk "...), in.Disk.Device...)
	b = strconv.AppendInt(append(b, ' '), in.Disk.SizeBytes, 10)
	return string(append(b, " bytes"...))
}

// publishHello logs and publishes what a committed hello changed. It runs at the
// deepest point of a hello's connection goroutine, whose stack is copied whenever
// it outgrows it: each event's data is made in a function of its own, so that
// their frames are not all on the stack at once.
func (s *Service) publishHello(ctx context.Context, in *hello, out *helloOutcome) {
	s.publishBoard(&out.board)
	switch {
	case out.created != nil:
		// Its arguments are boxed, on every hello, only when the line is written.
		if s.log.Enabled(ctx, slog.LevelInfo) {
			s.logCreated(in, out.created)
		}
		s.publishDeployment(out.created)
		s.publishBatch(ctx, out.batchID, &out.batch, out.batchOrd)
	case out.resp.Action == agentapi.ActionRetry:
		s.publishRetry(in, out.resp.Reason)
	}
}

// (The wire forms stay on the stack: events.PublishView copies them to the heap
// only for in-process subscribers.)
//
//go:noinline
func (s *Service) publishBoard(b *store.Board) {
	v := wireBoard(*b)
	events.PublishView(s.bus, events.BoardChanged, &v)
}

//go:noinline
func (s *Service) publishDeployment(d *store.Deployment) {
	v := wireDeployment(*d)
	events.PublishView(s.bus, events.DeploymentCreated, &v)
}

//go:noinline
func (s *Service) publishRetry(in *hello, reason string) {
	s.publish(events.HelloRetry, map[string]string{"serial": in.serial, "mac": in.mac, "reason": reason, "site": s.opt.Site})
}

//go:noinline
func (s *Service) logCreated(in *hello, d *store.Deployment) {
	s.log.Info("deployment created", "deployment", d.ID, "serial", in.serial, "mac", in.mac, "hostname", d.Hostname,
		"batch", d.BatchID, "image", d.Image)
}

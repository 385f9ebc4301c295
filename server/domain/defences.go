package domain

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// Defences against a hostile host on the deployment network (docs/operations.md,
// "Deployments: secrets, ownership, limits"): deployment secrets, per-source limits,
// stream claims, the release of names no card can carry, and retention.

type sourceKey struct{}

// WithSource tags ctx with the network address a request came from (the IP, no
// port). Hellos without a source (in-process callers) are not limited per source.
func WithSource(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, sourceKey{}, addr)
}

func sourceOf(ctx context.Context) string {
	s, _ := ctx.Value(sourceKey{}).(string)
	return s
}

// A deployment secret is "ID.KEY": the deployment's ID in decimal, a dot, and KEY,
// 256 random bits in base64url (43 characters). The store keeps only the hex
// SHA-256 of KEY. Where the request names no deployment (the image download), the ID
// in the secret finds the row whose hash KEY must match: no index of secrets is
// written with every hello. Secrets of deployments opened before this format are
// KEY alone; they still prove the deployments their requests name (events, result,
// swarm), while their image download is refused (401), which the agent answers with
// a new hello and so a new secret.

// newSecretKey returns a fresh KEY and its hex SHA-256, which the store keeps.
func newSecretKey() (key, hash string) {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand documents it)
	key = base64.RawURLEncoding.EncodeToString(b)
	return key, hashSecret(key)
}

// secretOf is the secret of deployment id made of key.
func secretOf(id int64, key string) string {
	return strconv.FormatInt(id, 10) + "." + key
}

// splitSecret returns the ID and KEY of secret "ID.KEY"; ok is false for anything
// else (a KEY of the older format alone has no ID).
func splitSecret(secret string) (id int64, key string, ok bool) {
	head, key, found := strings.Cut(secret, ".")
	if !found || key == "" {
		return 0, "", false
	}
	id, err := strconv.ParseInt(head, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != head {
		return 0, "", false
	}
	return id, key, true
}

// secretMatches reports, in time that does not depend on how much of it matches,
// whether secret proves deployment id whose stored hash is want: "ID.KEY" with this
// ID and KEY hashing to want, or (deployments opened before the "ID.KEY" format) a
// KEY alone hashing to want.
func secretMatches(id int64, secret, want string) bool {
	key := secret
	if sid, k, ok := splitSecret(secret); ok {
		if sid != id {
			return false
		}
		key = k
	}
	return want != "" && subtle.ConstantTimeCompare([]byte(hashSecret(key)), []byte(want)) == 1
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ErrSecret is a missing or wrong deployment secret. It wraps ErrAuth (401).
var ErrSecret = fmt.Errorf("deployment secret: %w", ErrAuth)

// checkSecret compares secret with the deployment's stored hash in constant time and
// returns how many image bytes the deployment's board received: served for its
// secret, plus those it reported from other boards.
func checkSecret(ctx context.Context, t *store.Tx, id int64, secret string) (received int64, err error) {
	want, received, err := t.DeploymentSecret(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("deployment %d: %w", id, err)
	}
	if secret == "" {
		return 0, fmt.Errorf("deployment %d: no secret sent (header X-Deployment-Secret): %w", id, ErrSecret)
	}
	if !secretMatches(id, secret, want) {
		return 0, fmt.Errorf("deployment %d: the secret does not match (a newer hello of the board replaces it): %w", id, ErrSecret)
	}
	return received, nil
}

// StreamStarted records that the board holding secret fetches its image: from now on
// its deployment counts as streaming (it holds a stream slot while active) and its
// claim no longer expires. A secret of no open deployment gives ErrSecret. The
// caller reports the bytes it then sent with StreamServed.
func (s *Service) StreamStarted(ctx context.Context, secret string) (int64, error) {
	id, _, ok := splitSecret(secret)
	if !ok {
		return 0, fmt.Errorf("image download: the secret names no deployment: %w", ErrSecret)
	}
	want, err := s.st.OpenDeploymentSecret(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !secretMatches(id, secret, want)) {
		return 0, fmt.Errorf("image download: no open deployment has this secret: %w", ErrSecret)
	}
	if err != nil {
		return 0, err
	}
	var open bool
	err = s.st.Update(ctx, func(t *store.Tx) error {
		var err error
		open, err = t.MarkStreamed(ctx, id)
		return err
	})
	if err == nil && !open {
		return 0, fmt.Errorf("image download: deployment %d is closed: %w", id, ErrSecret)
	}
	return id, err
}

// StreamServed counts n image bytes sent for deployment id (after StreamStarted).
func (s *Service) StreamServed(ctx context.Context, id, n int64) error {
	if n <= 0 {
		return nil
	}
	return s.st.Update(ctx, func(t *store.Tx) error { return t.AddServed(ctx, id, n) })
}

// releaseUnstreamed unbinds the pool name of a deployment that closed as a reported
// failure or an expired claim before its board received the whole image (whole
// false: fewer bytes were served for its secret, plus those its board reported from
// other boards in its swarm announces, than the image's compressed size),
// unless the board ever had a verified card under that name. No card can carry the
// name: the agent never leaves a failed card bootable, and names a card only after
// it checked the whole image; so the name may go to another board at once. A board
// that received the whole image keeps its name for its retry, as before. It reports
// whether it released a name.
func (s *Service) releaseUnstreamed(ctx context.Context, t *store.Tx, d store.Deployment, whole bool) (bool, error) {
	if whole {
		return false, nil
	}
	n, err := t.HeldName(ctx, d.Venue, d.Product, d.Serial)
	if errors.Is(err, store.ErrNotFound) || (err == nil && n.Name != d.Hostname) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	verified, err := t.VerifiedUnder(ctx, d.Serial, d.Hostname)
	if err != nil || verified {
		return false, err
	}
	if err := t.ReleasePoolName(ctx, n.Name); err != nil {
		return false, err
	}
	if err := t.SetBoardHostname(ctx, d.Serial, ""); err != nil {
		return false, err
	}
	return true, t.Audit(ctx, "system", "pool.release", n.Name, fmt.Sprintf("deployment %d closed before its board had the whole image", d.ID))
}

// ExpireClaims closes, as abandoned, every open deployment whose board has not
// fetched its image within claimTimeout of its hello, and releases its pool name
// (see releaseUnstreamed). It returns how many it closed.
func (s *Service) ExpireClaims(ctx context.Context) (int, error) {
	closed, _, err := s.abandon(ctx,
		func(t *store.Tx) ([]store.Deployment, error) {
			return t.UnstreamedDeployments(ctx, store.FormatTime(t.Now.Add(-s.opt.ClaimTimeout)))
		},
		fmt.Sprintf("abandoned: the board did not fetch its image within %s of its hello", s.opt.ClaimTimeout),
		func(t *store.Tx, d store.Deployment) error {
			_, err := s.releaseUnstreamed(ctx, t, d, false)
			return err
		})
	if err != nil {
		return 0, err
	}
	for _, d := range closed {
		s.log.Info("claim expired", "deployment", d.ID, "serial", d.Serial, "hostname", d.Hostname, "claim_timeout", s.opt.ClaimTimeout)
		s.publish(events.DeploymentFinished, wireDeployment(d))
	}
	if len(closed) > 0 {
		s.publish(events.PoolChanged, map[string]any{"released": len(closed)})
	}
	return len(closed), nil
}

// ReleaseUnused unbinds every name of a pool (venue and product; "" = all pools)
// that no card can carry (store.Tx.ReleasableNames). With dryRun it only lists them.
func (s *Service) ReleaseUnused(ctx context.Context, venue, product string, dryRun bool) ([]string, error) {
	var names []string
	err := s.st.Update(ctx, func(t *store.Tx) error {
		names = []string{}
		ns, err := t.ReleasableNames(ctx, venue, product)
		if err != nil {
			return err
		}
		for _, n := range ns {
			names = append(names, n.Name)
			if dryRun {
				continue
			}
			if err := t.ReleasePoolName(ctx, n.Name); err != nil {
				return err
			}
			if err := t.SetBoardHostname(ctx, n.Serial, ""); err != nil {
				return err
			}
		}
		if dryRun || len(names) == 0 {
			return nil
		}
		return t.Audit(ctx, Actor(ctx), "pool.release-unused", venue+"/"+product, fmt.Sprintf("%d names", len(names)))
	})
	if err == nil && !dryRun && len(names) > 0 {
		s.publish(events.PoolChanged, map[string]any{"venue": venue, "product": product})
	}
	return names, err
}

// Purged counts what Purge deleted.
type Purged struct {
	Sessions, BoardEvents, Boards int64
}

// Purge applies retention: expired sessions, board events beyond EventsPerBoard per
// board, and boards that never got a deployment nor a name, silent for ForgetBoardsAfter.
func (s *Service) Purge(ctx context.Context) (Purged, error) {
	var p Purged
	err := s.st.Update(ctx, func(t *store.Tx) error {
		var err error
		if p.Sessions, err = t.PurgeSessions(ctx); err != nil {
			return err
		}
		if p.BoardEvents, err = t.CapBoardEvents(ctx, s.opt.EventsPerBoard); err != nil {
			return err
		}
		p.Boards, err = t.ForgetIdleBoards(ctx, store.FormatTime(t.Now.Add(-s.opt.ForgetBoardsAfter)))
		return err
	})
	if err == nil && p != (Purged{}) {
		s.log.Info("retention", "sessions", p.Sessions, "board_events", p.BoardEvents, "boards", p.Boards)
	}
	return p, err
}

// overLimit holds the answer to a source that is over one of its limits for
// OverLimitDelay (or until ctx ends): a host that floods the agent API with
// requests the limits refuse gets a slow answer, so a client that waits for its
// answers (and the API's per-address request limit) sends only a few a second. A
// board never gets here: one board is one serial and one open deployment.
func (s *Service) overLimit(ctx context.Context) {
	if s.opt.OverLimitDelay <= 0 {
		return
	}
	t := time.NewTimer(s.opt.OverLimitDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// sourceLimiter is a token bucket per source address: perMinute tokens a minute,
// as many at most (the burst). Buckets that are full again are forgotten.
type sourceLimiter struct {
	perMinute int
	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// allow takes one token of source's bucket at now, or reports false.
func (l *sourceLimiter) allow(source string, now time.Time) bool {
	if l.perMinute < 0 || source == "" {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	burst, rate := float64(l.perMinute), float64(l.perMinute)/60
	if now.Sub(l.lastSweep) > time.Minute {
		for k, b := range l.buckets {
			if b.tokens+now.Sub(b.at).Seconds()*rate >= burst {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b := l.buckets[source]
	if b == nil {
		b = &bucket{tokens: burst, at: now}
		l.buckets[source] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refund gives back the unit allow took from source's budget (up to the full
// budget): the hello it admitted turned out not to introduce a new serial.
func (l *sourceLimiter) refund(source string) {
	if l.perMinute < 0 || source == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[source]; b != nil {
		b.tokens = min(float64(l.perMinute), b.tokens+1)
	}
}

// sha256Hex reports whether s is a SHA-256 in hex (64 digits, either case).
func sha256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

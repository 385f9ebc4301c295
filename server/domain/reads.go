package domain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// The reads of the management API: each answers in the API's wire types
// (server/mgmtapi) from the store's reader pool. Lookups of one row return
// ErrNotFound unwrapped when there is none (the API names the object).

// Filters of the list reads; empty fields match all.
type (
	PoolFilter       = store.PoolFilter
	BoardFilter      = store.BoardFilter
	DeploymentFilter = store.DeploymentFilter
	AuditFilter      = store.AuditFilter
)

// FormatTime is a time as the API's time strings and the Since/Until filters write it.
func FormatTime(t time.Time) string { return store.FormatTime(t) }

// Venues lists the venues.
func (s *Service) Venues(ctx context.Context) ([]mgmtapi.Venue, error) {
	vs, err := s.st.Venues(ctx)
	return wireAll(vs, wireVenue), err
}

// Venue returns one venue.
func (s *Service) Venue(ctx context.Context, code string) (mgmtapi.Venue, error) {
	v, err := s.st.Venue(ctx, code)
	return wireVenue(v), err
}

// Products lists the products with their first-boot defaults.
func (s *Service) Products(ctx context.Context) ([]mgmtapi.ProductView, error) {
	ps, err := s.st.Products(ctx)
	if err != nil {
		return nil, err
	}
	return wireAll(ps, wireProductView), nil
}

// Product returns one product with its first-boot defaults.
func (s *Service) Product(ctx context.Context, code string) (mgmtapi.ProductView, error) {
	p, err := s.st.Product(ctx, code)
	return wireProductView(p), err
}

// PoolStats counts the names of every pool.
func (s *Service) PoolStats(ctx context.Context) ([]mgmtapi.PoolStats, error) {
	ps, err := s.st.PoolStats(ctx)
	return wireAll(ps, wirePoolStats), err
}

// PoolNames lists the names of the pools f selects.
func (s *Service) PoolNames(ctx context.Context, f PoolFilter) ([]mgmtapi.PoolName, error) {
	ns, err := s.st.PoolNames(ctx, f)
	return wireAll(ns, wirePoolName), err
}

// Images lists the images with their uploads and the products that use them.
func (s *Service) Images(ctx context.Context) ([]mgmtapi.ImageView, error) {
	imgs, err := s.st.Images(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := s.st.Products(ctx)
	out := make([]mgmtapi.ImageView, 0, len(imgs))
	for _, i := range imgs {
		out = append(out, s.imageView(ctx, i, ps))
	}
	return out, err
}

// Image returns one image with its upload and the products that use it.
func (s *Service) Image(ctx context.Context, name string) (mgmtapi.ImageView, error) {
	img, err := s.st.Image(ctx, name)
	if err != nil {
		return mgmtapi.ImageView{}, err
	}
	ps, err := s.st.Products(ctx)
	return s.imageView(ctx, img, ps), err
}

func (s *Service) imageView(ctx context.Context, img store.Image, products []store.Product) mgmtapi.ImageView {
	v := mgmtapi.ImageView{Image: s.wireImageSites(ctx, img), ActiveFor: []string{}, URL: ImagePath(img.Name), ManifestURL: ManifestPath(img.Name)}
	if st, err := s.Upload(ctx, img.Name); err == nil {
		v.Uploaded = st.Offset
	}
	for _, p := range products {
		if p.Image == img.Name {
			v.ActiveFor = append(v.ActiveFor, p.Code)
		}
	}
	return v
}

// ImageManifest returns the manifest an image was registered with, as uploaded.
func (s *Service) ImageManifest(ctx context.Context, name string) ([]byte, error) {
	img, err := s.st.Image(ctx, name)
	return []byte(img.Manifest), err
}

// ImageReady reports whether image name exists and is ready to be served.
func (s *Service) ImageReady(ctx context.Context, name string) (bool, error) {
	img, err := s.st.Image(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil && img.State == store.ImageReady, err
}

// Batches lists the batches in state ("" = all).
func (s *Service) Batches(ctx context.Context, state string) ([]mgmtapi.Batch, error) {
	bs, err := s.st.Batches(ctx, state)
	return wireAll(bs, wireBatch), err
}

// Batch returns one batch.
func (s *Service) Batch(ctx context.Context, id int64) (mgmtapi.Batch, error) {
	b, err := s.st.Batch(ctx, id)
	return wireBatch(b), err
}

// Boards lists the boards f selects.
func (s *Service) Boards(ctx context.Context, f BoardFilter) ([]mgmtapi.Board, error) {
	bs, err := s.st.Boards(ctx, f)
	return wireAll(bs, wireBoard), err
}

// Board returns one board with its last 100 deployments and 500 history events.
func (s *Service) Board(ctx context.Context, serial string) (mgmtapi.BoardView, error) {
	b, err := s.st.Board(ctx, serial)
	if err != nil {
		return mgmtapi.BoardView{}, err
	}
	v := mgmtapi.BoardView{Board: wireBoard(b)}
	ds, err := s.st.Deployments(ctx, store.DeploymentFilter{Serial: b.Serial, Limit: 100})
	if err != nil {
		return mgmtapi.BoardView{}, err
	}
	v.Deployments = wireAll(ds, wireDeployment)
	evs, err := s.st.BoardEvents(ctx, b.Serial, b.MAC, 500)
	v.History = wireAll(evs, wireBoardEvent)
	return v, err
}

// BoardEvents returns the newest limit events of a board's history, of those recorded
// at site ("" = at every site).
func (s *Service) BoardEvents(ctx context.Context, serial, site string, limit int) ([]mgmtapi.BoardEvent, error) {
	b, err := s.st.Board(ctx, serial)
	if err != nil {
		return nil, err
	}
	evs, err := s.st.BoardEventsAt(ctx, b.Serial, b.MAC, site, limit)
	return wireAll(evs, wireBoardEvent), err
}

// Deployments lists the deployments f selects, newest first.
func (s *Service) Deployments(ctx context.Context, f DeploymentFilter) ([]mgmtapi.Deployment, error) {
	ds, err := s.st.Deployments(ctx, f)
	return wireAll(ds, wireDeployment), err
}

// Deployment returns one deployment with its phase history.
func (s *Service) Deployment(ctx context.Context, id int64) (mgmtapi.DeploymentView, error) {
	d, err := s.st.Deployment(ctx, id)
	if err != nil {
		return mgmtapi.DeploymentView{}, err
	}
	ph, err := s.st.Phases(ctx, id)
	return mgmtapi.DeploymentView{Deployment: wireDeployment(d), Phases: wireAll(ph, wirePhase)}, err
}

// DeploymentCounts counts the deployments of site ("" = every site) by state.
func (s *Service) DeploymentCounts(ctx context.Context, site string) (map[string]int64, error) {
	counts, err := s.st.DeploymentCounts(ctx, site)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(counts))
	for _, sc := range counts {
		out[sc.State] = sc.N
	}
	return out, nil
}

// Fleet is the dashboard's starting snapshot: open deployments, those finished in
// the last hour (newest first, at most 200), the pending, active and paused
// batches, and the counts by state, as of event sequence number Seq. The
// deployments and counts are site's ("" = every site's); batches are company-wide.
// The caller fills StreamsInFlight.
func (s *Service) Fleet(ctx context.Context, site string) (mgmtapi.Fleet, error) {
	f := mgmtapi.Fleet{Seq: s.bus.Seq(), Time: s.now(), MaxStreams: s.opt.MaxStreams,
		Recent: []mgmtapi.Deployment{}, Batches: []mgmtapi.Batch{}}
	active, err := s.st.Deployments(ctx, store.DeploymentFilter{State: store.DeployOpen, Site: site, Limit: 10000})
	if err != nil {
		return f, err
	}
	f.Active = wireAll(active, wireDeployment)
	recent, err := s.st.Deployments(ctx, store.DeploymentFilter{Since: store.FormatTime(f.Time.Add(-time.Hour)), Site: site, Limit: 400})
	if err != nil {
		return f, err
	}
	for _, d := range recent {
		if d.State != store.DeployOpen && len(f.Recent) < 200 {
			f.Recent = append(f.Recent, wireDeployment(d))
		}
	}
	all, err := s.st.Batches(ctx, "")
	if err != nil {
		return f, err
	}
	for _, b := range all {
		if b.State == store.BatchActive || b.State == store.BatchPaused || b.State == store.BatchPending {
			f.Batches = append(f.Batches, wireBatch(b))
		}
	}
	f.Counts, err = s.DeploymentCounts(ctx, site)
	return f, err
}

// AuditLog returns the audit entries f selects, newest first.
func (s *Service) AuditLog(ctx context.Context, f AuditFilter) ([]mgmtapi.AuditEntry, error) {
	l, err := s.st.AuditLog(ctx, f)
	return wireAll(l, wireAudit), err
}

// Users lists the dashboard users (never their password hashes).
func (s *Service) Users(ctx context.Context) ([]mgmtapi.User, error) {
	us, err := s.st.Users(ctx)
	return wireAll(us, wireUser), err
}

// ProfileLinks lists which profile is attached where.
func (s *Service) ProfileLinks(ctx context.Context) ([]mgmtapi.ProfileLink, error) {
	ls, err := s.st.ProfileLinks(ctx)
	return wireAll(ls, wireProfileLink), err
}

// Health checks the database: it reads the schema version and, after a failed
// write, probes with a write of its own (so it turns healthy again by itself once
// the disk has room). It returns the schema version.
func (s *Service) Health(ctx context.Context) (int, error) {
	v, err := s.st.Version(ctx)
	if err != nil {
		return 0, fmt.Errorf("database read: %w", err)
	}
	if werr, at := s.st.WriteError(); werr != nil {
		if err := s.st.Probe(ctx); err != nil {
			return v, fmt.Errorf("database write failed at %s: %w", at.UTC().Format(time.RFC3339), werr)
		}
	}
	return v, nil
}

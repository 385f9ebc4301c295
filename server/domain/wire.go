package domain

import (
	"encoding/json"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// The store's rows become the management API's wire types (server/mgmtapi) here and
// nowhere else. Rows whose fields are the wire type's, one for one, convert
// directly: a column added to the store does not compile here until someone decides
// whether the API shows it.

func wireVenue(v store.Venue) mgmtapi.Venue { return mgmtapi.Venue(v) }
func wireBatch(b store.Batch) mgmtapi.Batch { return mgmtapi.Batch(b) }
func wireBoard(b store.Board) mgmtapi.Board { return mgmtapi.Board(b) }
func wireBoardEvent(e store.BoardEvent) mgmtapi.BoardEvent {
	return mgmtapi.BoardEvent(e)
}
func wireDeployment(d store.Deployment) mgmtapi.Deployment { return mgmtapi.Deployment(d) }
func wirePhase(p store.Phase) mgmtapi.Phase                { return mgmtapi.Phase(p) }
func wirePoolName(n store.PoolName) mgmtapi.PoolName       { return mgmtapi.PoolName(n) }
func wirePoolStats(p store.PoolStats) mgmtapi.PoolStats    { return mgmtapi.PoolStats(p) }
func wireAudit(a store.AuditEntry) mgmtapi.AuditEntry      { return mgmtapi.AuditEntry(a) }
func wireProfileLink(l store.ProfileLink) mgmtapi.ProfileLink {
	return mgmtapi.ProfileLink(l)
}

// wireUser leaves the password hash behind.
func wireUser(u store.User) mgmtapi.User { return mgmtapi.User{Name: u.Name, CreatedAt: u.CreatedAt} }

// wireProduct leaves the stored first-boot JSON behind (ProductView decodes it).
func wireProduct(p store.Product) mgmtapi.Product {
	return mgmtapi.Product{Code: p.Code, Name: p.Name, Naming: p.Naming, Digits: p.Digits, Image: p.Image, CreatedAt: p.CreatedAt}
}

// wireProductView is the product with its decoded first-boot defaults.
func wireProductView(p store.Product) mgmtapi.ProductView {
	return mgmtapi.ProductView{Product: wireProduct(p), FirstBoot: productFirstBoot(p)}
}

// wireImage leaves the stored manifest behind (GET .../manifest serves it).
func wireImage(i store.Image) mgmtapi.Image {
	return mgmtapi.Image{Name: i.Name, Size: i.Size, SHA256: i.SHA256, CompressedSize: i.CompressedSize,
		CompressedSHA256: i.CompressedSHA256, FirstBoot: i.FirstBoot, OSRelease: i.OSRelease, State: i.State,
		CreatedAt: i.CreatedAt, ReadyAt: i.ReadyAt, P2P: i.P2P}
}

// productFirstBoot decodes a product's first-boot defaults; a row that does not
// decode (it cannot: PutProduct wrote it) shows none.
func productFirstBoot(p store.Product) agentapi.FirstBoot {
	var fb agentapi.FirstBoot
	json.Unmarshal([]byte(p.FirstBoot), &fb)
	return fb
}

// wireAll converts a list; nil stays nil (it encodes as null, as before).
func wireAll[R, W any](rows []R, f func(R) W) []W {
	if rows == nil {
		return nil
	}
	out := make([]W, len(rows))
	for i, r := range rows {
		out[i] = f(r)
	}
	return out
}

// wireSite marks the server's own site.
func wireSite(r store.Site, own string) mgmtapi.Site {
	return mgmtapi.Site{Name: r.Name, Boards: r.Boards, Deployments: r.Deployments, Open: r.Open,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, Current: r.Name == own}
}

package api

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
)

func (a *API) manageRoutes(m *gin.RouterGroup) {
	m.GET("/me", a.me)
	m.GET("/session", a.me)
	m.GET("/events", a.events)
	m.GET("/fleet", a.fleet)
	m.GET("/sites", a.listSites)

	m.GET("/venues", a.listVenues)
	m.POST("/venues", a.postVenue)
	m.GET("/venues/:code", a.getVenue)
	m.PUT("/venues/:code", a.putVenue)
	m.DELETE("/venues/:code", a.deleteVenue)

	m.GET("/products", a.listProducts)
	m.POST("/products", a.postProduct)
	m.GET("/products/:code", a.getProduct)

	m.GET("/pools", a.poolStats)
	m.GET("/pools/names", a.poolNames)
	m.POST("/pools/generate", a.poolGenerate)
	m.POST("/pools/import", a.poolImport)
	m.GET("/pools/export", a.poolExport)
	m.POST("/pools/names/:name/retire", a.poolRetire(true))
	m.POST("/pools/names/:name/unretire", a.poolRetire(false))
	m.POST("/pools/names/:name/release", a.poolRelease)
	m.POST("/pools/release-unused", a.poolReleaseUnused)

	m.GET("/images", a.listImages)
	m.GET("/images/:name", a.getImage)
	m.DELETE("/images/:name", a.deleteImage)
	m.GET("/images/:name/manifest", a.getManifest)
	m.PUT("/images/:name/manifest", a.putManifest)
	m.GET("/images/:name/upload", a.uploadState)
	m.HEAD("/images/:name/upload", a.uploadState)
	m.PUT("/images/:name/data", a.putData)
	m.POST("/images/:name/activate", a.activateImage)
	m.POST("/images/:name/p2p", a.setImageP2P)
	m.POST("/images/:name/pull", a.pullImage)

	m.GET("/batches", a.listBatches)
	m.POST("/batches", a.postBatch)
	m.GET("/batches/:id", a.getBatch)
	m.POST("/batches/:id/pause", a.changeBatch(domain.BatchPause))
	m.POST("/batches/:id/resume", a.changeBatch(domain.BatchResume))
	m.POST("/batches/:id/cancel", a.changeBatch(domain.BatchCancel))
	m.POST("/batches/:id/priority", a.changeBatch(domain.BatchPriority))
	m.POST("/batches/:id/p2p", a.setBatchP2P)

	m.GET("/boards", a.listBoards)
	m.GET("/boards/:serial", a.getBoard)
	m.POST("/boards/:serial/reimage", a.reimageBoard)
	m.PUT("/boards/:serial/reimage", a.reimageBoard)
	m.GET("/boards/:serial/events", a.boardEvents)

	m.GET("/deployments", a.listDeployments)
	m.GET("/deployments/:id", a.getDeployment)
	m.POST("/deployments/:id/abandon", a.abandonDeployment)

	m.GET("/audit", a.audit)

	a.eepromRoutes(m)
	a.profileRoutes(m)

	m.GET("/users", a.listUsers)
	m.PUT("/users/:name", a.putUser)
	m.DELETE("/users/:name", a.deleteUser)
}

// ok writes v, or the error.
func ok[T any](c *gin.Context, v T, err error) {
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// querySite reads ?site=NAME, the site a list is filtered by; "" (no parameter) is
// every site. A name that cannot be a site is answered 400.
func querySite(c *gin.Context) (string, bool) {
	site := c.Query("site")
	if site == "" {
		return "", true
	}
	if err := domain.ValidSite(site); err != nil {
		failErr(c, err)
		return "", false
	}
	return site, true
}

func (a *API) listSites(c *gin.Context) {
	s, err := a.svc.Sites(c.Request.Context())
	ok(c, s, err)
}

func queryInt(c *gin.Context, key string) (int, bool) {
	v := c.Query(key)
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		fail(c, http.StatusBadRequest, key+" "+strconv.Quote(v)+" is not a number", key)
		return 0, false
	}
	return n, true
}

func (a *API) listVenues(c *gin.Context) {
	v, err := a.svc.Venues(c.Request.Context())
	ok(c, v, err)
}

type venueBody struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

func (a *API) postVenue(c *gin.Context) {
	var b venueBody
	if !bindJSON(c, &b, 4<<10) {
		return
	}
	v, err := a.svc.PutVenue(c.Request.Context(), b.Code, b.Name)
	ok(c, v, err)
}

func (a *API) putVenue(c *gin.Context) {
	var b venueBody
	if !bindJSON(c, &b, 4<<10) {
		return
	}
	if b.Code != "" && b.Code != c.Param("code") {
		fail(c, http.StatusBadRequest, "code in body and URL differ", "code")
		return
	}
	v, err := a.svc.PutVenue(c.Request.Context(), c.Param("code"), b.Name)
	ok(c, v, err)
}

func (a *API) getVenue(c *gin.Context) {
	v, err := a.svc.Venue(c.Request.Context(), c.Param("code"))
	ok(c, v, wrapNotFound(err, "venue", c.Param("code")))
}

func (a *API) deleteVenue(c *gin.Context) {
	err := a.svc.DeleteVenue(c.Request.Context(), c.Param("code"))
	ok(c, gin.H{"deleted": c.Param("code")}, err)
}

func wrapNotFound(err error, what, key string) error {
	if err == domain.ErrNotFound {
		return fmt.Errorf("%s %q: %w", what, key, err)
	}
	return err
}

func (a *API) listProducts(c *gin.Context) {
	ps, err := a.svc.Products(c.Request.Context())
	ok(c, ps, err)
}

func (a *API) getProduct(c *gin.Context) {
	p, err := a.svc.Product(c.Request.Context(), c.Param("code"))
	ok(c, p, wrapNotFound(err, "product", c.Param("code")))
}

func (a *API) postProduct(c *gin.Context) {
	var ps domain.ProductSpec
	if !bindJSON(c, &ps, 16<<10) {
		return
	}
	p, err := a.svc.PutProduct(c.Request.Context(), ps)
	ok(c, p, err)
}

func (a *API) poolStats(c *gin.Context) {
	s, err := a.svc.PoolStats(c.Request.Context())
	ok(c, s, err)
}

func (a *API) poolNames(c *gin.Context) {
	n, err := a.svc.PoolNames(c.Request.Context(), domain.PoolFilter{Venue: c.Query("venue"), Product: c.Query("product"),
		Free: c.Query("free") == "1" || c.Query("free") == "true"})
	ok(c, n, err)
}

type generateBody struct {
	Venue   string `json:"venue"`
	Product string `json:"product"`
	Count   int    `json:"count"`
	Start   int    `json:"start,omitempty"`
}

func (a *API) poolGenerate(c *gin.Context) {
	var b generateBody
	if !bindJSON(c, &b, 4<<10) {
		return
	}
	names, err := a.svc.GeneratePool(c.Request.Context(), b.Venue, b.Product, b.Count, b.Start)
	ok(c, gin.H{"added": len(names), "names": names}, err)
}

func (a *API) poolImport(c *gin.Context) {
	n, err := a.svc.ImportPool(c.Request.Context(), c.Query("venue"), c.Query("product"),
		http.MaxBytesReader(c.Writer, c.Request.Body, 32<<20))
	ok(c, gin.H{"added": n}, err)
}

func (a *API) poolExport(c *gin.Context) {
	var buf bytes.Buffer
	if err := a.svc.ExportPool(c.Request.Context(), c.Query("venue"), c.Query("product"), &buf); err != nil {
		failErr(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="pool.csv"`)
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}

func (a *API) poolRetire(retired bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := a.svc.RetirePoolName(c.Request.Context(), c.Param("name"), retired)
		ok(c, p, err)
	}
}

func (a *API) poolRelease(c *gin.Context) {
	p, err := a.svc.ReleasePoolName(c.Request.Context(), c.Param("name"))
	ok(c, p, err)
}

type releaseUnusedBody struct {
	Venue   string `json:"venue,omitempty"`
	Product string `json:"product,omitempty"`
	DryRun  bool   `json:"dry_run,omitempty"`
}

// poolReleaseUnused: POST /api/v1/pools/release-unused — unbind every name no card
// can carry (see domain.ReleaseUnused).
func (a *API) poolReleaseUnused(c *gin.Context) {
	var b releaseUnusedBody
	if !bindJSON(c, &b, 4<<10) {
		return
	}
	names, err := a.svc.ReleaseUnused(c.Request.Context(), b.Venue, b.Product, b.DryRun)
	ok(c, gin.H{"released": len(names), "names": names, "dry_run": b.DryRun}, err)
}

func (a *API) listImages(c *gin.Context) {
	imgs, err := a.svc.Images(c.Request.Context())
	ok(c, imgs, err)
}

func (a *API) getImage(c *gin.Context) {
	img, err := a.svc.Image(c.Request.Context(), c.Param("name"))
	ok(c, img, wrapNotFound(err, "image", c.Param("name")))
}

func (a *API) getManifest(c *gin.Context) {
	m, err := a.svc.ImageManifest(c.Request.Context(), c.Param("name"))
	if err != nil {
		failErr(c, wrapNotFound(err, "image", c.Param("name")))
		return
	}
	c.Data(http.StatusOK, "application/json", m)
}

func (a *API) deleteImage(c *gin.Context) {
	err := a.svc.DeleteImage(c.Request.Context(), c.Param("name"))
	ok(c, gin.H{"deleted": c.Param("name")}, err)
}

type activateBody struct {
	Product          string `json:"product"`
	AllowNoFirstBoot bool   `json:"allow_no_first_boot,omitempty"` // accept an image without a first-boot mechanism
}

func (a *API) activateImage(c *gin.Context) {
	var b activateBody
	if !bindJSON(c, &b, 4<<10) {
		return
	}
	p, err := a.svc.ActivateImage(c.Request.Context(), c.Param("name"), b.Product, b.AllowNoFirstBoot)
	ok(c, p, err)
}

// pullBody is the body of POST /images/:name/pull.
type pullBody struct {
	From string `json:"from"` // the site to pull from; "": any that holds it ready
}

// pullImage: POST /api/v1/images/:name/pull — start pulling a ready image from
// another site (202 with where it stands; 200 when this site holds it already).
func (a *API) pullImage(c *gin.Context) {
	var b pullBody
	if !bindJSON(c, &b, 4<<10) {
		return
	}
	st, err := a.svc.PullImage(c.Request.Context(), c.Param("name"), b.From)
	if err != nil {
		failErr(c, err)
		return
	}
	code := http.StatusAccepted
	if st.State == mgmtapi.ImageReady {
		code = http.StatusOK
	}
	c.JSON(code, st)
}

// p2pBody is the body of POST /images/:name/p2p and /batches/:id/p2p.
type p2pBody struct {
	P2P string `json:"p2p"` // on, off or inherit
}

func (a *API) setImageP2P(c *gin.Context) {
	var b p2pBody
	if !bindJSON(c, &b, 4<<10) {
		return
	}
	img, err := a.svc.SetImageP2P(c.Request.Context(), c.Param("name"), b.P2P)
	ok(c, img, err)
}

func (a *API) setBatchP2P(c *gin.Context) {
	id, good := idParam(c)
	if !good {
		return
	}
	var b p2pBody
	if !bindJSON(c, &b, 4<<10) {
		return
	}
	bt, err := a.svc.SetBatchP2P(c.Request.Context(), id, b.P2P)
	ok(c, bt, err)
}

func (a *API) listBatches(c *gin.Context) {
	b, err := a.svc.Batches(c.Request.Context(), c.Query("state"))
	ok(c, b, err)
}

func (a *API) postBatch(c *gin.Context) {
	var bs domain.BatchSpec
	if !bindJSON(c, &bs, 16<<10) {
		return
	}
	b, err := a.svc.AddBatch(c.Request.Context(), bs)
	ok(c, b, err)
}

func (a *API) getBatch(c *gin.Context) {
	id, good := idParam(c)
	if !good {
		return
	}
	b, err := a.svc.Batch(c.Request.Context(), id)
	ok(c, b, wrapNotFound(err, "batch", c.Param("id")))
}

type priorityBody struct {
	Priority int `json:"priority"`
}

func (a *API) changeBatch(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, good := idParam(c)
		if !good {
			return
		}
		var pb priorityBody
		if action == domain.BatchPriority && !bindJSON(c, &pb, 4<<10) {
			return
		}
		b, err := a.svc.ChangeBatch(c.Request.Context(), id, action, pb.Priority)
		ok(c, b, err)
	}
}

func (a *API) listBoards(c *gin.Context) {
	limit, good := queryInt(c, "limit")
	if !good {
		return
	}
	site, good := querySite(c)
	if !good {
		return
	}
	b, err := a.svc.Boards(c.Request.Context(), domain.BoardFilter{Search: c.Query("q"), Site: site, Limit: limit})
	ok(c, b, err)
}

func (a *API) getBoard(c *gin.Context) {
	b, err := a.svc.Board(c.Request.Context(), c.Param("serial"))
	ok(c, b, wrapNotFound(err, "board", c.Param("serial")))
}

type reimageBody struct {
	Reimage *bool `json:"reimage"`
}

func (a *API) reimageBoard(c *gin.Context) {
	var b reimageBody
	if !bindJSON(c, &b, 4<<10) {
		return
	}
	flag := b.Reimage == nil || *b.Reimage
	bd, err := a.svc.SetReimage(c.Request.Context(), c.Param("serial"), flag)
	ok(c, bd, err)
}

func (a *API) listDeployments(c *gin.Context) {
	limit, good := queryInt(c, "limit")
	if !good {
		return
	}
	batch, good := queryInt(c, "batch")
	if !good {
		return
	}
	site, good := querySite(c)
	if !good {
		return
	}
	var since, until string
	for _, tq := range []struct {
		key string
		dst *string
	}{{"since", &since}, {"until", &until}} {
		if v := c.Query(tq.key); v != "" {
			ts, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				fail(c, http.StatusBadRequest, tq.key+" "+strconv.Quote(v)+" is not an RFC 3339 time", tq.key)
				return
			}
			*tq.dst = domain.FormatTime(ts)
		}
	}
	ds, err := a.svc.Deployments(c.Request.Context(), domain.DeploymentFilter{State: c.Query("state"),
		Venue: c.Query("venue"), Product: c.Query("product"), BatchID: int64(batch), Serial: c.Query("serial"),
		Search: c.Query("q"), Since: since, Until: until, Site: site, Limit: limit})
	if err != nil {
		failErr(c, err)
		return
	}
	if c.Query("format") == "csv" {
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		w.Write([]string{"id", "serial", "mac", "hostname", "venue", "product", "batch", "image", "state", "phase",
			"bytes", "total", "error_phase", "error", "sha256", "duration_ms", "started_at", "finished_at", "site"})
		for _, d := range ds {
			w.Write([]string{fmt.Sprint(d.ID), d.Serial, d.MAC, d.Hostname, d.Venue, d.Product, fmt.Sprint(d.BatchID), d.Image,
				d.State, d.Phase, fmt.Sprint(d.Bytes), fmt.Sprint(d.Total), d.ErrorPhase, d.Error, d.SHA256,
				fmt.Sprint(d.DurationMS), d.StartedAt, d.FinishedAt, d.Site})
		}
		w.Flush()
		c.Header("Content-Disposition", `attachment; filename="deployments.csv"`)
		c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
		return
	}
	c.JSON(http.StatusOK, ds)
}

func (a *API) getDeployment(c *gin.Context) {
	id, good := idParam(c)
	if !good {
		return
	}
	d, err := a.svc.Deployment(c.Request.Context(), id)
	ok(c, d, wrapNotFound(err, "deployment", c.Param("id")))
}

type abandonBody struct {
	Reason string `json:"reason"`
}

func (a *API) abandonDeployment(c *gin.Context) {
	id, good := idParam(c)
	if !good {
		return
	}
	var b abandonBody
	if !bindJSON(c, &b, 4<<10) {
		return
	}
	d, err := a.svc.AbandonDeployment(c.Request.Context(), id, b.Reason)
	ok(c, d, err)
}

func (a *API) audit(c *gin.Context) {
	limit, good := queryInt(c, "limit")
	if !good {
		return
	}
	l, err := a.svc.AuditLog(c.Request.Context(), domain.AuditFilter{Actor: c.Query("actor"), Action: c.Query("action"),
		Object: c.Query("object"), Limit: limit})
	ok(c, l, err)
}

func (a *API) listUsers(c *gin.Context) {
	u, err := a.svc.Users(c.Request.Context())
	ok(c, u, err)
}

type userBody struct {
	Password string `json:"password"`
}

func (a *API) putUser(c *gin.Context) {
	var b userBody
	if !bindJSON(c, &b, 4<<10) {
		return
	}
	err := a.svc.PutUser(c.Request.Context(), c.Param("name"), b.Password)
	ok(c, gin.H{"user": c.Param("name")}, err)
}

func (a *API) deleteUser(c *gin.Context) {
	err := a.svc.DeleteUser(c.Request.Context(), c.Param("name"))
	ok(c, gin.H{"deleted": c.Param("name")}, err)
}

func (a *API) boardEvents(c *gin.Context) {
	limit, good := queryInt(c, "limit")
	if !good {
		return
	}
	site, good := querySite(c)
	if !good {
		return
	}
	ev, err := a.svc.BoardEvents(c.Request.Context(), c.Param("serial"), site, limit)
	ok(c, ev, wrapNotFound(err, "board", c.Param("serial")))
}

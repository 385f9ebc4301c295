package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/swarm"
)

// swarmRoutes adds the swarm endpoints of the agent API (docs/api.md "Swarm") and
// the operators' view of the swarms.
func (a *API) swarmRoutes(agent, manage *gin.RouterGroup) {
	agent.GET("/deployments/:id/swarm/torrent", a.swarmTorrent)
	agent.POST("/deployments/:id/swarm/announce", a.swarmAnnounce)
	manage.GET("/swarm", a.swarmList)
}

func init() {
	for _, r := range []string{"GET /api/v1/deployments/:id/swarm/torrent", "POST /api/v1/deployments/:id/swarm/announce"} {
		PublicRoutes[r], agentRoutes[r] = true, true
	}
}

// ctxStreamDeployment is the gin context key under which claimStream leaves the
// deployment ID of an authenticated image download.
const ctxStreamDeployment = "stream-deployment"

// swarmPieceTurn: a board's download of one whole swarm piece (HeaderSwarmPiece, and
// Range exactly that piece) that the server is sending to another board now is
// answered 503 with Retry-After once (swarm.Registry.SendTurn): the board takes it
// from that board meanwhile. Any other download passes as it is.
func (a *API) swarmPieceTurn(c *gin.Context) {
	v, isStream := c.Get(ctxStreamDeployment)
	hdr := c.GetHeader(agentapi.HeaderSwarmPiece)
	if a.opt.Swarm == nil || !isStream || hdr == "" {
		c.Next()
		return
	}
	name := strings.TrimSuffix(c.Param("file"), ".img.zst")
	piece, err := strconv.Atoi(hdr)
	off, n, ok := a.opt.Swarm.PieceRange(name, piece)
	if err != nil || !ok || c.GetHeader("Range") != fmt.Sprintf("bytes=%d-%d", off, off+n-1) {
		c.Next() // not one whole piece: served as asked, never declined
		return
	}
	done := a.opt.Swarm.SendTurn(name, v.(int64), piece)
	if done == nil {
		c.Header("Retry-After", strconv.Itoa(int(swarm.Busy/time.Second)))
		fail(c, http.StatusServiceUnavailable, fmt.Sprintf("piece %d is being sent to another board: take it from that board, or ask again after %v", piece, swarm.Busy), "")
		return
	}
	defer done()
	c.Next()
	// The handler returns once sendfile has handed the piece to the socket, and the
	// socket may hold all of it: the piece counts as being sent until the board
	// has acknowledged it (at most sendDrainMax longer; the board gone ends it).
	conn := requestConn(c.Request.Context())
	if conn == nil {
		return
	}
	deadline := time.Now().Add(sendDrainMax)
	for time.Now().Before(deadline) && c.Request.Context().Err() == nil {
		if n, ok := unsent(conn); !ok || n == 0 {
			return
		}
		time.Sleep(sendDrainPoll)
	}
}

// How long, and how often, a piece's send is watched after its handler returned,
// until the board has acknowledged every byte (swarmPieceTurn).
const (
	sendDrainMax  = 5 * time.Second
	sendDrainPoll = 10 * time.Millisecond
)

type connKey struct{}

// ConnContext is the http.Server.ConnContext hook that lets a handler find its
// connection (swarmPieceTurn watches a piece's bytes leave the socket).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// requestConn is the connection under a request with TLS's layer taken off (the
// connection limiter's connlimit.Conn gives its descriptor as *net.TCPConn does, so
// unsent reads either); nil if unknown.
func requestConn(ctx context.Context) net.Conn {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return c
		}
		c = u.NetConn()
	}
}

// swarmHelloWait is how long a hello waits for its image's metainfo.
const swarmHelloWait = 3 * time.Second

// swarmHello adds the swarm invitation to a deployment of a hello answer when P2P is
// on and the image's metainfo is ready (it is computed in the background on the first
// hello for an image; until then boards fetch over HTTP alone). p2p are the modes
// the hello's allocation read; when not Known (a re-hello) they are read now.
func (a *API) swarmHello(c *gin.Context, d *agentapi.Deployment, p2p domain.P2PModes) {
	if a.opt.Swarm == nil {
		return
	}
	on, err := p2p.On(a.opt.P2P), error(nil)
	if !p2p.Known { // a re-hello: its batch was not read
		on, err = a.svc.P2PFor(c.Request.Context(), d.ID, a.opt.P2P)
	}
	if err != nil || !on {
		if err != nil {
			a.log.Warn("swarm mode unknown; HTTP only", "deployment", d.ID, "err", err)
		}
		return
	}
	hash, err := a.opt.Swarm.Prepare(d.Image.Name, a.svc.ImageFile(d.Image.Name))
	if errors.Is(err, swarm.ErrNotReady) {
		// The first hello for an image starts its piece hashes; a small image is
		// ready in moments, so wait a little before sending this board to HTTP alone.
		hash, err = a.opt.Swarm.Wait(c.Request.Context(), d.Image.Name, swarmHelloWait)
	}
	if err != nil {
		if !errors.Is(err, swarm.ErrNotReady) {
			a.log.Warn("swarm unavailable; HTTP only", "image", d.Image.Name, "err", err)
		}
		return
	}
	base := baseURL(c.Request)
	d.Image.Swarm = &agentapi.Swarm{
		InfoHash:    hash.HexString(),
		TorrentURL:  base + fmt.Sprintf(agentapi.PathSwarmTorrent, d.ID),
		AnnounceURL: base + fmt.Sprintf(agentapi.PathSwarmAnnounce, d.ID),
		IntervalMS:  a.opt.Swarm.Interval().Milliseconds(),
	}
}

// swarmTorrent: GET /api/v1/deployments/:id/swarm/torrent, with the deployment's
// secret: the metainfo of its image, the image download URL as web seed.
func (a *API) swarmTorrent(c *gin.Context) {
	id, ok := a.swarmID(c)
	if !ok {
		return
	}
	d, err := a.svc.SwarmMember(c.Request.Context(), id, c.GetHeader(agentapi.HeaderSecret), nil)
	if err != nil {
		failErr(c, err)
		return
	}
	if !a.swarmOn(c, d.ID) {
		return
	}
	b, err := a.opt.Swarm.Torrent(d.Image, a.svc.ImageFile(d.Image), baseURL(c.Request)+"/images/"+d.Image+".img.zst")
	if err != nil {
		failErr(c, err)
		return
	}
	c.Data(http.StatusOK, "application/x-bittorrent", b)
}

// swarmOn answers 404 and reports false when deployment id's board is not invited
// into a swarm (its batch's, image's or the server's mode is off).
func (a *API) swarmOn(c *gin.Context, id int64) bool {
	on, err := a.svc.P2PFor(c.Request.Context(), id, a.opt.P2P)
	if err != nil {
		failErr(c, err)
		return false
	}
	if !on {
		fail(c, http.StatusNotFound, "peer-to-peer distribution is off for this deployment (its batch, its image or rpi-deployd --p2p)", "")
	}
	return on
}

// swarmAnnounce: POST /api/v1/deployments/:id/swarm/announce, with the deployment's
// secret. The board is listed at the address its connection came from (never one it
// claims), once per deployment.
func (a *API) swarmAnnounce(c *gin.Context) {
	id, ok := a.swarmID(c)
	if !ok {
		return
	}
	var in agentapi.SwarmAnnounce
	if !bindJSON(c, &in, 4<<10) {
		return
	}
	if in.Port < 0 || in.Port > 65535 {
		fail(c, http.StatusBadRequest, "port must be 0…65535", "port")
		return
	}
	if in.FromServer < 0 || in.FromPeers < 0 || in.Uploaded < 0 {
		fail(c, http.StatusBadRequest, "byte counts must not be negative", "")
		return
	}
	// What a board says it got from peers counts towards keeping its name after a
	// failure (releaseUnstreamed), but never more than the other boards of its swarm
	// say they sent: one host alone cannot keep names by claiming peer bytes.
	fromPeers := func(image string) int64 { return min(in.FromPeers, a.opt.Swarm.SentToOthers(image, id)) }
	d, err := a.svc.SwarmMember(c.Request.Context(), id, c.GetHeader(agentapi.HeaderSecret), fromPeers)
	if err != nil {
		failErr(c, err)
		return
	}
	if !in.Leaving && !a.swarmOn(c, d.ID) {
		return
	}
	if in.Leaving {
		a.opt.Swarm.Leave(d.Image, d.ID)
		c.JSON(http.StatusOK, agentapi.SwarmAnswer{IntervalMS: a.opt.Swarm.Interval().Milliseconds()})
		return
	}
	if len(in.BadPeers) > 16 {
		in.BadPeers = in.BadPeers[:16]
	}
	m := swarm.Member{Deployment: d.ID, Serial: d.Serial, Image: d.Image,
		IP: remoteIP(c.Request), Port: in.Port, FromServer: in.FromServer, FromPeers: in.FromPeers,
		Uploaded: in.Uploaded, Done: in.Done || d.State != "open"}
	if len(in.BadPeers) > 0 {
		a.opt.Swarm.Accuse(d.Image, m, in.BadPeers)
	}
	ans := a.opt.Swarm.Announce(m)
	c.JSON(http.StatusOK, ans)
}

// swarmList: GET /api/v1/swarm (operators): every board heard from recently, with the
// bytes it got from the server and from peers, and the server's image upload rate;
// enabled when P2P is on by default or some board is in a swarm.
func (a *API) swarmList(c *gin.Context) {
	out := mgmtapi.Swarm{Members: []mgmtapi.SwarmMember{},
		ServerUploadBps: a.upload.sample(time.Now(), a.Metrics.BytesServed())}
	if a.opt.Swarm != nil {
		for _, m := range a.opt.Swarm.Members() {
			out.Members = append(out.Members, mgmtapi.SwarmMember{Deployment: m.Deployment, Serial: m.Serial,
				Image: m.Image, IP: m.IP, Port: m.Port, FromServer: m.FromServer, FromPeers: m.FromPeers,
				Uploaded: m.Uploaded, Done: m.Done, Seeding: m.Seeding, LastSeen: m.LastSeen})
		}
	}
	// On by default, or some board in a swarm now (an image or batch turned it on).
	out.Enabled = a.opt.Swarm != nil && (a.opt.P2P || len(out.Members) > 0)
	c.JSON(http.StatusOK, out)
}

// uploadMeter turns the image bytes counter into a rate: bytes per second since the
// previous sample at least a second ago (the first sample says 0).
type uploadMeter struct {
	mu    sync.Mutex
	at    time.Time
	bytes int64
	rate  float64
}

func (u *uploadMeter) sample(now time.Time, bytes int64) float64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if dt := now.Sub(u.at); !u.at.IsZero() && dt < time.Second {
		return u.rate
	} else if !u.at.IsZero() {
		u.rate = float64(bytes-u.bytes) / dt.Seconds()
	}
	u.at, u.bytes = now, bytes
	return u.rate
}

// swarmID returns the deployment :id of a swarm request; it answers 404 when
// peer-to-peer distribution is off, or 400 for an id that is not one, and returns false.
func (a *API) swarmID(c *gin.Context) (int64, bool) {
	if a.opt.Swarm == nil {
		fail(c, http.StatusNotFound, "peer-to-peer distribution is off (rpi-deployd --p2p=off)", "")
		return 0, false
	}
	return idParam(c)
}

// Package mgmtapi holds the wire types of rpi-deployd's management API (JSON over
// HTTP under /api/v1, docs/api.md) and of the event stream the dashboard follows
// (/api/v1/events). The handlers (server/api), the domain layer that fills them
// (server/domain), the Go client's users (server/cli, server/servertest, the fleet
// simulator) and the dashboard's JavaScript all speak these types, as agent/agentapi
// is the agent API's contract. Nothing here knows the database: the store's rows are
// converted into these types by the domain layer, so a schema change is not an API
// change. It depends on the standard library, agent/agentapi, server/profile (the
// first-boot profile model, shown redacted) and server/internal/jsonstr only; it
// must never link SQLite or Gin.
//
// Times are strings in the store's fixed UTC format, 2006-01-02T15:04:05.000000000Z,
// unless a field says otherwise.
package mgmtapi

import (
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/profile"
)

// States of a deployment.
const (
	DeployOpen      = "open"      // allocated; the agent is working
	DeployVerified  = "verified"  // terminal: the card was read back and matched
	DeployFailed    = "failed"    // terminal: the agent reported a failure
	DeployAbandoned = "abandoned" // terminal: closed by an operator or superseded
)

// States of a batch.
const (
	BatchPending   = "pending"
	BatchActive    = "active"
	BatchPaused    = "paused"
	BatchComplete  = "complete"
	BatchCancelled = "cancelled"
)

// Batch actions: POST /api/v1/batches/{id}/{action}.
const (
	BatchPause    = "pause"
	BatchResume   = "resume"
	BatchCancel   = "cancel"
	BatchPriority = "priority"
)

// States of an image.
const (
	ImageUploading = "uploading" // manifest registered, bytes arriving
	ImageReady     = "ready"     // complete and checked; may be deployed
)

// How a product names its boards.
const (
	NamingPool   = "pool"   // the next free name of the venue's pool: KXP2-CORO-001
	NamingSerial = "serial" // the board serial's low 8 hex digits: RXP2-ARIA-ABC12345
)

// Scopes a profile attaches to.
const (
	ScopeProduct = "product"
	ScopeVenue   = "venue"
	ScopeBatch   = "batch"
)

// Venue is a site boards are deployed for.
type Venue struct {
	Code      string `json:"code"` // 4 upper-case letters
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

// Product is a kind of board and how its boards are named. The event stream
// (product.changed) carries this; the API answers with ProductView.
type Product struct {
	Code      string `json:"code"`
	Name      string `json:"name"`
	Naming    string `json:"naming"`       // NamingPool or NamingSerial
	Digits    int    `json:"digits"`       // width of pool numbers (pool naming), default 3
	Image     string `json:"active_image"` // active image, "" when none
	CreatedAt string `json:"created_at"`
}

// ProductView is a product with its decoded first-boot defaults.
type ProductView struct {
	Product
	FirstBoot agentapi.FirstBoot `json:"first_boot"`
}

// ProductSpec is a product as an operator defines it: POST /api/v1/products.
type ProductSpec struct {
	Code      string              `json:"code"`   // 2–8 upper-case letters or digits, e.g. KXP2
	Name      string              `json:"name"`   // human name
	Naming    string              `json:"naming"` // "pool" or "serial"
	Digits    int                 `json:"digits"` // pool number width, default 3
	FirstBoot *agentapi.FirstBoot `json:"first_boot,omitempty"`
}

// PoolStats counts the names of one venue's pool for one product.
type PoolStats struct {
	Venue   string `json:"venue"`
	Product string `json:"product"`
	Total   int    `json:"total"`
	Bound   int    `json:"bound"`
	Retired int    `json:"retired"`
	Free    int    `json:"free"`
}

// PoolName is one name of a pool.
type PoolName struct {
	Name      string `json:"name"`
	Venue     string `json:"venue"`
	Product   string `json:"product"`
	Seq       int    `json:"seq"`
	Serial    string `json:"serial,omitempty"` // the board holding it; "" while free
	BoundAt   string `json:"bound_at,omitempty"`
	Retired   bool   `json:"retired"`
	CreatedAt string `json:"created_at"`
}

// Image is a packed master image. The event stream (image.changed) carries this;
// the API answers with ImageView.
type Image struct {
	Name             string `json:"name"`
	Size             int64  `json:"size"` // raw bytes
	SHA256           string `json:"sha256"`
	CompressedSize   int64  `json:"compressed_size"`
	CompressedSHA256 string `json:"compressed_sha256,omitempty"`
	FirstBoot        string `json:"first_boot"` // the mechanism: firstrun, cloud-init, custom.toml or ""
	OSRelease        string `json:"os_release,omitempty"`
	State            string `json:"state"` // ImageUploading or ImageReady
	CreatedAt        string `json:"created_at"`
	ReadyAt          string `json:"ready_at,omitempty"`
	// P2P is the image's peer-to-peer mode: "on", "off" or "inherit" (rpi-deployd
	// --p2p decides), unless its batch says otherwise.
	P2P string `json:"p2p"`
	// Sites are the servers (rpi-deployd --site) that hold the image or are pulling
	// it, by site name; empty when no site has recorded it (a server before
	// migration 0035, or an event that does not carry them).
	Sites []ImageSite `json:"sites,omitempty"`
}

// ImageSite is one site's copy of an image.
type ImageSite struct {
	Site   string `json:"site"`
	State  string `json:"state"`            // ImageSitePulling or ImageSiteReady
	Bytes  int64  `json:"bytes"`            // verified bytes held (the compressed size when ready)
	Source string `json:"source,omitempty"` // the site it was pulled from; "" for an upload
	// Error is why the last pull of this site stopped, as that server said it; ""
	// when it did not fail. Only the pulling server knows it (not stored).
	Error string `json:"error,omitempty"`
}

// Image site states.
const (
	ImageSitePulling = "pulling"
	ImageSiteReady   = "ready"
)

// ImageView is an image with where its upload stands and which products use it.
type ImageView struct {
	Image
	Uploaded    int64    `json:"uploaded"`   // bytes received
	ActiveFor   []string `json:"active_for"` // product codes
	URL         string   `json:"url"`        // path of the packed image
	ManifestURL string   `json:"manifest_url"`
}

// UploadState is where an image upload stands.
type UploadState struct {
	Name   string `json:"name"`
	State  string `json:"state"`  // uploading or ready
	Offset int64  `json:"offset"` // bytes received so far (== size when ready)
	Size   int64  `json:"size"`   // compressed size expected
}

// Batch is "deploy Count boards of Product for Venue".
type Batch struct {
	ID        int64  `json:"id"`
	Venue     string `json:"venue"`
	Product   string `json:"product"`
	Image     string `json:"image"` // "" = the product's active image
	Count     int    `json:"count"` // 0 = open-ended
	Priority  int    `json:"priority"`
	State     string `json:"state"`
	Done      int    `json:"done"`        // verified deployments
	InFlight  int    `json:"in_progress"` // open deployments
	Failed    int    `json:"failed"`      // failed deployments
	Note      string `json:"note,omitempty"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	// P2P is the batch's peer-to-peer mode for its boards: "on", "off" or "inherit"
	// (the image's mode decides, else rpi-deployd --p2p).
	P2P string `json:"p2p"`
}

// BatchSpec is a batch as an operator asks for it: POST /api/v1/batches.
type BatchSpec struct {
	Venue    string `json:"venue"`
	Product  string `json:"product"`
	Image    string `json:"image,omitempty"` // "" = the product's active image at each hello
	Count    int    `json:"count"`           // 0 = open-ended
	Priority int    `json:"priority"`
	Paused   bool   `json:"paused,omitempty"` // create it pending (resume starts it) instead of active
	Note     string `json:"note,omitempty"`
	// AllowNoFirstBoot lets the batch use an image without a first-boot mechanism
	// (boards flashed with it keep the image's own hostname). Default false: refused.
	AllowNoFirstBoot bool `json:"allow_no_first_boot,omitempty"`
}

// Board is one Raspberry Pi the server has seen.
type Board struct {
	Serial    string `json:"serial"` // 16 lower-case hex digits
	MAC       string `json:"mac"`
	Model     string `json:"model,omitempty"`
	Revision  string `json:"revision,omitempty"`
	IP        string `json:"ip,omitempty"`
	Hostname  string `json:"hostname,omitempty"`
	Image     string `json:"image,omitempty"` // image of the last verified deployment
	Deployed  bool   `json:"deployed"`        // its card holds a verified image
	Reimage   bool   `json:"reimage"`         // re-image on next boot
	LastEvent string `json:"last_event,omitempty"`
	FirstSeen string `json:"first_seen"`
	LastSeen  string `json:"last_seen"`
	Site      string `json:"site"` // the site (rpi-deployd --site) that saw it last
}

// BoardView is a board with its deployments (newest first, at most 100) and history.
type BoardView struct {
	Board
	Deployments []Deployment `json:"deployments"`
	History     []BoardEvent `json:"history"`
}

// BoardEvent is one line of a board's history (hello, netboot, results).
type BoardEvent struct {
	ID     int64  `json:"id"`
	Serial string `json:"serial,omitempty"`
	MAC    string `json:"mac,omitempty"`
	At     string `json:"at"`
	Kind   string `json:"kind"`
	Detail string `json:"detail,omitempty"`
	Site   string `json:"site"` // the site that recorded it
}

// Deployment is one attempt to flash one board.
type Deployment struct {
	ID           int64   `json:"id"`
	Serial       string  `json:"serial"`
	MAC          string  `json:"mac,omitempty"` // the board's
	BatchID      int64   `json:"batch_id,omitempty"`
	Venue        string  `json:"venue"`
	Product      string  `json:"product"`
	Hostname     string  `json:"hostname"`
	Image        string  `json:"image"`
	State        string  `json:"state"` // DeployOpen, DeployVerified, DeployFailed, DeployAbandoned
	Phase        string  `json:"phase"` // agentapi.Phase*
	Bytes        int64   `json:"bytes"`
	Total        int64   `json:"total"`
	RateBps      float64 `json:"rate_bps"`
	Message      string  `json:"message,omitempty"`
	Error        string  `json:"error,omitempty"`
	ErrorPhase   string  `json:"error_phase,omitempty"`
	SHA256       string  `json:"sha256,omitempty"`
	BytesWritten int64   `json:"bytes_written,omitempty"`
	BytesFetched int64   `json:"bytes_fetched,omitempty"`
	DurationMS   int64   `json:"duration_ms,omitempty"`
	StartedAt    string  `json:"started_at"`
	UpdatedAt    string  `json:"updated_at"`
	FinishedAt   string  `json:"finished_at,omitempty"`
	Site         string  `json:"site"` // the site it runs (ran) at: where its board said hello last
}

// DeploymentView is a deployment with its phase history.
type DeploymentView struct {
	Deployment
	Phases []Phase `json:"phases"`
}

// Phase is one phase change of a deployment.
type Phase struct {
	Phase   string `json:"phase"`
	At      string `json:"at"`
	Bytes   int64  `json:"bytes,omitempty"`
	Message string `json:"message,omitempty"`
}

// Fleet is the snapshot the dashboard starts from: GET /api/v1/fleet; then it
// follows /api/v1/events from Seq.
type Fleet struct {
	Seq             int64            `json:"seq"`     // last event included; stream with ?after=seq
	Time            time.Time        `json:"time"`    // server time
	Active          []Deployment     `json:"active"`  // open deployments
	Recent          []Deployment     `json:"recent"`  // finished in the last hour, newest first (≤ 200)
	Batches         []Batch          `json:"batches"` // pending, active and paused batches
	Counts          map[string]int64 `json:"counts"`  // deployments by state, all time
	StreamsInFlight int64            `json:"streams_in_flight"`
	MaxStreams      int              `json:"max_streams"`
}

// Site is one site: a deploy network with its own rpi-deployd (serve --site NAME);
// servers sharing one database list every site (GET /api/v1/sites).
type Site struct {
	Name        string `json:"name"`                 // [a-z0-9-]{1,32}
	Current     bool   `json:"current"`              // the site of the server that answered
	Boards      int64  `json:"boards"`               // boards it saw last
	Deployments int64  `json:"deployments"`          // deployments that run or ran there
	Open        int64  `json:"open"`                 // of them, open now
	CreatedAt   string `json:"created_at,omitempty"` // first start of a server of the site
	StartedAt   string `json:"started_at,omitempty"` // latest start; both "" for a site only rows name
}

// AuditEntry is one operator action.
type AuditEntry struct {
	ID     int64  `json:"id"`
	At     string `json:"at"`
	Actor  string `json:"actor"` // "token", "user:NAME", "cli"
	Action string `json:"action"`
	Object string `json:"object,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// User is a dashboard user; the password hash never leaves the server.
type User struct {
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

// ProfileView is a first-boot profile as the API shows it: secrets redacted, with
// its dates.
type ProfileView struct {
	profile.Redacted
	CreatedAt string `json:"created_at,omitempty"`
	UpdatedAt string `json:"updated_at,omitempty"`
}

// ProfileLink attaches a profile to a product, a venue or a batch.
type ProfileLink struct {
	Scope   string `json:"scope"`  // ScopeProduct, ScopeVenue or ScopeBatch
	Target  string `json:"target"` // product or venue code, or batch ID
	Profile string `json:"profile"`
}

// EEPROMCard describes the bootloader recovery card the server offers for download
// (docs/operations.md §5): built from the operator's Raspberry Pi firmware with the
// fleet's bootloader config embedded.
type EEPROMCard struct {
	Firmware string    `json:"firmware"` // the bootloader file's name, e.g. pieeprom-2026-05-26.bin
	Version  string    `json:"version"`  // "bootloader 2026-05-26", plus what it lacks
	Config   string    `json:"config"`   // the embedded bootconf.txt
	Size     int64     `json:"size"`     // bytes of the card image
	SHA256   string    `json:"sha256"`   // of the card image
	Built    time.Time `json:"built"`
}

// Swarm is GET /api/v1/swarm: the boards sharing images with each other (peer to
// peer) and the server's own image upload rate.
type Swarm struct {
	Enabled         bool          `json:"enabled"` // --p2p on, or some board in a swarm now
	Members         []SwarmMember `json:"members"` // boards heard from recently
	ServerUploadBps float64       `json:"server_upload_bps"`
}

// SwarmMember is one board of a swarm as its announces describe it.
type SwarmMember struct {
	Deployment int64     `json:"deployment_id"`
	Serial     string    `json:"serial"`
	Image      string    `json:"image"`
	IP         string    `json:"ip"` // the address its announces came from
	Port       int       `json:"port"`
	FromServer int64     `json:"from_server"` // compressed bytes it fetched from the server (web seed)
	FromPeers  int64     `json:"from_peers"`  // compressed bytes it received from other boards
	Uploaded   int64     `json:"uploaded"`    // bytes it sent to other boards
	Done       bool      `json:"done"`        // its card is verified; it only seeds now
	Seeding    bool      `json:"seeding"`     // the last answer told it to keep serving
	LastSeen   time.Time `json:"last_seen"`
}

// P2PModes are the peer-to-peer modes of an image or batch (POST …/p2p, body
// {"p2p": MODE}).
var P2PModes = []string{"on", "off", "inherit"}

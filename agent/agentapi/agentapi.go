// Package agentapi holds the wire types of the agent ⇄ server API (JSON over HTTP,
// under /api/v1). rpi-agent and rpi-deployd both import it; it depends on the standard
// library only. docs/api.md describes the endpoints.
package agentapi

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Paths of the agent API. {id} is a deployment ID.
const (
	PathHello  = "/api/v1/agent/hello"
	PathEvents = "/api/v1/deployments/%d/events" // fmt with the deployment ID
	PathResult = "/api/v1/deployments/%d/result" // fmt with the deployment ID
)

// HeaderSecret carries a deployment's secret (Deployment.Secret) on its events, its
// result and its image download.
const HeaderSecret = "X-Deployment-Secret"

// HeaderSwarmPiece marks a board's image download request (with HeaderSecret) as one
// for whole swarm piece N (the value; Range must be exactly that piece): the server
// may then answer 503 with Retry-After when it is sending that piece to another board
// right now, once per such request (docs/api.md "Swarm").
const HeaderSwarmPiece = "X-Swarm-Piece"

// Hello is what a board says about itself: POST PathHello.
type Hello struct {
	Serial       string `json:"serial"`             // 16 lower- or upper-case hex digits
	MAC          string `json:"mac"`                // aa:bb:cc:dd:ee:ff
	Model        string `json:"model,omitempty"`    // e.g. "Raspberry Pi 5 Model B Rev 1.0"
	Revision     string `json:"revision,omitempty"` // /proc/cpuinfo Revision, hex, e.g. "d04170"
	Disk         Disk   `json:"disk"`
	AgentVersion string `json:"agent_version,omitempty"`
	IP           string `json:"ip,omitempty"` // the agent's own address, if it knows it
}

// Disk is the target the agent would write.
type Disk struct {
	Device    string `json:"device"`        // e.g. /dev/mmcblk0
	SizeBytes int64  `json:"size_bytes"`    // capacity
	CID       string `json:"cid,omitempty"` // SD card CID (32 hex digits) when known
}

// Actions a hello can be answered with.
const (
	ActionDeploy    = "deploy"     // Deployment is set: flash it
	ActionBootLocal = "boot_local" // nothing to do: boot from the card
	ActionRetry     = "retry"      // ask again after RetryAfterMS
)

// After-success actions the server may ask for.
const (
	AfterReboot   = "reboot" // default
	AfterPoweroff = "poweroff"
	AfterWait     = "wait" // stay up (a technician wants to look)
)

// HelloResponse answers a Hello.
type HelloResponse struct {
	Action       string      `json:"action"`
	Reason       string      `json:"reason,omitempty"`         // human words for retry/boot_local
	RetryAfterMS int64       `json:"retry_after_ms,omitempty"` // with ActionRetry
	Deployment   *Deployment `json:"deployment,omitempty"`     // with ActionDeploy
}

// Deployment is one board's assignment.
type Deployment struct {
	ID        int64     `json:"deployment_id"`
	Hostname  string    `json:"hostname"`
	Product   string    `json:"product"`
	Venue     string    `json:"venue"`
	Image     Image     `json:"image"`
	FirstBoot FirstBoot `json:"first_boot"`
	After     string    `json:"after,omitempty"` // AfterReboot (default), AfterPoweroff, AfterWait
	// Secret proves, on this deployment's events, result and image download (header
	// HeaderSecret), that the sender is the board this answer went to. Every hello
	// of the board gets a new one; the older ones stop working.
	Secret string `json:"secret,omitempty"`
}

// Image says where to fetch the packed image. URLs may be absolute or relative to the
// server URL the agent used.
type Image struct {
	Name           string `json:"name"`
	URL            string `json:"url"`          // the .img.zst
	ManifestURL    string `json:"manifest_url"` // the manifest JSON
	SHA256         string `json:"sha256"`       // of the raw image (manifest.SHA256)
	Size           int64  `json:"size"`         // raw bytes
	CompressedSize int64  `json:"compressed_size"`
	// Swarm, when set, invites the board to fetch the image from the other boards of
	// the same image as well (BitTorrent); without it, or when the swarm cannot
	// form, the board fetches URL alone.
	Swarm *Swarm `json:"swarm,omitempty"`
}

// Swarm says how a board joins the BitTorrent swarm of its image (docs/agent.md).
type Swarm struct {
	InfoHash    string `json:"info_hash"`    // 40 hex digits: the v1 info hash of TorrentURL's metainfo
	TorrentURL  string `json:"torrent_url"`  // GET with HeaderSecret: the bencoded metainfo
	AnnounceURL string `json:"announce_url"` // POST SwarmAnnounce with HeaderSecret
	IntervalMS  int64  `json:"interval_ms"`  // announce every this many milliseconds
}

// Paths of the swarm endpoints, fmt with the deployment ID.
const (
	PathSwarmTorrent  = "/api/v1/deployments/%d/swarm/torrent"
	PathSwarmAnnounce = "/api/v1/deployments/%d/swarm/announce"
)

// SwarmAnnounce is a board's periodic word to the swarm's tracker.
type SwarmAnnounce struct {
	Port       int   `json:"port"`        // TCP port its BitTorrent client listens on (0: none)
	FromServer int64 `json:"from_server"` // compressed bytes fetched from the server's web seed
	FromPeers  int64 `json:"from_peers"`  // compressed bytes received from other boards
	Uploaded   int64 `json:"uploaded"`    // bytes sent to other boards
	Done       bool  `json:"done"`        // its card is verified: it only serves now
	Leaving    bool  `json:"leaving"`     // it stops serving now
	// BadPeers are the addresses (IP) of peers this board banned for corrupt pieces
	// (each reported once); the server logs them with their serials.
	BadPeers []string `json:"bad_peers,omitempty"`
}

// SwarmAnswer answers a SwarmAnnounce.
type SwarmAnswer struct {
	Peers      []SwarmPeer `json:"peers"`
	IntervalMS int64       `json:"interval_ms"`
	// Seed tells a board that is Done whether to keep serving (false: reboot now).
	Seed bool `json:"seed"`
	// Share is the board's part of the pieces that it fetches from the server itself
	// while no peer has them; absent for a board that is done.
	Share *SwarmShare `json:"share,omitempty"`
}

// SwarmShare splits an image's pieces among the boards of its swarm that are still
// downloading: this board's are those whose index modulo Of is Index (0 ≤ Index < Of).
type SwarmShare struct {
	Index int `json:"index"`
	Of    int `json:"of"`
}

// SwarmPeer is another board of the swarm, at the address its announce came from.
type SwarmPeer struct {
	IP     string `json:"ip"`
	Port   int    `json:"port"`
	Serial string `json:"serial"`
}

// FirstBoot carries what goes onto the boot partition for the first boot.
type FirstBoot struct {
	Hostname string `json:"hostname"`
	// Mechanism overrides the image manifest's first-boot mechanism when set.
	Mechanism      string   `json:"mechanism,omitempty"`
	Timezone       string   `json:"timezone,omitempty"`
	SSHKeys        []string `json:"ssh_authorized_keys,omitempty"`
	EnableSSH      bool     `json:"enable_ssh,omitempty"`
	KeyboardLayout string   `json:"keyboard_layout,omitempty"`

	// The rest comes from the deployment's first-boot profile (docs/profiles.md).

	// User is the first user's name (Raspberry Pi Imager's "username"); with
	// PasswordHash, its crypt(3) password hash ("$6$…", never a clear password).
	User         string `json:"user,omitempty"`
	PasswordHash string `json:"password_hash,omitempty"`
	// SSHPasswordAuth allows SSH logins with a password; false turns them off.
	SSHPasswordAuth bool     `json:"ssh_password_auth,omitempty"`
	WiFi            *WiFi    `json:"wifi,omitempty"`
	Locale          string   `json:"locale,omitempty"` // e.g. en_GB.UTF-8
	Files           []File   `json:"files,omitempty"`
	RunOnce         []string `json:"run_once,omitempty"` // shell commands, run once as root at first boot, in order
}

// WiFi is the wireless network a board joins.
type WiFi struct {
	SSID string `json:"ssid"`
	// PSK is the WPA pre-shared key as 64 hex digits (PBKDF2-SHA1 of the passphrase
	// and SSID, what wpa_passphrase prints), or "" for an open network.
	PSK     string `json:"psk,omitempty"`
	Hidden  bool   `json:"hidden,omitempty"`
	Country string `json:"country,omitempty"` // ISO 3166-1 alpha-2 regulatory domain, e.g. GB
}

// File is a file written into the root file system at first boot. The server
// renders Content (a template over the board's facts) before it sends it.
type File struct {
	Path    string `json:"path"`            // absolute, e.g. /etc/app/config.json
	Mode    string `json:"mode,omitempty"`  // octal, "" = 0644
	Owner   string `json:"owner,omitempty"` // user[:group], "" = root:root
	Content string `json:"content"`
}

// Phases of a deployment, in order. The server also records PhaseDHCP and PhaseTFTP
// for a board before its agent runs.
const (
	PhaseDHCP      = "dhcp"
	PhaseTFTP      = "tftp"
	PhaseHello     = "hello"
	PhaseStreaming = "streaming" // download + decode + hash + write, overlapped
	PhaseVerifying = "verifying" // read-back of every written chunk
	PhaseNaming    = "naming"    // first-boot files on the boot partition
	PhaseCommit    = "commit"    // first chunk (partition table) written last
	PhaseRebooting = "rebooting"
	PhaseVerified  = "verified" // terminal: success
	PhaseFailed    = "failed"   // terminal: failure
)

// Phases lists the agent's phases in order (without the terminal ones).
var Phases = []string{PhaseHello, PhaseStreaming, PhaseVerifying, PhaseNaming, PhaseCommit, PhaseRebooting}

// Event is a phase change or a progress report: POST PathEvents.
type Event struct {
	Phase   string    `json:"phase"`
	Time    time.Time `json:"time,omitzero"`
	Bytes   int64     `json:"bytes,omitempty"`    // done in this phase (raw bytes)
	Total   int64     `json:"total,omitempty"`    // to do in this phase
	RateBps float64   `json:"rate_bps,omitempty"` // recent rate in bytes per second
	Message string    `json:"message,omitempty"`
}

// Result closes a deployment: POST PathResult.
type Result struct {
	// Serial is the reporting board's serial; it must be the deployment's.
	Serial  string `json:"serial"`
	Success bool   `json:"success"`
	Phase   string `json:"phase,omitempty"` // the phase that failed (failure only)
	Error   string `json:"error,omitempty"` // the cause (failure only)
	// Measured digests (success): the raw stream's SHA256 and how many chunks were
	// read back and matched.
	SHA256         string `json:"sha256,omitempty"`
	ChunksVerified int    `json:"chunks_verified,omitempty"`
	BytesWritten   int64  `json:"bytes_written,omitempty"`
	BytesFetched   int64  `json:"bytes_fetched,omitempty"` // compressed bytes over the network, resumes included
	DurationMS     int64  `json:"duration_ms,omitempty"`
}

// Error is the body of every 4xx/5xx answer of the API.
type Error struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"` // the offending field, when one is to blame
}

var (
	serialRE = regexp.MustCompile(`^[0-9a-fA-F]{16}$`)
	macRE    = regexp.MustCompile(`^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$`)
	venueRE  = regexp.MustCompile(`^[A-Z]{4}$`)
)

// NormalizeSerial checks a board serial (16 hex digits; a leading "10000000…" is as the
// firmware prints it) and returns it in lower case.
func NormalizeSerial(s string) (string, error) {
	if !serialRE.MatchString(s) {
		return "", fmt.Errorf("serial %q: want 16 hex digits", s)
	}
	return strings.ToLower(s), nil
}

// NormalizeMAC checks a MAC address and returns it in lower case with colons.
func NormalizeMAC(s string) (string, error) {
	s = strings.ReplaceAll(s, "-", ":")
	if !macRE.MatchString(s) {
		return "", fmt.Errorf("mac %q: want aa:bb:cc:dd:ee:ff", s)
	}
	return strings.ToLower(s), nil
}

// ValidVenue reports whether code is a venue code: 4 upper-case letters.
func ValidVenue(code string) bool { return venueRE.MatchString(code) }

// ShortSerial is the low 8 hex digits of a serial: the Pi's TFTP prefix, lower case.
func ShortSerial(serial string) string {
	s := strings.ToLower(serial)
	if len(s) > 8 {
		s = s[len(s)-8:]
	}
	return s
}

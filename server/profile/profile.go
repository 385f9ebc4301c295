// Package profile is the first-boot profile: the user account, SSH, Wi-Fi, locale,
// time zone, keyboard, templated files and run-once commands that Raspberry Pi
// Imager's customisation offers (and the files it does not), attached to a product
// and overridden per venue and per batch. It validates a profile as an operator
// saves it, hashes the password (SHA-512 crypt) and derives the Wi-Fi PSK so that
// neither is ever stored in clear, merges the layers field by field, and renders the
// files' templates over one board's facts. docs/profiles.md describes the rules.
package profile

import (
	"bytes"
	_ "embed"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"
	_ "time/tzdata" // time zone names are checked against the IANA database built in

	"golang.org/x/crypto/ssh"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
)

// Profile is a named first-boot profile as stored: no clear password or passphrase,
// only the crypt hash and the derived PSK. An empty field is unset (a lower layer's
// value shows through, see Merge); the booleans are pointers for the same reason.
type Profile struct {
	Name            string   `json:"name"`
	User            string   `json:"user,omitempty"`
	PasswordHash    string   `json:"password_hash,omitempty"` // crypt(3)
	SSHKeys         []string `json:"ssh_authorized_keys,omitempty"`
	SSHPasswordAuth *bool    `json:"ssh_password_auth,omitempty"`
	WiFi            *WiFi    `json:"wifi,omitempty"`
	Locale          string   `json:"locale,omitempty"`   // e.g. en_GB.UTF-8
	Timezone        string   `json:"timezone,omitempty"` // IANA name, e.g. Europe/London
	Keyboard        string   `json:"keyboard,omitempty"` // XKB layout, e.g. gb
	Files           []File   `json:"files,omitempty"`
	RunOnce         []string `json:"run_once,omitempty"`
}

// WiFi is a profile's wireless network. PSK is 64 hex digits (derived from the
// passphrase and SSID when the passphrase is given).
type WiFi struct {
	SSID    string `json:"ssid"`
	PSK     string `json:"psk,omitempty"`
	Hidden  bool   `json:"hidden,omitempty"`
	Country string `json:"country,omitempty"` // ISO 3166-1 alpha-2, upper case
}

// File is a file the first boot writes. Content is a text/template over Facts.
type File struct {
	Path    string `json:"path"`
	Mode    string `json:"mode,omitempty"`  // octal, "" = 0644
	Owner   string `json:"owner,omitempty"` // user[:group], "" = root:root
	Content string `json:"content"`
}

// Input is a profile as an operator sends it: Profile plus the secrets in clear,
// which Prepare turns into their hash and PSK.
type Input struct {
	Profile
	Password      string     `json:"password,omitempty"`       // hashed with SHA-512 crypt
	ClearPassword bool       `json:"clear_password,omitempty"` // drop the stored hash
	WiFi          *WiFiInput `json:"wifi,omitempty"`
}

// WiFiInput is a Wi-Fi network as sent: a passphrase (8–63 printable ASCII) or a
// ready PSK (64 hex digits); neither keeps the stored PSK if the SSID is unchanged.
type WiFiInput struct {
	WiFi
	Passphrase string `json:"passphrase,omitempty"`
}

// Error is bad input in one field of a profile; Field is its JSON path, e.g.
// "wifi.psk" or "files[0].content".
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return e.Field + ": " + e.Msg }

func errf(field, format string, a ...any) error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Limits of a profile.
const (
	MaxFiles       = 32
	MaxFileBytes   = 64 << 10 // a file's template
	MaxCommands    = 32
	MaxCommandLen  = 4096
	MaxKeys        = 32
	maxPasswordLen = 1024
)

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`)
	userRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	ownerRE   = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}(:[a-z_][a-z0-9_-]{0,31})?$`)
	modeRE    = regexp.MustCompile(`^0?[0-7]{3}$`)
	pathRE    = regexp.MustCompile(`^/[A-Za-z0-9_.+@,=/-]+$`)
	pskRE     = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	countryRE = regexp.MustCompile(`^[A-Z]{2}$`)
	tzRE      = regexp.MustCompile(`^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$`)
)

// notRootFS are the directories of a running system that are not the root file
// system on the card: kernel and runtime file systems, and the boot partition.
var notRootFS = []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/boot/firmware"}

// ValidName reports whether s can name a profile: 1–40 lower-case letters, digits,
// '-' and '_', starting with a letter or digit.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Prepare validates in and returns the profile to store: the password hashed, the
// PSK derived and old's secrets kept where in sends none (old is the stored profile
// of the same name, or the zero Profile). Every refusal is an *Error naming the field.
func Prepare(in Input, old Profile) (Profile, error) {
	p := in.Profile
	p.WiFi = nil
	if !ValidName(p.Name) {
		return Profile{}, errf("name", "%q: want 1-40 lower-case letters, digits, - and _", p.Name)
	}
	switch {
	case in.Password != "" && in.PasswordHash != "":
		return Profile{}, errf("password", "send password or password_hash, not both")
	case in.Password != "":
		if len(in.Password) > maxPasswordLen || strings.ContainsAny(in.Password, "\x00\n\r") {
			return Profile{}, errf("password", "at most %d bytes, no line breaks", maxPasswordLen)
		}
		h, err := HashPassword(in.Password)
		if err != nil {
			return Profile{}, err
		}
		p.PasswordHash = h
	case in.PasswordHash != "":
		if !ValidHash(in.PasswordHash) {
			return Profile{}, errf("password_hash", "not a SHA-256/SHA-512 crypt or yescrypt hash ($5$, $6$, $y$)")
		}
	case !in.ClearPassword:
		p.PasswordHash = old.PasswordHash
	}
	if p.PasswordHash != "" && p.User == "" {
		return Profile{}, errf("user", "a password needs a user name")
	}
	if w := in.WiFi; w != nil {
		wifi, err := prepareWiFi(*w, old.WiFi)
		if err != nil {
			return Profile{}, err
		}
		p.WiFi = &wifi
	}
	if err := Check(p); err != nil {
		return Profile{}, err
	}
	return p, nil
}

func prepareWiFi(w WiFiInput, old *WiFi) (WiFi, error) {
	out := w.WiFi
	if out.SSID == "" && out.Country == "" {
		return WiFi{}, errf("wifi.ssid", "required (or leave wifi out)")
	}
	if len(out.SSID) > 32 || strings.ContainsAny(out.SSID, "\\") || strings.ContainsFunc(out.SSID, isControl) {
		return WiFi{}, errf("wifi.ssid", "want 1-32 bytes without backslash or control characters")
	}
	switch {
	case w.Passphrase != "" && w.PSK != "":
		return WiFi{}, errf("wifi.passphrase", "send passphrase or psk, not both")
	case w.Passphrase != "":
		if len(w.Passphrase) < 8 || len(w.Passphrase) > 63 || strings.ContainsFunc(w.Passphrase, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			return WiFi{}, errf("wifi.passphrase", "want 8-63 printable ASCII characters (or a 64-hex-digit psk), got %d bytes", len(w.Passphrase))
		}
		psk, err := DerivePSK(out.SSID, w.Passphrase)
		if err != nil {
			return WiFi{}, err
		}
		out.PSK = psk
	case w.PSK == "set" || (w.PSK == "" && w.Passphrase == "" && out.SSID != "" && old != nil && old.SSID == out.SSID && old.PSK != ""):
		// "set" is how a redacted profile shows the PSK: sent back, it keeps the stored one.
		if old == nil || old.SSID != out.SSID || old.PSK == "" {
			return WiFi{}, errf("wifi.passphrase", "required for SSID %q (8-63 characters, or psk: 64 hex digits)", out.SSID)
		}
		out.PSK = old.PSK
	case w.PSK != "":
		if !pskRE.MatchString(w.PSK) {
			return WiFi{}, errf("wifi.psk", "want 64 hex digits, got %d characters", len(w.PSK))
		}
		out.PSK = strings.ToLower(w.PSK)
	case out.SSID != "":
		return WiFi{}, errf("wifi.passphrase", "required for SSID %q (8-63 characters, or psk: 64 hex digits)", out.SSID)
	}
	return out, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Check validates a stored or merged profile: names against the real lists (IANA
// time zones, Debian's locales and XKB layouts), SSH keys parsed, paths inside the
// root file system, templates over known facts only. It does not need the secrets in
// clear. Every refusal is an *Error naming the field.
func Check(p Profile) error {
	if p.User != "" && (!userRE.MatchString(p.User) || p.User == "root") {
		return errf("user", "%q: want a lower-case user name (letters, digits, - and _, at most 32), not root", p.User)
	}
	if p.PasswordHash != "" && !ValidHash(p.PasswordHash) {
		return errf("password_hash", "not a crypt hash")
	}
	if len(p.SSHKeys) > MaxKeys {
		return errf("ssh_authorized_keys", "at most %d keys", MaxKeys)
	}
	for i, k := range p.SSHKeys {
		if err := checkKey(k); err != nil {
			return errf(fmt.Sprintf("ssh_authorized_keys[%d]", i), "%v", err)
		}
	}
	if p.Timezone != "" {
		if _, err := time.LoadLocation(p.Timezone); err != nil || !tzRE.MatchString(p.Timezone) || p.Timezone == "Local" {
			return errf("timezone", "%q is not an IANA time zone name (e.g. Europe/London)", p.Timezone)
		}
	}
	if p.Locale != "" && !slices.Contains(Locales(), p.Locale) {
		return errf("locale", "%q is not a locale Debian supports (e.g. en_GB.UTF-8)", p.Locale)
	}
	if p.Keyboard != "" && !slices.Contains(KeyboardLayouts(), p.Keyboard) {
		return errf("keyboard", "%q is not an XKB keyboard layout (e.g. gb, us, de)", p.Keyboard)
	}
	if w := p.WiFi; w != nil {
		if w.SSID == "" && w.Country == "" {
			return errf("wifi.ssid", "required")
		}
		if w.PSK != "" && !pskRE.MatchString(w.PSK) {
			return errf("wifi.psk", "want 64 hex digits")
		}
		if w.Country != "" && !countryRE.MatchString(w.Country) {
			return errf("wifi.country", "%q: want a 2-letter ISO 3166 country code in upper case, e.g. GB", w.Country)
		}
	}
	if len(p.Files) > MaxFiles {
		return errf("files", "at most %d files", MaxFiles)
	}
	seen := map[string]bool{}
	for i, f := range p.Files {
		field := fmt.Sprintf("files[%d]", i)
		if err := checkPath(f.Path); err != nil {
			return errf(field+".path", "%v", err)
		}
		if seen[f.Path] {
			return errf(field+".path", "%s is listed twice", f.Path)
		}
		seen[f.Path] = true
		if f.Mode != "" && !modeRE.MatchString(f.Mode) {
			return errf(field+".mode", "%q: want octal permissions such as 0644", f.Mode)
		}
		if f.Owner != "" && !ownerRE.MatchString(f.Owner) {
			return errf(field+".owner", "%q: want user or user:group", f.Owner)
		}
		if len(f.Content) > MaxFileBytes {
			return errf(field+".content", "longer than %d bytes", MaxFileBytes)
		}
		if _, err := Render(f.Content, Facts{}); err != nil {
			return errf(field+".content", "%v", err)
		}
	}
	if len(p.RunOnce) > MaxCommands {
		return errf("run_once", "at most %d commands", MaxCommands)
	}
	for i, c := range p.RunOnce {
		if strings.TrimSpace(c) == "" || len(c) > MaxCommandLen || strings.ContainsRune(c, 0) {
			return errf(fmt.Sprintf("run_once[%d]", i), "want a non-empty command of at most %d bytes", MaxCommandLen)
		}
	}
	return nil
}

// checkKey accepts one authorized_keys line without options: type, key, comment.
func checkKey(k string) error {
	if strings.ContainsAny(k, "\n\r") {
		return fmt.Errorf("contains a line break: one key per entry")
	}
	if strings.ContainsAny(k, "'\"\\") {
		return fmt.Errorf("contains a quote or backslash (options are not supported)")
	}
	_, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(k))
	if err != nil {
		return fmt.Errorf("not an SSH public key: %v", err)
	}
	if len(opts) > 0 || len(rest) > 0 {
		return fmt.Errorf("options or a second key are not supported")
	}
	return nil
}

func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q: want an absolute path", p)
	}
	if path.Clean(p) != p || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		return fmt.Errorf("%q: want a clean path without . or .. elements", p)
	}
	if !pathRE.MatchString(p) {
		return fmt.Errorf("%q: letters, digits and _ . + @ , = - only", p)
	}
	for _, d := range notRootFS {
		if p == d || strings.HasPrefix(p, d+"/") {
			return fmt.Errorf("%q is outside the root file system (%s)", p, d)
		}
	}
	return nil
}

// Facts are what a file's template may use, e.g. {{.Hostname}}: the board's and its
// deployment's. Batch is 0 for a deployment outside a batch.
type Facts struct {
	Hostname     string
	Serial       string // 16 hex digits, lower case
	MAC          string // aa:bb:cc:dd:ee:ff
	Venue        string
	Product      string
	Batch        int64
	DeploymentID int64
	ImageName    string
	ImageSHA256  string
}

// FactNames lists the facts a template may use.
var FactNames = []string{"Hostname", "Serial", "MAC", "Venue", "Product", "Batch", "DeploymentID", "ImageName", "ImageSHA256"}

// Render executes the template text over f. A reference to an unknown fact, a
// function call or a syntax error is an error.
func Render(text string, f Facts) (string, error) {
	t, err := template.New("file").Option("missingkey=error").Funcs(template.FuncMap{}).Parse(text)
	if err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, f); err != nil {
		return "", fmt.Errorf("template (facts: %s): %w", strings.Join(FactNames, ", "), err)
	}
	return b.String(), nil
}

// Merge lays the profiles over each other, lowest first (product, venue, batch):
// each field of a later profile that is set replaces the field below. Wi-Fi is one
// field (SSID, PSK, hidden and country go together: the PSK is derived from the
// SSID); the SSH keys, files and run-once commands are each one list, replaced whole.
// Name is the names of the profiles merged, joined with "+".
func Merge(layers ...Profile) Profile {
	var out Profile
	var names []string
	for _, p := range layers {
		if p.Name == "" {
			continue
		}
		names = append(names, p.Name)
		if p.User != "" {
			if p.User != out.User {
				out.PasswordHash = "" // another user does not inherit this one's password
			}
			out.User = p.User
		}
		if p.PasswordHash != "" {
			out.PasswordHash = p.PasswordHash
		}
		if len(p.SSHKeys) > 0 {
			out.SSHKeys = p.SSHKeys
		}
		if p.SSHPasswordAuth != nil {
			out.SSHPasswordAuth = p.SSHPasswordAuth
		}
		if p.WiFi != nil {
			out.WiFi = p.WiFi
		}
		for _, f := range []struct{ dst, src *string }{{&out.Locale, &p.Locale}, {&out.Timezone, &p.Timezone}, {&out.Keyboard, &p.Keyboard}} {
			if *f.src != "" {
				*f.dst = *f.src
			}
		}
		if len(p.Files) > 0 {
			out.Files = p.Files
		}
		if len(p.RunOnce) > 0 {
			out.RunOnce = p.RunOnce
		}
	}
	out.Name = strings.Join(names, "+")
	return out
}

// Redacted is a profile as the API, the dashboard, logs, audit and the event stream
// may show it: the password hash and the PSK replaced by whether they are set.
type Redacted struct {
	Profile
	PasswordSet bool `json:"password_set"`
}

// Redact removes the secrets of p.
func Redact(p Profile) Redacted {
	r := Redacted{Profile: p, PasswordSet: p.PasswordHash != ""}
	r.PasswordHash = ""
	r.SSHKeys = slices.Clone(p.SSHKeys)
	if p.WiFi != nil {
		w := *p.WiFi
		if w.PSK != "" {
			w.PSK = "set"
		}
		r.WiFi = &w
	}
	return r
}

// FirstBoot applies the profile to fb (the product's first-boot defaults with the
// board's hostname) with the files rendered over f. A profile field that is set
// replaces the default.
func FirstBoot(fb agentapi.FirstBoot, p Profile, f Facts) (agentapi.FirstBoot, error) {
	if p.Timezone != "" {
		fb.Timezone = p.Timezone
	}
	if p.Keyboard != "" {
		fb.KeyboardLayout = p.Keyboard
	}
	if len(p.SSHKeys) > 0 {
		fb.SSHKeys = p.SSHKeys
	}
	fb.User, fb.PasswordHash, fb.Locale, fb.RunOnce = p.User, p.PasswordHash, p.Locale, p.RunOnce
	if p.SSHPasswordAuth != nil {
		fb.SSHPasswordAuth = *p.SSHPasswordAuth
		fb.EnableSSH = true
	}
	if w := p.WiFi; w != nil {
		fb.WiFi = &agentapi.WiFi{SSID: w.SSID, PSK: w.PSK, Hidden: w.Hidden, Country: w.Country}
	}
	for i, file := range p.Files {
		content, err := Render(file.Content, f)
		if err != nil {
			return fb, fmt.Errorf("files[%d] %s: %w", i, file.Path, err)
		}
		mode := file.Mode
		if mode != "" && len(mode) == 3 {
			mode = "0" + mode
		}
		fb.Files = append(fb.Files, agentapi.File{Path: file.Path, Mode: mode, Owner: file.Owner, Content: content})
	}
	return fb, nil
}

//go:embed data/locales.txt
var localesTxt string

//go:embed data/keyboards.txt
var keyboardsTxt string

// Locales is the list of locale names Debian 12's locales package supports: the
// first column of /usr/share/i18n/SUPPORTED (locales 2.36-9+deb12u14), e.g.
// en_GB.UTF-8, de_DE@euro.
func Locales() []string { return lines(localesTxt) }

// KeyboardLayouts is the list of XKB layout names: the "! layout" section of
// /usr/share/X11/xkb/rules/base.lst in Debian 12's xkb-data (2.35.1-1), e.g. gb, us.
func KeyboardLayouts() []string { return lines(keyboardsTxt) }

func lines(s string) []string { return strings.Fields(s) }

package api

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
)

// helloFastMax is the largest hello body (Content-Length) that readHello reads
// whole and parses itself; an agent's is about 300 bytes.
const helloFastMax = 4 << 10

var helloBufs = sync.Pool{New: func() any { b := make([]byte, helloFastMax); return &b }}

// readHello decodes a hello body exactly as bindJSON does — strictly, at most max
// bytes, the same value or the same error — at a fraction of its cost for the
// bodies agents send. A body with a Content-Length of at most helloFastMax is read
// whole and parsed by parseHello, which takes only the plain shape encoding/json
// writes for agentapi.Hello; any other body, and any body parseHello declines, goes
// through the strict decoder over the same bytes, which decides as it always did.
//
// (encoding/json's reflection and the goroutine stack growth it causes were 7 % of a
// hello's CPU.)
func readHello(w http.ResponseWriter, body io.ReadCloser, length, max int64, h *agentapi.Hello) error {
	if length >= 0 && length <= helloFastMax && length <= max {
		bp := helloBufs.Get().(*[]byte)
		defer helloBufs.Put(bp)
		b := (*bp)[:length]
		n, err := io.ReadFull(body, b)
		if err == nil && parseHello(string(b), h) {
			return nil
		}
		*h = agentapi.Hello{}
		body = io.NopCloser(io.MultiReader(bytes.NewReader(b[:n]), body))
	}
	var err error
	*h, err = decodeHello(w, body, max)
	return err
}

// decodeHello is readHello's strict decoder. The decoder is given a Hello of its
// own (on the heap: Decode's argument escapes), so that the caller's stays on its
// stack for the hellos parseHello reads.
func decodeHello(w http.ResponseWriter, body io.ReadCloser, max int64) (agentapi.Hello, error) {
	var h agentapi.Hello
	err := newStrictDecoder(http.MaxBytesReader(w, body, max)).Decode(&h)
	return h, err
}

// parseHello fills h from s, a JSON object, and reports true when s is in the
// subset it reads: the members of agentapi.Hello and agentapi.Disk under their exact
// names, strings without escapes or control characters in valid UTF-8, size_bytes
// an integer of at most 18 digits, JSON whitespace between tokens and after the
// object. For that subset the result is what encoding/json's strict decoder gives
// (a repeated member: the last one wins; a repeated disk: merged into the first).
// On false h may hold part of s; anything outside the subset — other names or
// cases, escapes, null, other types, more than the object — is left to the strict
// decoder.
func parseHello(s string, h *agentapi.Hello) bool {
	p := jsonSubset{s: s}
	ok := p.object(func(key string) bool {
		var ok bool
		switch key {
		case "serial":
			h.Serial, ok = p.str()
		case "mac":
			h.MAC, ok = p.str()
		case "model":
			h.Model, ok = p.str()
		case "revision":
			h.Revision, ok = p.str()
		case "agent_version":
			h.AgentVersion, ok = p.str()
		case "ip":
			h.IP, ok = p.str()
		case "disk":
			ok = p.object(func(key string) bool {
				var ok bool
				switch key {
				case "device":
					h.Disk.Device, ok = p.str()
				case "size_bytes":
					h.Disk.SizeBytes, ok = p.int64()
				case "cid":
					h.Disk.CID, ok = p.str()
				}
				return ok
			})
		}
		return ok
	})
	p.space()
	return ok && p.i == len(s)
}

// jsonSubset reads the plain JSON parseHello takes, from s at i.
type jsonSubset struct {
	s string
	i int
}

func (p *jsonSubset) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next consumes c (after whitespace) if it is the next byte.
func (p *jsonSubset) next(c byte) bool {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads {"key": value, …}, calling member for each key with the value next.
func (p *jsonSubset) object(member func(key string) bool) bool {
	if !p.next('{') {
		return false
	}
	if p.next('}') {
		return true
	}
	for {
		k, ok := p.str()
		if !ok || !p.next(':') || !member(k) {
			return false
		}
		if p.next('}') {
			return true
		}
		if !p.next(',') {
			return false
		}
	}
}

// str reads a string without escapes or control characters, in valid UTF-8 (what
// encoding/json would decode to the same bytes).
func (p *jsonSubset) str() (string, bool) {
	if !p.next('"') {
		return "", false
	}
	for j := p.i; j < len(p.s); j++ {
		switch c := p.s[j]; {
		case c == '"':
			v := p.s[p.i:j]
			if !utf8.ValidString(v) {
				return "", false
			}
			p.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// int64 reads an integer of at most 18 digits (so it fits), in JSON's form: an
// optional minus, no leading zero, no fraction or exponent.
func (p *jsonSubset) int64() (int64, bool) {
	p.space()
	j := p.i
	if j < len(p.s) && p.s[j] == '-' {
		j++
	}
	d := j
	for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
		j++
	}
	if n := j - d; n == 0 || n > 18 || (p.s[d] == '0' && n > 1) {
		return 0, false
	}
	if j < len(p.s) && (p.s[j] == '.' || p.s[j] == 'e' || p.s[j] == 'E') {
		return 0, false
	}
	v, err := strconv.ParseInt(p.s[p.i:j], 10, 64)
	if err != nil {
		return 0, false
	}
	p.i = j
	return v, true
}

package api

import (
	"strconv"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/internal/jsonstr"
)

// appendHelloResponse appends r's JSON exactly as json.Marshal (and so gin's
// c.JSON) writes it — the fields in their order, omitempty as tagged, strings
// HTML-escaped — without reflection. TestHelloResponseAsMarshal holds it to
// json.Marshal over random values of every field, so a field added to the wire
// types without a line here fails that test.
func appendHelloResponse(b []byte, r *agentapi.HelloResponse) []byte {
	b = append(b, `{"action":`...)
	b = jsonstr.Append(b, r.Action)
	if r.Reason != "" {
		b = append(b, `,"reason":`...)
		b = jsonstr.Append(b, r.Reason)
	}
	b = jsonstr.AppendOmitZero(b, "retry_after_ms", r.RetryAfterMS)
	if d := r.Deployment; d != nil {
		b = append(b, `,"deployment":{"deployment_id":`...)
		b = strconv.AppendInt(b, d.ID, 10)
		b = jsonstr.AppendField(b, "hostname", d.Hostname)
		b = jsonstr.AppendField(b, "product", d.Product)
		b = jsonstr.AppendField(b, "venue", d.Venue)
		b = append(b, `,"image":`...)
		b = appendImage(b, &d.Image)
		b = append(b, `,"first_boot":`...)
		b = appendFirstBoot(b, &d.FirstBoot)
		b = jsonstr.AppendOmitEmpty(b, "after", d.After)
		b = jsonstr.AppendOmitEmpty(b, "secret", d.Secret)
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendImage(b []byte, im *agentapi.Image) []byte {
	b = append(b, `{"name":`...)
	b = jsonstr.Append(b, im.Name)
	b = jsonstr.AppendField(b, "url", im.URL)
	b = jsonstr.AppendField(b, "manifest_url", im.ManifestURL)
	b = jsonstr.AppendField(b, "sha256", im.SHA256)
	b = jsonstr.AppendInt(b, "size", im.Size)
	b = jsonstr.AppendInt(b, "compressed_size", im.CompressedSize)
	if s := im.Swarm; s != nil {
		b = append(b, `,"swarm":{"info_hash":`...)
		b = jsonstr.Append(b, s.InfoHash)
		b = jsonstr.AppendField(b, "torrent_url", s.TorrentURL)
		b = jsonstr.AppendField(b, "announce_url", s.AnnounceURL)
		b = jsonstr.AppendInt(b, "interval_ms", s.IntervalMS)
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendFirstBoot(b []byte, f *agentapi.FirstBoot) []byte {
	b = append(b, `{"hostname":`...)
	b = jsonstr.Append(b, f.Hostname)
	b = jsonstr.AppendOmitEmpty(b, "mechanism", f.Mechanism)
	b = jsonstr.AppendOmitEmpty(b, "timezone", f.Timezone)
	b = appendStrings(b, "ssh_authorized_keys", f.SSHKeys)
	b = jsonstr.AppendTrue(b, "enable_ssh", f.EnableSSH)
	b = jsonstr.AppendOmitEmpty(b, "keyboard_layout", f.KeyboardLayout)
	b = jsonstr.AppendOmitEmpty(b, "user", f.User)
	b = jsonstr.AppendOmitEmpty(b, "password_hash", f.PasswordHash)
	b = jsonstr.AppendTrue(b, "ssh_password_auth", f.SSHPasswordAuth)
	if w := f.WiFi; w != nil {
		b = append(b, `,"wifi":{"ssid":`...)
		b = jsonstr.Append(b, w.SSID)
		b = jsonstr.AppendOmitEmpty(b, "psk", w.PSK)
		b = jsonstr.AppendTrue(b, "hidden", w.Hidden)
		b = jsonstr.AppendOmitEmpty(b, "country", w.Country)
		b = append(b, '}')
	}
	b = jsonstr.AppendOmitEmpty(b, "locale", f.Locale)
	if len(f.Files) > 0 {
		b = append(b, `,"files":[`...)
		for i := range f.Files {
			if i > 0 {
				b = append(b, ',')
			}
			fl := &f.Files[i]
			b = append(b, `{"path":`...)
			b = jsonstr.Append(b, fl.Path)
			b = jsonstr.AppendOmitEmpty(b, "mode", fl.Mode)
			b = jsonstr.AppendOmitEmpty(b, "owner", fl.Owner)
			b = jsonstr.AppendField(b, "content", fl.Content)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendStrings(b, "run_once", f.RunOnce)
	return append(b, '}')
}

// appendStrings appends an omitempty []string: nothing when empty.
func appendStrings(b []byte, name string, v []string) []byte {
	if len(v) == 0 {
		return b
	}
	b = append(jsonstr.AppendName(b, name), '[')
	for i, s := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, s)
	}
	return append(b, ']')
}

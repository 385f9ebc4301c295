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
	if r.RetryAfterMS != 0 {
		b = append(b, `,"retry_after_ms":`...)
		b = strconv.AppendInt(b, r.RetryAfterMS, 10)
	}
	if d := r.Deployment; d != nil {
		b = append(b, `,"deployment":{"deployment_id":`...)
		b = strconv.AppendInt(b, d.ID, 10)
		b = appendField(b, "hostname", d.Hostname)
		b = appendField(b, "product", d.Product)
		b = appendField(b, "venue", d.Venue)
		b = append(b, `,"image":`...)
		b = appendImage(b, &d.Image)
		b = append(b, `,"first_boot":`...)
		b = appendFirstBoot(b, &d.FirstBoot)
		b = appendOmitEmpty(b, "after", d.After)
		b = appendOmitEmpty(b, "secret", d.Secret)
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendImage(b []byte, im *agentapi.Image) []byte {
	b = append(b, `{"name":`...)
	b = jsonstr.Append(b, im.Name)
	b = appendField(b, "url", im.URL)
	b = appendField(b, "manifest_url", im.ManifestURL)
	b = appendField(b, "sha256", im.SHA256)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, im.Size, 10)
	b = append(b, `,"compressed_size":`...)
	b = strconv.AppendInt(b, im.CompressedSize, 10)
	if s := im.Swarm; s != nil {
		b = append(b, `,"swarm":{"info_hash":`...)
		b = jsonstr.Append(b, s.InfoHash)
		b = appendField(b, "torrent_url", s.TorrentURL)
		b = appendField(b, "announce_url", s.AnnounceURL)
		b = append(b, `,"interval_ms":`...)
		b = strconv.AppendInt(b, s.IntervalMS, 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendFirstBoot(b []byte, f *agentapi.FirstBoot) []byte {
	b = append(b, `{"hostname":`...)
	b = jsonstr.Append(b, f.Hostname)
	b = appendOmitEmpty(b, "mechanism", f.Mechanism)
	b = appendOmitEmpty(b, "timezone", f.Timezone)
	b = appendStrings(b, "ssh_authorized_keys", f.SSHKeys)
	b = appendTrue(b, "enable_ssh", f.EnableSSH)
	b = appendOmitEmpty(b, "keyboard_layout", f.KeyboardLayout)
	b = appendOmitEmpty(b, "user", f.User)
	b = appendOmitEmpty(b, "password_hash", f.PasswordHash)
	b = appendTrue(b, "ssh_password_auth", f.SSHPasswordAuth)
	if w := f.WiFi; w != nil {
		b = append(b, `,"wifi":{"ssid":`...)
		b = jsonstr.Append(b, w.SSID)
		b = appendOmitEmpty(b, "psk", w.PSK)
		b = appendTrue(b, "hidden", w.Hidden)
		b = appendOmitEmpty(b, "country", w.Country)
		b = append(b, '}')
	}
	b = appendOmitEmpty(b, "locale", f.Locale)
	if len(f.Files) > 0 {
		b = append(b, `,"files":[`...)
		for i := range f.Files {
			if i > 0 {
				b = append(b, ',')
			}
			fl := &f.Files[i]
			b = append(b, `{"path":`...)
			b = jsonstr.Append(b, fl.Path)
			b = appendOmitEmpty(b, "mode", fl.Mode)
			b = appendOmitEmpty(b, "owner", fl.Owner)
			b = appendField(b, "content", fl.Content)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendStrings(b, "run_once", f.RunOnce)
	return append(b, '}')
}

// appendName appends ,"name": (the names are plain ASCII, written as they are).
func appendName(b []byte, name string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// appendField appends ,"name":"value".
func appendField(b []byte, name, v string) []byte {
	return jsonstr.Append(appendName(b, name), v)
}

// appendOmitEmpty is appendField for an omitempty string: nothing for "".
func appendOmitEmpty(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendField(b, name, v)
}

// appendTrue appends ,"name":true for an omitempty bool that is true.
func appendTrue(b []byte, name string, v bool) []byte {
	if !v {
		return b
	}
	return append(appendName(b, name), "true"...)
}

// appendStrings appends an omitempty []string: nothing when empty.
func appendStrings(b []byte, name string, v []string) []byte {
	if len(v) == 0 {
		return b
	}
	b = append(appendName(b, name), '[')
	for i, s := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, s)
	}
	return append(b, ']')
}

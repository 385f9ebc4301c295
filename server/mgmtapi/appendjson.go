package mgmtapi

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/rpi-deploy/rpi-deploy/server/internal/jsonstr"
)

// The events every hello publishes (board.changed, deployment.created,
// batch.changed) carry a Board, a Deployment and a Batch. AppendBoard,
// AppendDeployment and AppendBatch write what json.Marshal writes for them — the
// fields in their order, omitempty as tagged, strings HTML-escaped — without
// reflection (server/events uses them for event data of exactly these types).
// They are functions, not methods, so that no type embedding one of these (a
// BoardView) gets one that leaves its own fields out. TestAppendJSONAsMarshal
// holds each to json.Marshal over random values of every field, so a field added
// to one of these types without a line here fails that test.

// AppendBoard appends b's JSON as json.Marshal writes it.
func AppendBoard(j []byte, b *Board) []byte {
	j = append(j, `{"serial":`...)
	j = jsonstr.Append(j, b.Serial)
	j = jsonstr.AppendField(j, "mac", b.MAC)
	j = jsonstr.AppendOmitEmpty(j, "model", b.Model)
	j = jsonstr.AppendOmitEmpty(j, "revision", b.Revision)
	j = jsonstr.AppendOmitEmpty(j, "ip", b.IP)
	j = jsonstr.AppendOmitEmpty(j, "hostname", b.Hostname)
	j = jsonstr.AppendOmitEmpty(j, "image", b.Image)
	j = jsonstr.AppendBool(j, "deployed", b.Deployed)
	j = jsonstr.AppendBool(j, "reimage", b.Reimage)
	j = jsonstr.AppendOmitEmpty(j, "last_event", b.LastEvent)
	j = jsonstr.AppendField(j, "first_seen", b.FirstSeen)
	j = jsonstr.AppendField(j, "last_seen", b.LastSeen)
	j = jsonstr.AppendField(j, "site", b.Site)
	return append(j, '}')
}

// AppendDeployment appends d's JSON as json.Marshal writes it; a RateBps that is
// not a finite number is json.Marshal's error, and j is returned as it was.
func AppendDeployment(j []byte, d *Deployment) ([]byte, error) {
	if math.IsInf(d.RateBps, 0) || math.IsNaN(d.RateBps) {
		return j, marshalError(*d)
	}
	j = append(j, `{"id":`...)
	j = strconv.AppendInt(j, d.ID, 10)
	j = jsonstr.AppendField(j, "serial", d.Serial)
	j = jsonstr.AppendOmitEmpty(j, "mac", d.MAC)
	j = jsonstr.AppendOmitZero(j, "batch_id", d.BatchID)
	j = jsonstr.AppendField(j, "venue", d.Venue)
	j = jsonstr.AppendField(j, "product", d.Product)
	j = jsonstr.AppendField(j, "hostname", d.Hostname)
	j = jsonstr.AppendField(j, "image", d.Image)
	j = jsonstr.AppendField(j, "state", d.State)
	j = jsonstr.AppendField(j, "phase", d.Phase)
	j = jsonstr.AppendInt(j, "bytes", d.Bytes)
	j = jsonstr.AppendInt(j, "total", d.Total)
	j = appendFloat(jsonstr.AppendName(j, "rate_bps"), d.RateBps)
	j = jsonstr.AppendOmitEmpty(j, "message", d.Message)
	j = jsonstr.AppendOmitEmpty(j, "error", d.Error)
	j = jsonstr.AppendOmitEmpty(j, "error_phase", d.ErrorPhase)
	j = jsonstr.AppendOmitEmpty(j, "sha256", d.SHA256)
	j = jsonstr.AppendOmitZero(j, "bytes_written", d.BytesWritten)
	j = jsonstr.AppendOmitZero(j, "bytes_fetched", d.BytesFetched)
	j = jsonstr.AppendOmitZero(j, "duration_ms", d.DurationMS)
	j = jsonstr.AppendField(j, "started_at", d.StartedAt)
	j = jsonstr.AppendField(j, "updated_at", d.UpdatedAt)
	j = jsonstr.AppendOmitEmpty(j, "finished_at", d.FinishedAt)
	j = jsonstr.AppendField(j, "site", d.Site)
	return append(j, '}'), nil
}

// marshalError is json.Marshal's error for d. d is a copy, boxed only on this
// path: json.Marshal of the caller's pointer would make every caller's
// Deployment escape to the heap, a 320-byte allocation per event.
func marshalError(d Deployment) error {
	_, err := json.Marshal(d)
	return err
}

// AppendBatch appends b's JSON as json.Marshal writes it.
func AppendBatch(j []byte, b *Batch) []byte {
	j = append(j, `{"id":`...)
	j = strconv.AppendInt(j, b.ID, 10)
	j = jsonstr.AppendField(j, "venue", b.Venue)
	j = jsonstr.AppendField(j, "product", b.Product)
	j = jsonstr.AppendField(j, "image", b.Image)
	j = jsonstr.AppendInt(j, "count", int64(b.Count))
	j = jsonstr.AppendInt(j, "priority", int64(b.Priority))
	j = jsonstr.AppendField(j, "state", b.State)
	j = jsonstr.AppendInt(j, "done", int64(b.Done))
	j = jsonstr.AppendInt(j, "in_progress", int64(b.InFlight))
	j = jsonstr.AppendInt(j, "failed", int64(b.Failed))
	j = jsonstr.AppendOmitEmpty(j, "note", b.Note)
	j = jsonstr.AppendField(j, "created_at", b.CreatedAt)
	j = jsonstr.AppendField(j, "updated_at", b.UpdatedAt)
	j = jsonstr.AppendField(j, "p2p", b.P2P)
	return append(j, '}')
}

// appendFloat appends a finite f as encoding/json writes a float64: the shortest
// decimal that reads back as f, in exponent form (with at least one exponent
// digit, e-7 not e-07) below 1e-6 and from 1e21 on.
func appendFloat(j []byte, f float64) []byte {
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	j = strconv.AppendFloat(j, f, format, -1, 64)
	if format == 'e' {
		if n := len(j); n >= 4 && j[n-4] == 'e' && j[n-3] == '-' && j[n-2] == '0' {
			j[n-2] = j[n-1]
			j = j[:n-1]
		}
	}
	return j
}

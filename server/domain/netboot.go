package domain

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// Kinds of netboot events (NetbootEvent.Kind).
const (
	NetbootDHCPDiscover = "dhcp.discover"
	NetbootDHCPOffer    = "dhcp.offer"
	NetbootDHCPAck      = "dhcp.ack"
	NetbootTFTPFile     = "tftp.file"   // a file was sent completely
	NetbootTFTPFailed   = "tftp.failed" // a transfer failed (not an "Early terminate" probe)
)

// NetbootEvent is something the DHCP or TFTP server saw a board do. Serial is the
// 16-hex serial (DHCP option 97) or the 8-hex short serial (the TFTP prefix); MAC
// may be given instead or as well.
type NetbootEvent struct {
	Serial   string
	MAC      string
	Kind     string
	IP       string        // address offered or acknowledged
	File     string        // TFTP file name
	Bytes    int64         // TFTP bytes sent
	Duration time.Duration // TFTP transfer time
	Error    string        // for failures
}

var shortSerialRE = regexp.MustCompile(`^[0-9a-fA-F]{8}$`)

// RecordNetboot adds a netboot event to the board's history (creating the board
// when a full serial is known), updates its last event and IP, and publishes
// events.BoardNetboot. A board known only by an 8-hex short serial or by MAC is
// matched to a known board when possible.
func (s *Service) RecordNetboot(ctx context.Context, e NetbootEvent) error {
	var serial, mac string
	if e.MAC != "" {
		m, err := agentapi.NormalizeMAC(e.MAC)
		if err != nil {
			return invalid("mac", "%v", err)
		}
		mac = m
	}
	short := ""
	switch {
	case e.Serial == "":
	case shortSerialRE.MatchString(e.Serial):
		short = strings.ToLower(e.Serial)
	default:
		sn, err := agentapi.NormalizeSerial(e.Serial)
		if err != nil {
			return invalid("serial", "%v", err)
		}
		serial = sn
	}
	if serial == "" && short == "" && mac == "" {
		return invalid("serial", "a netboot event needs a serial or a MAC")
	}
	detail := e.Kind
	switch {
	case e.File != "" && e.Error != "":
		detail = fmt.Sprintf("%s %s: %s", e.Kind, e.File, e.Error)
	case e.File != "":
		detail = fmt.Sprintf("%s %s %d bytes in %s", e.Kind, e.File, e.Bytes, e.Duration.Round(time.Millisecond))
	case e.IP != "":
		detail = fmt.Sprintf("%s %s", e.Kind, e.IP)
	case e.Error != "":
		detail = fmt.Sprintf("%s: %s", e.Kind, e.Error)
	}
	var ev store.BoardEvent
	err := s.st.Update(ctx, func(t *store.Tx) error {
		if serial == "" && short != "" {
			if b, err := t.BoardByShortSerial(ctx, short); err == nil {
				serial = b.Serial
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if serial == "" && mac != "" {
			if b, err := t.BoardByMAC(ctx, mac); err == nil {
				serial = b.Serial
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if serial != "" {
			if err := t.SeeBoard(ctx, store.Board{Serial: serial, MAC: mac, IP: e.IP, LastEvent: detail, Site: s.opt.Site}); err != nil {
				return err
			}
		}
		ev = store.BoardEvent{Serial: serial, MAC: mac, Kind: e.Kind, Detail: detail, Site: s.opt.Site}
		if serial == "" && short != "" {
			ev.Detail = "serial " + short + ": " + detail
		}
		id, err := t.AddBoardEvent(ctx, ev)
		ev.ID, ev.At = id, store.FormatTime(t.Now)
		return err
	})
	if err != nil {
		return err
	}
	s.publish(events.BoardNetboot, wireBoardEvent(ev))
	return nil
}

// LookupBoard finds a board by serial (16 or 8 hex digits) or, failing that, MAC.
func (s *Service) LookupBoard(ctx context.Context, serial, mac string) (store.Board, error) {
	var b store.Board
	err := s.st.Update(ctx, func(t *store.Tx) error {
		var err error = store.ErrNotFound
		switch {
		case shortSerialRE.MatchString(serial):
			b, err = t.BoardByShortSerial(ctx, strings.ToLower(serial))
		case serial != "":
			b, err = t.Board(ctx, strings.ToLower(serial))
		}
		if errors.Is(err, store.ErrNotFound) && mac != "" {
			b, err = t.BoardByMAC(ctx, strings.ToLower(mac))
		}
		return err
	})
	return b, err
}

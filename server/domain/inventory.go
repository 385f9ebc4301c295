package domain

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// PutVenue creates a venue (code: 4 upper-case letters) or renames it.
func (s *Service) PutVenue(ctx context.Context, code, name string) (mgmtapi.Venue, error) {
	if !agentapi.ValidVenue(code) {
		return mgmtapi.Venue{}, invalid("code", "venue code %q: want 4 upper-case letters", code)
	}
	if len(name) > 200 {
		return mgmtapi.Venue{}, invalid("name", "venue name longer than 200 bytes")
	}
	return change(ctx, s, events.VenueChanged, func(t *store.Tx) (auditLine, error) {
		created, err := t.PutVenue(ctx, code, name)
		if created {
			return auditLine{"venue.add", code, name}, err
		}
		return auditLine{"venue.rename", code, name}, err
	}, func(t *store.Tx) (store.Venue, error) { return t.Venue(ctx, code) }, wireVenue)
}

// DeleteVenue removes a venue nothing refers to.
func (s *Service) DeleteVenue(ctx context.Context, code string) error {
	return changeNoRow(ctx, s, events.VenueChanged, map[string]any{"code": code, "deleted": true}, func(t *store.Tx) (auditLine, error) {
		if err := t.DeleteVenue(ctx, code); err != nil {
			return auditLine{}, fmt.Errorf("venue %q: %w", code, err)
		}
		return auditLine{"venue.delete", code, ""}, nil
	})
}

var productRE = regexp.MustCompile(`^[A-Z0-9]{2,8}$`)

// ProductSpec is a product as an operator defines it.
type ProductSpec = mgmtapi.ProductSpec

// PutProduct creates or updates a product: no code needed to add one.
func (s *Service) PutProduct(ctx context.Context, ps ProductSpec) (mgmtapi.ProductView, error) {
	if !productRE.MatchString(ps.Code) {
		return mgmtapi.ProductView{}, invalid("code", "product code %q: want 2-8 upper-case letters or digits", ps.Code)
	}
	if ps.Naming != store.NamingPool && ps.Naming != store.NamingSerial {
		return mgmtapi.ProductView{}, invalid("naming", "naming %q: want pool or serial", ps.Naming)
	}
	if ps.Digits == 0 {
		ps.Digits = 3
	}
	if ps.Digits < 1 || ps.Digits > 6 {
		return mgmtapi.ProductView{}, invalid("digits", "digits %d: want 1-6", ps.Digits)
	}
	fb := "{}"
	if ps.FirstBoot != nil {
		ps.FirstBoot.Hostname = ""
		b, err := json.Marshal(ps.FirstBoot)
		if err != nil {
			return mgmtapi.ProductView{}, err
		}
		fb = string(b)
	}
	p, err := change(ctx, s, "", func(t *store.Tx) (auditLine, error) {
		err := t.PutProduct(ctx, store.Product{Code: ps.Code, Name: ps.Name, Naming: ps.Naming, Digits: ps.Digits, FirstBoot: fb})
		return auditLine{"product.put", ps.Code, fmt.Sprintf("naming %s digits %d first_boot %s", ps.Naming, ps.Digits, fb)}, err
	}, func(t *store.Tx) (store.Product, error) { return t.Product(ctx, ps.Code) }, wireProductView)
	if err == nil {
		s.publish(events.ProductChanged, p.Product)
	}
	return p, err
}

func (s *Service) poolTarget(ctx context.Context, t *store.Tx, venue, product string) (store.Product, error) {
	if !agentapi.ValidVenue(venue) {
		return store.Product{}, invalid("venue", "venue code %q: want 4 upper-case letters", venue)
	}
	if _, err := t.Venue(ctx, venue); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Product{}, invalid("venue", "venue %q does not exist", venue)
		}
		return store.Product{}, err
	}
	p, err := t.Product(ctx, product)
	if errors.Is(err, store.ErrNotFound) {
		return p, invalid("product", "product %q does not exist", product)
	}
	if err != nil {
		return p, err
	}
	if p.Naming != store.NamingPool {
		return p, invalid("product", "product %q names boards by %s, not from a pool", product, p.Naming)
	}
	return p, nil
}

// maxPoolSeq is the highest pool sequence number GeneratePool starts at (9 digits).
const maxPoolSeq = 999_999_999

// GeneratePool adds count names to a venue's pool for a pool-named product,
// numbered from start (0 = after the highest existing number).
func (s *Service) GeneratePool(ctx context.Context, venue, product string, count, start int) ([]string, error) {
	if count < 1 || count > 100000 {
		return nil, invalid("count", "count %d: want 1-100000", count)
	}
	if start < 0 || start > maxPoolSeq {
		return nil, invalid("start", "start %d: want 0-%d", start, maxPoolSeq)
	}
	var names []string
	err := changeNoRow(ctx, s, events.PoolChanged, map[string]any{"venue": venue, "product": product}, func(t *store.Tx) (auditLine, error) {
		names = nil
		p, err := s.poolTarget(ctx, t, venue, product)
		if err != nil {
			return auditLine{}, err
		}
		from := start
		if from == 0 {
			m, err := t.MaxPoolSeq(ctx, venue, product)
			if err != nil {
				return auditLine{}, err
			}
			if m >= maxPoolSeq {
				return auditLine{}, invalid("start", "pool %s/%s already ends at %d: give a start of 1-%d", venue, product, m, maxPoolSeq)
			}
			from = m + 1
		}
		for seq := from; seq < from+count; seq++ {
			n := PoolHostname(p.Code, venue, p.Digits, seq)
			if err := t.AddPoolName(ctx, store.PoolName{Name: n, Venue: venue, Product: p.Code, Seq: seq}); err != nil {
				return auditLine{}, err
			}
			names = append(names, n)
		}
		return auditLine{"pool.generate", venue + "/" + product, fmt.Sprintf("%d names from %s", count, names[0])}, nil
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// ImportPool reads CSV lines "name[,serial[,retired]]" (a header line starting with
// "name" is skipped) into the pool of venue and product. Sequence numbers come from
// the trailing digits of each name. All lines are checked first; any bad line
// rejects the whole import.
func (s *Service) ImportPool(ctx context.Context, venue, product string, r io.Reader) (int, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	recs, err := cr.ReadAll()
	if err != nil {
		return 0, invalid("csv", "read CSV: %v", err)
	}
	var rows []store.PoolName
	for i, rec := range recs {
		if len(rec) == 0 || (i == 0 && strings.EqualFold(rec[0], "name")) {
			continue
		}
		name := strings.TrimSpace(rec[0])
		if !hostnameRE.MatchString(name) {
			return 0, invalid("csv", "line %d: %q is not a hostname", i+1, name)
		}
		j := len(name)
		for j > 0 && name[j-1] >= '0' && name[j-1] <= '9' {
			j--
		}
		seq, err := strconv.Atoi(name[j:])
		if err != nil {
			return 0, invalid("csv", "line %d: %q does not end in a number", i+1, name)
		}
		pn := store.PoolName{Name: name, Venue: venue, Product: product, Seq: seq}
		if len(rec) > 1 && strings.TrimSpace(rec[1]) != "" {
			serial, err := agentapi.NormalizeSerial(strings.TrimSpace(rec[1]))
			if err != nil {
				return 0, invalid("csv", "line %d: %v", i+1, err)
			}
			pn.Serial = serial
		}
		if len(rec) > 2 {
			pn.Retired = strings.TrimSpace(rec[2]) == "1" || strings.EqualFold(strings.TrimSpace(rec[2]), "true")
		}
		rows = append(rows, pn)
	}
	err = changeNoRow(ctx, s, events.PoolChanged, map[string]any{"venue": venue, "product": product}, func(t *store.Tx) (auditLine, error) {
		if _, err := s.poolTarget(ctx, t, venue, product); err != nil {
			return auditLine{}, err
		}
		for i, pn := range rows {
			if pn.Serial != "" {
				pn.BoundAt = store.FormatTime(t.Now)
				if err := t.SeeBoard(ctx, store.Board{Serial: pn.Serial, Site: s.opt.Site}); err != nil {
					return auditLine{}, err
				}
				if err := t.SetBoardHostname(ctx, pn.Serial, pn.Name); err != nil {
					return auditLine{}, err
				}
			}
			if err := t.AddPoolName(ctx, pn); err != nil {
				return auditLine{}, fmt.Errorf("row %d: %w", i+1, err)
			}
		}
		return auditLine{"pool.import", venue + "/" + product, fmt.Sprintf("%d names", len(rows))}, nil
	})
	return len(rows), err
}

// ExportPool writes a pool as CSV: name,serial,retired,bound_at.
func (s *Service) ExportPool(ctx context.Context, venue, product string, w io.Writer) error {
	names, err := s.st.PoolNames(ctx, store.PoolFilter{Venue: venue, Product: product})
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.Write([]string{"name", "serial", "retired", "bound_at", "venue", "product"})
	for _, n := range names {
		ret := "0"
		if n.Retired {
			ret = "1"
		}
		cw.Write([]string{n.Name, n.Serial, ret, n.BoundAt, n.Venue, n.Product})
	}
	cw.Flush()
	return cw.Error()
}

// RetirePoolName retires (or with retired=false returns to service) a pool name; a
// retired name is never handed out again. It returns the name as it now stands.
func (s *Service) RetirePoolName(ctx context.Context, name string, retired bool) (mgmtapi.PoolName, error) {
	action := "pool.retire"
	if !retired {
		action = "pool.unretire"
	}
	return s.changePoolName(ctx, name, func(t *store.Tx) (auditLine, error) {
		if err := t.SetPoolRetired(ctx, name, retired); err != nil {
			return auditLine{}, fmt.Errorf("pool name %q: %w", name, err)
		}
		return auditLine{action, name, ""}, nil
	})
}

// ReleasePoolName unbinds a name from its board (an operator's decision: the board
// gets another name next time). Refused while an open deployment uses the name. It
// returns the name as it now stands.
func (s *Service) ReleasePoolName(ctx context.Context, name string) (mgmtapi.PoolName, error) {
	return s.changePoolName(ctx, name, func(t *store.Tx) (auditLine, error) {
		n, err := t.OpenDeploymentsNamed(ctx, name)
		if err != nil {
			return auditLine{}, err
		}
		if n > 0 {
			return auditLine{}, fmt.Errorf("pool name %q is in use by an open deployment (abandon it first): %w", name, ErrConflict)
		}
		if err := t.ReleasePoolName(ctx, name); err != nil {
			return auditLine{}, fmt.Errorf("pool name %q: %w", name, err)
		}
		return auditLine{"pool.release", name, ""}, nil
	})
}

// changePoolName runs an audited change of one pool name, reads it back and
// publishes pool.changed with the name.
func (s *Service) changePoolName(ctx context.Context, name string, write func(*store.Tx) (auditLine, error)) (mgmtapi.PoolName, error) {
	n, err := change(ctx, s, "", write, func(t *store.Tx) (store.PoolName, error) { return t.PoolName(ctx, name) }, wirePoolName)
	if err == nil {
		s.publish(events.PoolChanged, map[string]any{"name": name})
	}
	return n, err
}

package domain

import (
	"context"
	"regexp"
	"slices"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

var siteName = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// ValidSite checks a site name: 1–32 lower-case letters, digits and hyphens. The
// error wraps ErrInvalid and names the field "site".
func ValidSite(name string) error {
	if !siteName.MatchString(name) {
		return invalid("site", "site %q: want 1-32 lower-case letters, digits or '-'", name)
	}
	return nil
}

// Site is the server's own site name (Options.Site).
func (s *Service) Site() string { return s.opt.Site }

// RecordSite records that a server of this site started now, so that the site is
// listed (Sites) before it has seen a board.
func (s *Service) RecordSite(ctx context.Context) error {
	return s.st.Update(ctx, func(t *store.Tx) error { return t.SeeSite(ctx, s.opt.Site) })
}

// Sites lists the sites known to the database (servers that started, and sites its
// boards and deployments name) with their counts, by name; Current marks this
// server's own.
func (s *Service) Sites(ctx context.Context) ([]mgmtapi.Site, error) {
	rows, err := s.st.Sites(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]mgmtapi.Site, 0, len(rows)+1)
	here := false
	for _, r := range rows {
		out = append(out, wireSite(r, s.opt.Site))
		here = here || r.Name == s.opt.Site
	}
	if !here { // a server the daemon did not record (RecordSite), or not yet
		out = append(out, mgmtapi.Site{Name: s.opt.Site, Current: true})
		slices.SortFunc(out, func(a, b mgmtapi.Site) int { return strings.Compare(a.Name, b.Name) })
	}
	return out, nil
}

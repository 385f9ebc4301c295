package domain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/profile"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// ProfileView is a profile as the API shows it: secrets redacted, with its dates.
type ProfileView = mgmtapi.ProfileView

func decodeProfile(p store.Profile) (profile.Profile, error) {
	var out profile.Profile
	if err := json.Unmarshal([]byte(p.Spec), &out); err != nil {
		return out, fmt.Errorf("profile %q: %w", p.Name, err)
	}
	out.Name = p.Name
	return out, nil
}

func viewProfile(p store.Profile) (ProfileView, error) {
	pr, err := decodeProfile(p)
	return ProfileView{Redacted: profile.Redact(pr), CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}, err
}

// Profiles lists the profiles, secrets redacted.
func (s *Service) Profiles(ctx context.Context) ([]ProfileView, error) {
	ps, err := s.st.Profiles(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ProfileView, 0, len(ps))
	for _, p := range ps {
		v, err := viewProfile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Profile returns one profile, secrets redacted.
func (s *Service) Profile(ctx context.Context, name string) (ProfileView, error) {
	p, err := s.st.Profile(ctx, name)
	if err != nil {
		return ProfileView{}, fmt.Errorf("profile %q: %w", name, err)
	}
	return viewProfile(p)
}

// fieldErr turns a profile validation error into the API's field error.
func fieldErr(err error) error {
	var pe *profile.Error
	if errors.As(err, &pe) {
		return invalid(pe.Field, "%s: %s", pe.Field, pe.Msg)
	}
	return err
}

// PutProfile creates or replaces a profile. A clear password is hashed and a Wi-Fi
// passphrase turned into its PSK before anything is stored; a profile saved without
// them keeps the stored ones (profile.Prepare). Deployments already open keep the
// profile they started with.
func (s *Service) PutProfile(ctx context.Context, in profile.Input) (ProfileView, error) {
	var name string
	v, err := change(ctx, s, events.ProfileChanged, func(t *store.Tx) (auditLine, error) {
		var old profile.Profile
		if sp, err := t.Profile(ctx, in.Name); err == nil {
			if old, err = decodeProfile(sp); err != nil {
				return auditLine{}, err
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return auditLine{}, err
		}
		p, err := profile.Prepare(in, old)
		if err != nil {
			return auditLine{}, fieldErr(err)
		}
		spec, err := json.Marshal(p)
		if err != nil {
			return auditLine{}, err
		}
		name = p.Name
		return auditLine{"profile.put", p.Name, profileSummary(p)}, t.PutProfile(ctx, p.Name, string(spec))
	}, func(t *store.Tx) (ProfileView, error) {
		sp, err := t.Profile(ctx, name)
		if err != nil {
			return ProfileView{}, err
		}
		return viewProfile(sp)
	}, func(v ProfileView) ProfileView { return v })
	if err == nil {
		s.log.Info("profile saved", "profile", v.Name)
	}
	return v, err
}

// profileSummary says what a profile sets, for the audit log: names of fields and
// non-secret values only.
func profileSummary(p profile.Profile) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+" "+v)
		}
	}
	add("user", p.User)
	if p.PasswordHash != "" {
		add("password", "set")
	}
	if len(p.SSHKeys) > 0 {
		add("ssh_keys", strconv.Itoa(len(p.SSHKeys)))
	}
	if p.SSHPasswordAuth != nil {
		add("ssh_password_auth", strconv.FormatBool(*p.SSHPasswordAuth))
	}
	if p.WiFi != nil {
		add("wifi", strconv.Quote(p.WiFi.SSID)+" country "+p.WiFi.Country)
	}
	add("locale", p.Locale)
	add("timezone", p.Timezone)
	add("keyboard", p.Keyboard)
	if len(p.Files) > 0 {
		paths := make([]string, len(p.Files))
		for i, f := range p.Files {
			paths[i] = f.Path
		}
		add("files", strings.Join(paths, ","))
	}
	if len(p.RunOnce) > 0 {
		add("run_once", strconv.Itoa(len(p.RunOnce)))
	}
	return strings.Join(parts, "; ")
}

// DeleteProfile removes a profile attached to nothing.
func (s *Service) DeleteProfile(ctx context.Context, name string) error {
	return changeNoRow(ctx, s, events.ProfileChanged, map[string]any{"name": name, "deleted": true}, func(t *store.Tx) (auditLine, error) {
		if err := t.DeleteProfile(ctx, name); err != nil {
			return auditLine{}, fmt.Errorf("profile %q: %w", name, err)
		}
		return auditLine{"profile.delete", name, ""}, nil
	})
}

// AttachProfile attaches profile name to a product, venue or batch (target: the
// code, or the batch ID), replacing the profile attached there before; name ""
// detaches.
func (s *Service) AttachProfile(ctx context.Context, scope, target, name string) (mgmtapi.ProfileLink, error) {
	l := wireProfileLink(store.ProfileLink{Scope: scope, Target: target, Profile: name})
	return l, changeNoRow(ctx, s, events.ProfileChanged, map[string]any{"link": l}, func(t *store.Tx) (auditLine, error) {
		if err := checkProfileTarget(ctx, t, scope, target); err != nil {
			return auditLine{}, err
		}
		if name == "" {
			if err := t.UnlinkProfile(ctx, scope, target); err != nil {
				return auditLine{}, fmt.Errorf("%s %s has no profile: %w", scope, target, err)
			}
			return auditLine{"profile.detach", scope + " " + target, ""}, nil
		}
		if _, err := t.Profile(ctx, name); errors.Is(err, store.ErrNotFound) {
			return auditLine{}, invalid("profile", "profile %q does not exist", name)
		} else if err != nil {
			return auditLine{}, err
		}
		return auditLine{"profile.attach", scope + " " + target, name}, t.LinkProfile(ctx, store.ProfileLink(l))
	})
}

// checkProfileTarget checks that the product, venue or batch a profile is attached
// to exists.
func checkProfileTarget(ctx context.Context, t *store.Tx, scope, target string) error {
	var err error
	switch scope {
	case store.ScopeProduct:
		_, err = t.Product(ctx, target)
	case store.ScopeVenue:
		_, err = t.Venue(ctx, target)
	case store.ScopeBatch:
		id, perr := strconv.ParseInt(target, 10, 64)
		if perr != nil {
			return invalid("target", "batch %q: want a batch ID", target)
		}
		_, err = t.Batch(ctx, id)
	default:
		return invalid("scope", "scope %q: want product, venue or batch", scope)
	}
	if errors.Is(err, store.ErrNotFound) {
		return invalid("target", "%s %q does not exist", scope, target)
	}
	return err
}

// effectiveProfile merges the profiles attached to the product, the venue and the
// batch (batch 0: none), in that order. ok is false when none is attached.
func effectiveProfile(ctx context.Context, t *store.Tx, product, venue string, batch int64) (p profile.Profile, ok bool, err error) {
	batchTarget := ""
	if batch != 0 {
		batchTarget = strconv.FormatInt(batch, 10)
	}
	linked, err := t.LinkedProfiles(ctx, product, venue, batchTarget)
	if err != nil || len(linked) == 0 {
		return p, false, err
	}
	layers := make([]profile.Profile, 0, len(linked))
	for _, sp := range linked {
		pr, err := decodeProfile(sp)
		if err != nil {
			return p, false, err
		}
		layers = append(layers, pr)
	}
	return profile.Merge(layers...), true, nil
}

// EffectiveProfile is the merged profile a new deployment of product at venue in
// batch (0: none) would get now, secrets redacted.
func (s *Service) EffectiveProfile(ctx context.Context, product, venue string, batch int64) (profile.Redacted, error) {
	var r profile.Redacted
	err := s.st.Update(ctx, func(t *store.Tx) error {
		p, _, err := effectiveProfile(ctx, t, product, venue, batch)
		r = profile.Redact(p)
		return err
	})
	return r, err
}

// recordProfile fixes the effective profile of a new deployment and returns it; ok
// is false when no profile applies.
func recordProfile(ctx context.Context, t *store.Tx, id int64, product, venue string, batch int64) (p profile.Profile, ok bool, err error) {
	p, ok, err = effectiveProfile(ctx, t, product, venue, batch)
	if err != nil || !ok {
		return p, false, err
	}
	spec, err := json.Marshal(p)
	if err != nil {
		return p, false, err
	}
	return p, true, t.SetDeploymentProfile(ctx, id, string(spec))
}

// DeploymentProfile returns the profile recorded with deployment id, secrets
// redacted; ok is false when the deployment has none.
func (s *Service) DeploymentProfile(ctx context.Context, id int64) (r profile.Redacted, ok bool, err error) {
	if _, err := s.st.Deployment(ctx, id); err != nil {
		return r, false, fmt.Errorf("deployment %d: %w", id, err)
	}
	spec, err := s.st.DeploymentProfile(ctx, id)
	if err != nil || spec == "" {
		return r, false, err
	}
	var p profile.Profile
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		return r, false, fmt.Errorf("deployment %d profile: %w", id, err)
	}
	return profile.Redact(p), true, nil
}

// applyProfile puts the profile recorded with d into its deploy answer (a board
// that asks again while its deployment is open).
func applyProfile(ctx context.Context, t *store.Tx, resp *agentapi.HelloResponse, d store.Deployment, img store.Image) error {
	spec, err := t.DeploymentProfile(ctx, d.ID)
	if err != nil || spec == "" || resp.Deployment == nil {
		return err
	}
	var p profile.Profile
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		return fmt.Errorf("deployment %d profile: %w", d.ID, err)
	}
	return renderProfile(resp, p, d, img)
}

// renderProfile puts profile p into d's deploy answer, the files rendered over the
// board's facts.
func renderProfile(resp *agentapi.HelloResponse, p profile.Profile, d store.Deployment, img store.Image) error {
	facts := profile.Facts{Hostname: d.Hostname, Serial: d.Serial, MAC: d.MAC, Venue: d.Venue, Product: d.Product,
		Batch: d.BatchID, DeploymentID: d.ID, ImageName: img.Name, ImageSHA256: img.SHA256}
	fb, err := profile.FirstBoot(resp.Deployment.FirstBoot, p, facts)
	if err != nil {
		return fmt.Errorf("deployment %d profile %s: %w", d.ID, p.Name, err)
	}
	resp.Deployment.FirstBoot = fb
	return nil
}

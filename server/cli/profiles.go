package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/profile"
)

func init() {
	commands = append(commands,
		cmd{name: "profile set", flags: "file", args: "NAME [--file PROFILE.json|-]", help: "create or replace a first-boot profile from JSON (stdin without --file; secrets go in the file, never on the command line: docs/profiles.md)", run: cmdProfileSet},
		cmd{name: "profile list", help: "list first-boot profiles and where they are attached", run: cmdProfileList},
		cmd{name: "profile show", args: "NAME", help: "print a profile (password and PSK shown as set)", run: cmdProfileShow},
		cmd{name: "profile rm", args: "NAME", help: "delete a profile attached to nothing", run: cmdProfileRm},
		cmd{name: "profile attach", flags: "product venue batch", args: "NAME --product CODE|--venue CODE|--batch ID", help: "attach a profile to a product, or override it for a venue or a batch", run: cmdProfileAttach},
		cmd{name: "profile detach", flags: "product venue batch", args: "--product CODE|--venue CODE|--batch ID", help: "detach the profile of a product, venue or batch", run: cmdProfileAttach},
		cmd{name: "profile effective", flags: "product venue batch", args: "--product CODE --venue CODE [--batch ID]", help: "the merged profile a new deployment would get now", run: cmdProfileEffective},
		cmd{name: "profile deployment", args: "ID", help: "the profile recorded with a deployment", run: cmdProfileDeployment},
	)
}

func cmdProfileSet(ctx context.Context, x *ctxt) error {
	name, err := x.arg(0, "NAME")
	if err != nil {
		return err
	}
	var in io.Reader = x.env.Stdin
	if f := x.flagStr("file"); f != "" && f != "-" {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		defer fh.Close()
		in = fh
	} else if in == nil {
		in = os.Stdin
	}
	body, err := io.ReadAll(io.LimitReader(in, 4<<20))
	if err != nil {
		return fmt.Errorf("read profile: %w", err)
	}
	var raw json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return fmt.Errorf("profile JSON: %w", err)
	}
	var v mgmtapi.ProfileView
	if err := x.c.Put(ctx, v1+"/profiles/"+url.PathEscape(name), raw, &v); err != nil {
		return err
	}
	if *x.json {
		return x.printJSON(v)
	}
	fmt.Fprintf(x.out, "profile %s saved: %s\n", v.Name, describe(v.Redacted))
	return nil
}

// describe says in one line what a redacted profile sets.
func describe(r profile.Redacted) string {
	var parts []string
	if r.User != "" {
		u := "user " + r.User
		if r.PasswordSet {
			u += " (password set)"
		}
		parts = append(parts, u)
	}
	if len(r.SSHKeys) > 0 {
		parts = append(parts, strconv.Itoa(len(r.SSHKeys))+" ssh keys")
	}
	if r.SSHPasswordAuth != nil {
		parts = append(parts, "ssh password auth "+strconv.FormatBool(*r.SSHPasswordAuth))
	}
	if r.WiFi != nil {
		parts = append(parts, "wifi "+strconv.Quote(r.WiFi.SSID))
	}
	for _, kv := range [][2]string{{"locale", r.Locale}, {"timezone", r.Timezone}, {"keyboard", r.Keyboard}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	if len(r.Files) > 0 {
		parts = append(parts, strconv.Itoa(len(r.Files))+" files")
	}
	if len(r.RunOnce) > 0 {
		parts = append(parts, strconv.Itoa(len(r.RunOnce))+" run-once commands")
	}
	if len(parts) == 0 {
		return "empty"
	}
	return strings.Join(parts, ", ")
}

func cmdProfileList(ctx context.Context, x *ctxt) error {
	var ps []mgmtapi.ProfileView
	if err := x.c.Get(ctx, v1+"/profiles", nil, &ps); err != nil {
		return err
	}
	var links []mgmtapi.ProfileLink
	if err := x.c.Get(ctx, v1+"/profile-links", nil, &links); err != nil {
		return err
	}
	if *x.json {
		return x.printJSON(map[string]any{"profiles": ps, "links": links})
	}
	rows := [][]string{}
	for _, p := range ps {
		var at []string
		for _, l := range links {
			if l.Profile == p.Name {
				at = append(at, l.Scope+" "+l.Target)
			}
		}
		rows = append(rows, []string{p.Name, strings.Join(at, ", "), describe(p.Redacted), p.UpdatedAt})
	}
	x.table([]string{"NAME", "ATTACHED TO", "SETS", "UPDATED"}, rows)
	return nil
}

func cmdProfileShow(ctx context.Context, x *ctxt) error {
	name, err := x.arg(0, "NAME")
	if err != nil {
		return err
	}
	var v mgmtapi.ProfileView
	if err := x.c.Get(ctx, v1+"/profiles/"+url.PathEscape(name), nil, &v); err != nil {
		return err
	}
	return x.printJSON(v)
}

func cmdProfileRm(ctx context.Context, x *ctxt) error {
	name, err := x.arg(0, "NAME")
	if err != nil {
		return err
	}
	if err := x.c.Delete(ctx, v1+"/profiles/"+url.PathEscape(name)); err != nil {
		return err
	}
	fmt.Fprintf(x.out, "profile %s deleted\n", name)
	return nil
}

// scopeFlag returns the one scope flag given.
func (x *ctxt) scopeFlag() (scope, target string, err error) {
	for _, s := range []string{mgmtapi.ScopeProduct, mgmtapi.ScopeVenue, mgmtapi.ScopeBatch} {
		if v := x.flagStr(s); v != "" {
			if scope != "" {
				return "", "", fmt.Errorf("%w: one of --product, --venue, --batch", errUsage)
			}
			scope, target = s, v
		}
	}
	if scope == "" {
		return "", "", fmt.Errorf("%w: one of --product, --venue, --batch", errUsage)
	}
	return scope, target, nil
}

func cmdProfileAttach(ctx context.Context, x *ctxt) error {
	scope, target, err := x.scopeFlag()
	if err != nil {
		return err
	}
	path := v1 + "/profile-links/" + scope + "/" + url.PathEscape(target)
	if x.fs.Name() == "profile detach" {
		if err := x.c.Delete(ctx, path); err != nil {
			return err
		}
		fmt.Fprintf(x.out, "%s %s: profile detached\n", scope, target)
		return nil
	}
	name, err := x.arg(0, "NAME")
	if err != nil {
		return err
	}
	if err := x.c.Put(ctx, path, map[string]string{"profile": name}, nil); err != nil {
		return err
	}
	fmt.Fprintf(x.out, "%s %s: profile %s attached\n", scope, target, name)
	return nil
}

func cmdProfileEffective(ctx context.Context, x *ctxt) error {
	q := url.Values{"product": {x.flagStr("product")}, "venue": {x.flagStr("venue")}, "batch": {x.flagStr("batch")}}
	var r profile.Redacted
	if err := x.c.Get(ctx, v1+"/effective-profile", q, &r); err != nil {
		return err
	}
	return x.printJSON(r)
}

func cmdProfileDeployment(ctx context.Context, x *ctxt) error {
	id, err := x.arg(0, "ID")
	if err != nil {
		return err
	}
	var r profile.Redacted
	if err := x.c.Get(ctx, v1+"/deployments/"+url.PathEscape(id)+"/profile", nil, &r); err != nil {
		return err
	}
	return x.printJSON(r)
}

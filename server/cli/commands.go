package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/progress"
	"github.com/rpi-deploy/rpi-deploy/image-tools/push"
	"github.com/rpi-deploy/rpi-deploy/server/client"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
)

const v1 = "/api/v1"

// printJSON writes v indented.
func (x *ctxt) printJSON(v any) error {
	enc := json.NewEncoder(x.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// show prints v as JSON when --json, else calls table.
func show[T any](x *ctxt, v T, table func(T)) error {
	if *x.json {
		return x.printJSON(v)
	}
	table(v)
	return nil
}

func itoa[T ~int | ~int64](n T) string { return strconv.FormatInt(int64(n), 10) }

var commands []cmd

func init() {
	commands = []cmd{
		{name: "status", flags: "site", args: "[--site NAME]", help: "server health and the fleet at a glance (of one site)", run: cmdStatus},
		{name: "sites", help: "the sites known to the database, with their boards and deployments", run: cmdSites},
		{name: "venue add", flags: "name", args: "CODE [--name NAME]", help: "add a venue (4 upper-case letters) or rename it", run: cmdVenueAdd},
		{name: "venue list", help: "list venues", run: cmdVenueList},
		{name: "venue rm", args: "CODE", help: "remove a venue nothing refers to", run: cmdVenueRm},
		{name: "product add", flags: "name naming digits:int mechanism timezone keyboard ssh-key", args: "CODE --naming pool|serial [--name NAME] [--digits 3] [--mechanism M] [--timezone TZ] [--ssh-key KEY]", help: "add or change a product and its naming strategy", run: cmdProductAdd},
		{name: "product list", help: "list products", run: cmdProductList},
		{name: "pool add", flags: "venue product count:int start:int", args: "--venue CODE --product CODE --count N [--start N]", help: "generate pool names (PRODUCT-VENUE-NNN)", run: cmdPoolAdd},
		{name: "pool list", flags: "venue product free:bool", args: "[--venue CODE] [--product CODE] [--free]", help: "pools (counts), or the names of one pool with who holds which", run: cmdPoolList},
		{name: "pool import", flags: "venue product", args: "--venue CODE --product CODE FILE.csv", help: "import names from CSV: name[,serial[,retired]]", run: cmdPoolImport},
		{name: "pool export", flags: "venue product", args: "--venue CODE --product CODE", help: "print a pool as CSV", run: cmdPoolExport},
		{name: "pool retire", args: "NAME", help: "retire a name: never handed out again", run: cmdPoolAction("retire")},
		{name: "pool unretire", args: "NAME", help: "return a retired name to service", run: cmdPoolAction("unretire")},
		{name: "pool release", args: "NAME", help: "unbind a name from its board", run: cmdPoolAction("release")},
		{name: "pool release-unused", flags: "venue product dry-run:bool", args: "[--venue CODE] [--product CODE] [--dry-run]", help: "unbind every name whose board has no open deployment and never had a verified card under it (a hello flood's names)", run: cmdPoolReleaseUnused},
		{name: "image add", flags: "activate allow-no-first-boot:bool", args: "FILE.img.zst [--activate PRODUCT] [--allow-no-first-boot]", help: "upload a packed image (manifest beside it), resumable; an image without a first-boot mechanism needs --allow-no-first-boot", run: cmdImageAdd},
		{name: "image list", help: "list images", run: cmdImageList},
		{name: "image show", args: "NAME", help: "print an image's manifest", run: cmdImageShow},
		{name: "image activate", flags: "product allow-no-first-boot:bool", args: "NAME --product CODE [--allow-no-first-boot]", help: "make an image the product's active image (one without a first-boot mechanism needs --allow-no-first-boot)", run: cmdImageActivate},
		{name: "image set", flags: "p2p", args: "NAME --p2p on|off|inherit", help: "set an image's peer-to-peer mode (inherit: rpi-deployd --p2p decides; a batch's own mode goes first)", run: cmdImageSet},
		{name: "image pull", flags: "from", args: "NAME [--from SITE]", help: "fetch a ready image from another site's server into this one (resumable, verified against the manifest); waits and shows the progress", run: cmdImagePull},
		{name: "image rm", args: "NAME", help: "delete an unused image", run: cmdImageRm},
		{name: "batch add", flags: "venue product image count:int priority:int paused:bool note allow-no-first-boot:bool", args: "--venue CODE --product CODE [--count N] [--image NAME] [--priority N] [--paused] [--note TEXT] [--allow-no-first-boot]", help: "create a batch (count 0 = open-ended; --paused creates it pending: batch resume starts it; an image without a first-boot mechanism needs --allow-no-first-boot)", run: cmdBatchAdd},
		{name: "batch list", flags: "state", args: "[--state S]", help: "list batches and their progress", run: cmdBatchList},
		{name: "batch pause", args: "ID", help: "pause a batch", run: cmdBatchChange(mgmtapi.BatchPause)},
		{name: "batch resume", args: "ID", help: "resume a batch", run: cmdBatchChange(mgmtapi.BatchResume)},
		{name: "batch cancel", args: "ID", help: "cancel a batch", run: cmdBatchChange(mgmtapi.BatchCancel)},
		{name: "batch priority", args: "ID N", help: "set a batch's priority (higher first)", run: cmdBatchChange(mgmtapi.BatchPriority)},
		{name: "batch set", flags: "p2p", args: "ID --p2p on|off|inherit", help: "set a batch's peer-to-peer mode for its boards' next hellos (inherit: the image's mode, else rpi-deployd --p2p)", run: cmdBatchSet},
		{name: "deployments", flags: "state venue product serial since until site batch:int limit:int csv:bool", args: "[--state S] [--venue V] [--batch ID] [--serial S] [--site NAME] [--limit N] [--csv]", help: "list deployments", run: cmdDeployments},
		{name: "deployment abandon", flags: "reason", args: "ID [--reason TEXT]", help: "close an open deployment that will not finish", run: cmdAbandon},
		{name: "boards", flags: "q site", args: "[-q TEXT] [--site NAME]", help: "list boards (seen last at one site)", run: cmdBoards},
		{name: "board show", args: "SERIAL", help: "a board with its deployments and history", run: cmdBoardShow},
		{name: "board reimage", flags: "off:bool", args: "SERIAL [--off]", help: "flag a board for re-imaging on its next boot", run: cmdBoardReimage},
		{name: "audit", flags: "limit:int", args: "[--limit N]", help: "the audit log of operator actions", run: cmdAudit},
		{name: "user add", flags: "data db", args: "NAME [--data DIR | --db URL]", help: "add a dashboard user or set its password (from $RPI_DEPLOY_PASSWORD or the first line of stdin); with --data (SQLite) or --db (PostgreSQL), writes the database directly", run: cmdUserAdd},
		{name: "user list", help: "list users", run: cmdUserList},
		{name: "user rm", args: "NAME", help: "remove a user", run: cmdUserRm},
	}
}

func cmdStatus(ctx context.Context, x *ctxt) error {
	var h map[string]any
	if err := x.c.Get(ctx, "/healthz", nil, &h); err != nil {
		return err
	}
	var f struct {
		Active  []mgmtapi.Deployment `json:"active"`
		Batches []mgmtapi.Batch      `json:"batches"`
		Counts  map[string]int64     `json:"counts"`
		Streams int64                `json:"streams_in_flight"`
	}
	if err := x.c.Get(ctx, v1+"/fleet", siteQuery(x), &f); err != nil {
		return err
	}
	if *x.json {
		return x.printJSON(map[string]any{"health": h, "fleet": f})
	}
	fmt.Fprintf(x.out, "server %s: %v (version %v, schema %v)\n", x.c.URL, h["status"], h["version"], h["schema"])
	fmt.Fprintf(x.out, "deployments: %d open, %d verified, %d failed; %d image streams\n", len(f.Active), f.Counts["verified"], f.Counts["failed"], f.Streams)
	for _, b := range f.Batches {
		fmt.Fprintf(x.out, "batch %d %s %s %s: %d/%s done, %d in progress\n", b.ID, b.State, b.Venue, b.Product, b.Done, countStr(b.Count), b.InFlight)
	}
	return nil
}

// siteQuery is ?site= of --site; nil without it.
func siteQuery(x *ctxt) url.Values {
	if s := x.flagStr("site"); s != "" {
		return url.Values{"site": {s}}
	}
	return nil
}

func cmdSites(ctx context.Context, x *ctxt) error {
	var ss []mgmtapi.Site
	if err := x.c.Get(ctx, v1+"/sites", nil, &ss); err != nil {
		return err
	}
	return show(x, ss, func(ss []mgmtapi.Site) {
		rows := [][]string{}
		for _, s := range ss {
			name := s.Name
			if s.Current {
				name += " *"
			}
			rows = append(rows, []string{name, itoa(s.Boards), itoa(s.Deployments), itoa(s.Open), s.StartedAt})
		}
		x.table([]string{"SITE", "BOARDS", "DEPLOYMENTS", "OPEN", "STARTED"}, rows)
	})
}

func countStr(n int) string {
	if n == 0 {
		return "∞"
	}
	return itoa(n)
}

func cmdVenueAdd(ctx context.Context, x *ctxt) error {
	code, err := x.arg(0, "CODE")
	if err != nil {
		return err
	}
	var v mgmtapi.Venue
	if err := x.c.Post(ctx, v1+"/venues", map[string]string{"code": code, "name": x.flagStr("name")}, &v); err != nil {
		return err
	}
	return show(x, v, func(v mgmtapi.Venue) { fmt.Fprintf(x.out, "venue %s %q\n", v.Code, v.Name) })
}

func cmdVenueList(ctx context.Context, x *ctxt) error {
	var vs []mgmtapi.Venue
	if err := x.c.Get(ctx, v1+"/venues", nil, &vs); err != nil {
		return err
	}
	return show(x, vs, func(vs []mgmtapi.Venue) {
		rows := [][]string{}
		for _, v := range vs {
			rows = append(rows, []string{v.Code, v.Name, v.CreatedAt})
		}
		x.table([]string{"CODE", "NAME", "CREATED"}, rows)
	})
}

func cmdVenueRm(ctx context.Context, x *ctxt) error {
	code, err := x.arg(0, "CODE")
	if err != nil {
		return err
	}
	return x.c.Delete(ctx, v1+"/venues/"+url.PathEscape(code))
}

func cmdProductAdd(ctx context.Context, x *ctxt) error {
	code, err := x.arg(0, "CODE")
	if err != nil {
		return err
	}
	ps := mgmtapi.ProductSpec{Code: code, Name: x.flagStr("name"), Naming: x.flagStr("naming"), Digits: x.flagInt("digits")}
	fb := agentapi.FirstBoot{Mechanism: x.flagStr("mechanism"), Timezone: x.flagStr("timezone"), KeyboardLayout: x.flagStr("keyboard")}
	if k := x.flagStr("ssh-key"); k != "" {
		fb.SSHKeys, fb.EnableSSH = []string{k}, true
	}
	ps.FirstBoot = &fb
	var p map[string]any
	if err := x.c.Post(ctx, v1+"/products", ps, &p); err != nil {
		return err
	}
	return show(x, p, func(p map[string]any) { fmt.Fprintf(x.out, "product %v naming %v\n", p["code"], p["naming"]) })
}

func cmdProductList(ctx context.Context, x *ctxt) error {
	var ps []mgmtapi.Product
	if err := x.c.Get(ctx, v1+"/products", nil, &ps); err != nil {
		return err
	}
	return show(x, ps, func(ps []mgmtapi.Product) {
		rows := [][]string{}
		for _, p := range ps {
			rows = append(rows, []string{p.Code, p.Name, p.Naming, itoa(p.Digits), p.Image})
		}
		x.table([]string{"CODE", "NAME", "NAMING", "DIGITS", "ACTIVE IMAGE"}, rows)
	})
}

func cmdPoolAdd(ctx context.Context, x *ctxt) error {
	var out struct {
		Added int      `json:"added"`
		Names []string `json:"names"`
	}
	body := map[string]any{"venue": x.flagStr("venue"), "product": x.flagStr("product"), "count": x.flagInt("count"), "start": x.flagInt("start")}
	if err := x.c.Post(ctx, v1+"/pools/generate", body, &out); err != nil {
		return err
	}
	return show(x, out, func(o struct {
		Added int      `json:"added"`
		Names []string `json:"names"`
	}) {
		fmt.Fprintf(x.out, "added %d names: %s … %s\n", o.Added, o.Names[0], o.Names[len(o.Names)-1])
	})
}

func cmdPoolList(ctx context.Context, x *ctxt) error {
	if x.flagStr("venue") == "" && x.flagStr("product") == "" {
		var ps []mgmtapi.PoolStats
		if err := x.c.Get(ctx, v1+"/pools", nil, &ps); err != nil {
			return err
		}
		return show(x, ps, func(ps []mgmtapi.PoolStats) {
			rows := [][]string{}
			for _, p := range ps {
				rows = append(rows, []string{p.Venue, p.Product, itoa(p.Total), itoa(p.Bound), itoa(p.Free), itoa(p.Retired)})
			}
			x.table([]string{"VENUE", "PRODUCT", "TOTAL", "BOUND", "FREE", "RETIRED"}, rows)
		})
	}
	q := url.Values{"venue": {x.flagStr("venue")}, "product": {x.flagStr("product")}}
	if x.flagBool("free") {
		q.Set("free", "1")
	}
	var ns []mgmtapi.PoolName
	if err := x.c.Get(ctx, v1+"/pools/names", q, &ns); err != nil {
		return err
	}
	return show(x, ns, func(ns []mgmtapi.PoolName) {
		rows := [][]string{}
		for _, n := range ns {
			r := ""
			if n.Retired {
				r = "retired"
			}
			rows = append(rows, []string{n.Name, n.Serial, n.BoundAt, r})
		}
		x.table([]string{"NAME", "SERIAL", "BOUND", ""}, rows)
	})
}

func cmdPoolImport(ctx context.Context, x *ctxt) error {
	file, err := x.arg(0, "FILE.csv")
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var out map[string]int
	q := url.Values{"venue": {x.flagStr("venue")}, "product": {x.flagStr("product")}}
	if err := x.c.Do(ctx, "POST", v1+"/pools/import", q, f, &out); err != nil {
		return err
	}
	return show(x, out, func(o map[string]int) { fmt.Fprintf(x.out, "imported %d names\n", o["added"]) })
}

func cmdPoolExport(ctx context.Context, x *ctxt) error {
	var b []byte
	q := url.Values{"venue": {x.flagStr("venue")}, "product": {x.flagStr("product")}}
	if err := x.c.Get(ctx, v1+"/pools/export", q, &b); err != nil {
		return err
	}
	_, err := x.out.Write(b)
	return err
}

func cmdPoolAction(action string) func(context.Context, *ctxt) error {
	return func(ctx context.Context, x *ctxt) error {
		name, err := x.arg(0, "NAME")
		if err != nil {
			return err
		}
		var p mgmtapi.PoolName
		if err := x.c.Post(ctx, v1+"/pools/names/"+url.PathEscape(name)+"/"+action, map[string]any{}, &p); err != nil {
			return err
		}
		return show(x, p, func(p mgmtapi.PoolName) {
			fmt.Fprintf(x.out, "%s: serial %q retired %v\n", p.Name, p.Serial, p.Retired)
		})
	}
}

func cmdPoolReleaseUnused(ctx context.Context, x *ctxt) error {
	type released struct {
		Released int      `json:"released"`
		Names    []string `json:"names"`
		DryRun   bool     `json:"dry_run"`
	}
	var out released
	body := map[string]any{"venue": x.flagStr("venue"), "product": x.flagStr("product"), "dry_run": x.flagBool("dry-run")}
	if err := x.c.Post(ctx, v1+"/pools/release-unused", body, &out); err != nil {
		return err
	}
	return show(x, out, func(o released) {
		verb := "released"
		if o.DryRun {
			verb = "would release"
		}
		fmt.Fprintf(x.out, "%s %d names\n", verb, o.Released)
		for _, n := range o.Names {
			fmt.Fprintln(x.out, n)
		}
	})
}

func cmdImageAdd(ctx context.Context, x *ctxt) error {
	file, err := x.arg(0, "FILE.img.zst")
	if err != nil {
		return err
	}
	hc := *x.c.HTTP // its transport (TLS settings), without the overall timeout
	hc.Timeout = 0
	if err := push.Push(ctx, push.Options{Server: x.c.URL, Token: x.c.Token, Image: file, Progress: x.env.Stderr, Client: &hc,
		AllowNoFirstBoot: x.flagBool("allow-no-first-boot")}); err != nil {
		return err
	}
	if p := x.flagStr("activate"); p != "" {
		name := strings.TrimSuffix(strings.TrimSuffix(baseName(file), ".zst"), ".img")
		if m, err := loadName(file); err == nil {
			name = m
		}
		if err := x.c.Post(ctx, v1+"/images/"+url.PathEscape(name)+"/activate",
			map[string]any{"product": p, "allow_no_first_boot": x.flagBool("allow-no-first-boot")}, nil); err != nil {
			return err
		}
		fmt.Fprintf(x.out, "image %s active for %s\n", name, p)
	}
	return nil
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

func cmdImageList(ctx context.Context, x *ctxt) error {
	var is []struct {
		mgmtapi.Image
		Uploaded  int64    `json:"uploaded"`
		ActiveFor []string `json:"active_for"`
	}
	if err := x.c.Get(ctx, v1+"/images", nil, &is); err != nil {
		return err
	}
	return show(x, is, func(is []struct {
		mgmtapi.Image
		Uploaded  int64    `json:"uploaded"`
		ActiveFor []string `json:"active_for"`
	}) {
		rows := [][]string{}
		for _, i := range is {
			st := i.State
			if st == mgmtapi.ImageUploading {
				st = fmt.Sprintf("uploading %d%%", i.Uploaded*100/max(1, i.CompressedSize))
			}
			rows = append(rows, []string{i.Name, st, progress.Bytes(i.Size), progress.Bytes(i.CompressedSize), i.FirstBoot,
				strings.Join(i.ActiveFor, ","), imageSites(i.Image), i.SHA256[:12]})
		}
		x.table([]string{"NAME", "STATE", "SIZE", "COMPRESSED", "FIRST BOOT", "ACTIVE FOR", "SITES", "SHA256"}, rows)
	})
}

// imageSites is an image's sites for the table: "main,north(pulling 40%)"; "-"
// when none has recorded it.
func imageSites(img mgmtapi.Image) string {
	if len(img.Sites) == 0 {
		return "-"
	}
	var parts []string
	for _, s := range img.Sites {
		p := s.Site
		if s.State != mgmtapi.ImageSiteReady {
			p += fmt.Sprintf("(%s %d%%)", s.State, s.Bytes*100/max(1, img.CompressedSize))
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}

func cmdImageShow(ctx context.Context, x *ctxt) error {
	name, err := x.arg(0, "NAME")
	if err != nil {
		return err
	}
	var b []byte
	if err := x.c.Get(ctx, v1+"/images/"+url.PathEscape(name)+"/manifest", nil, &b); err != nil {
		return err
	}
	_, err = x.out.Write(b)
	return err
}

func cmdImageActivate(ctx context.Context, x *ctxt) error {
	name, err := x.arg(0, "NAME")
	if err != nil {
		return err
	}
	if err := x.c.Post(ctx, v1+"/images/"+url.PathEscape(name)+"/activate",
		map[string]any{"product": x.flagStr("product"), "allow_no_first_boot": x.flagBool("allow-no-first-boot")}, nil); err != nil {
		return err
	}
	fmt.Fprintf(x.out, "image %s active for %s\n", name, x.flagStr("product"))
	return nil
}

func cmdImageSet(ctx context.Context, x *ctxt) error {
	name, err := x.arg(0, "NAME")
	if err != nil {
		return err
	}
	if x.flagStr("p2p") == "" {
		return fmt.Errorf("%w: --p2p on|off|inherit is needed", errUsage)
	}
	var img mgmtapi.Image
	if err := x.c.Post(ctx, v1+"/images/"+url.PathEscape(name)+"/p2p", map[string]string{"p2p": x.flagStr("p2p")}, &img); err != nil {
		return err
	}
	return show(x, img, func(img mgmtapi.Image) { fmt.Fprintf(x.out, "image %s: p2p %s\n", img.Name, img.P2P) })
}

func cmdBatchSet(ctx context.Context, x *ctxt) error {
	id, err := x.arg(0, "ID")
	if err != nil {
		return err
	}
	if x.flagStr("p2p") == "" {
		return fmt.Errorf("%w: --p2p on|off|inherit is needed", errUsage)
	}
	var b mgmtapi.Batch
	if err := x.c.Post(ctx, v1+"/batches/"+url.PathEscape(id)+"/p2p", map[string]string{"p2p": x.flagStr("p2p")}, &b); err != nil {
		return err
	}
	return show(x, b, func(b mgmtapi.Batch) { fmt.Fprintf(x.out, "batch %d: p2p %s\n", b.ID, b.P2P) })
}

// pullPoll is how often `image pull` asks how far the pull is.
const pullPoll = 500 * time.Millisecond

// cmdImagePull starts the pull of an image from another site and follows it with a
// progress bar until this site holds it ready, or the pull stops with an error
// (client.PullImage).
func cmdImagePull(ctx context.Context, x *ctxt) error {
	name, err := x.arg(0, "NAME")
	if err != nil {
		return err
	}
	var bar *progress.Bar
	err = x.c.PullImage(ctx, name, x.flagStr("from"), pullPoll, func(bytes, size int64) {
		if bar == nil {
			bar = progress.Start(x.env.Stderr, "pulling "+name, size)
		}
		if d := bytes - bar.Done(); d != 0 {
			bar.Add(d)
		}
	})
	if bar != nil {
		bar.Finish(err == nil)
	}
	if err != nil {
		if _, stopped := errors.AsType[*client.PullStopped](err); stopped {
			return fmt.Errorf("%w (run image pull again to continue from there)", err)
		}
		return err
	}
	fmt.Fprintf(x.out, "image %s ready at this site\n", name)
	return nil
}

func cmdImageRm(ctx context.Context, x *ctxt) error {
	name, err := x.arg(0, "NAME")
	if err != nil {
		return err
	}
	return x.c.Delete(ctx, v1+"/images/"+url.PathEscape(name))
}

func cmdBatchAdd(ctx context.Context, x *ctxt) error {
	bs := mgmtapi.BatchSpec{Venue: x.flagStr("venue"), Product: x.flagStr("product"), Image: x.flagStr("image"),
		Count: x.flagInt("count"), Priority: x.flagInt("priority"), Paused: x.flagBool("paused"), Note: x.flagStr("note"),
		AllowNoFirstBoot: x.flagBool("allow-no-first-boot")}
	var b mgmtapi.Batch
	if err := x.c.Post(ctx, v1+"/batches", bs, &b); err != nil {
		return err
	}
	return show(x, b, func(b mgmtapi.Batch) {
		fmt.Fprintf(x.out, "batch %d: %s %s count %s image %q priority %d, %s\n", b.ID, b.Venue, b.Product, countStr(b.Count), b.Image, b.Priority, b.State)
	})
}

func cmdBatchList(ctx context.Context, x *ctxt) error {
	var bs []mgmtapi.Batch
	if err := x.c.Get(ctx, v1+"/batches", url.Values{"state": {x.flagStr("state")}}, &bs); err != nil {
		return err
	}
	return show(x, bs, func(bs []mgmtapi.Batch) {
		rows := [][]string{}
		for _, b := range bs {
			rows = append(rows, []string{itoa(b.ID), b.State, b.Venue, b.Product, b.Image, itoa(b.Done) + "/" + countStr(b.Count),
				itoa(b.InFlight), itoa(b.Failed), itoa(b.Priority), b.CreatedAt})
		}
		x.table([]string{"ID", "STATE", "VENUE", "PRODUCT", "IMAGE", "DONE", "IN PROGRESS", "FAILED", "PRIORITY", "CREATED"}, rows)
	})
}

func cmdBatchChange(action string) func(context.Context, *ctxt) error {
	return func(ctx context.Context, x *ctxt) error {
		id, err := x.arg(0, "ID")
		if err != nil {
			return err
		}
		var body any = map[string]any{}
		if action == mgmtapi.BatchPriority {
			n, err := x.arg(1, "N")
			if err != nil {
				return err
			}
			p, err := strconv.Atoi(n)
			if err != nil {
				return fmt.Errorf("%w: priority %q is not a number", errUsage, n)
			}
			body = map[string]int{"priority": p}
		}
		var b mgmtapi.Batch
		if err := x.c.Post(ctx, v1+"/batches/"+url.PathEscape(id)+"/"+action, body, &b); err != nil {
			return err
		}
		return show(x, b, func(b mgmtapi.Batch) { fmt.Fprintf(x.out, "batch %d: %s, priority %d\n", b.ID, b.State, b.Priority) })
	}
}

func cmdDeployments(ctx context.Context, x *ctxt) error {
	q := url.Values{}
	for _, k := range []string{"state", "venue", "product", "serial", "since", "until", "site"} {
		if v := x.flagStr(k); v != "" {
			q.Set(k, v)
		}
	}
	if n := x.flagInt("batch"); n > 0 {
		q.Set("batch", itoa(n))
	}
	if n := x.flagInt("limit"); n > 0 {
		q.Set("limit", itoa(n))
	}
	if x.flagBool("csv") {
		q.Set("format", "csv")
		var b []byte
		if err := x.c.Get(ctx, v1+"/deployments", q, &b); err != nil {
			return err
		}
		_, err := x.out.Write(b)
		return err
	}
	var ds []mgmtapi.Deployment
	if err := x.c.Get(ctx, v1+"/deployments", q, &ds); err != nil {
		return err
	}
	return show(x, ds, func(ds []mgmtapi.Deployment) {
		rows := [][]string{}
		for _, d := range ds {
			prog := ""
			if d.Total > 0 && d.State == mgmtapi.DeployOpen {
				prog = fmt.Sprintf("%d%%", d.Bytes*100/d.Total)
			}
			rows = append(rows, []string{itoa(d.ID), d.Hostname, d.Serial, d.Venue, d.Site, itoa(d.BatchID), d.Image, d.State, d.Phase, prog,
				d.StartedAt[:19], d.Error})
		}
		x.table([]string{"ID", "HOSTNAME", "SERIAL", "VENUE", "SITE", "BATCH", "IMAGE", "STATE", "PHASE", "PROGRESS", "STARTED", "ERROR"}, rows)
	})
}

func cmdAbandon(ctx context.Context, x *ctxt) error {
	id, err := x.arg(0, "ID")
	if err != nil {
		return err
	}
	var d mgmtapi.Deployment
	if err := x.c.Post(ctx, v1+"/deployments/"+url.PathEscape(id)+"/abandon", map[string]string{"reason": x.flagStr("reason")}, &d); err != nil {
		return err
	}
	return show(x, d, func(d mgmtapi.Deployment) { fmt.Fprintf(x.out, "deployment %d: %s\n", d.ID, d.State) })
}

func cmdBoards(ctx context.Context, x *ctxt) error {
	var bs []mgmtapi.Board
	q := url.Values{"q": {x.flagStr("q")}}
	if s := x.flagStr("site"); s != "" {
		q.Set("site", s)
	}
	if err := x.c.Get(ctx, v1+"/boards", q, &bs); err != nil {
		return err
	}
	return show(x, bs, func(bs []mgmtapi.Board) {
		rows := [][]string{}
		for _, b := range bs {
			flags := ""
			if b.Deployed {
				flags += "deployed "
			}
			if b.Reimage {
				flags += "reimage"
			}
			rows = append(rows, []string{b.Serial, b.MAC, b.Hostname, b.Site, b.Image, flags, b.LastSeen[:19], b.LastEvent})
		}
		x.table([]string{"SERIAL", "MAC", "HOSTNAME", "SITE", "IMAGE", "FLAGS", "LAST SEEN", "LAST EVENT"}, rows)
	})
}

func cmdBoardShow(ctx context.Context, x *ctxt) error {
	serial, err := x.arg(0, "SERIAL")
	if err != nil {
		return err
	}
	var b json.RawMessage
	if err := x.c.Get(ctx, v1+"/boards/"+url.PathEscape(serial), nil, &b); err != nil {
		return err
	}
	var v any
	json.Unmarshal(b, &v)
	return x.printJSON(v)
}

func cmdBoardReimage(ctx context.Context, x *ctxt) error {
	serial, err := x.arg(0, "SERIAL")
	if err != nil {
		return err
	}
	var b mgmtapi.Board
	if err := x.c.Post(ctx, v1+"/boards/"+url.PathEscape(serial)+"/reimage", map[string]bool{"reimage": !x.flagBool("off")}, &b); err != nil {
		return err
	}
	return show(x, b, func(b mgmtapi.Board) { fmt.Fprintf(x.out, "board %s: reimage %v\n", b.Serial, b.Reimage) })
}

func cmdAudit(ctx context.Context, x *ctxt) error {
	var as []mgmtapi.AuditEntry
	q := url.Values{}
	if n := x.flagInt("limit"); n > 0 {
		q.Set("limit", itoa(n))
	}
	if err := x.c.Get(ctx, v1+"/audit", q, &as); err != nil {
		return err
	}
	return show(x, as, func(as []mgmtapi.AuditEntry) {
		rows := [][]string{}
		for _, a := range as {
			rows = append(rows, []string{a.At[:19], a.Actor, a.Action, a.Object, a.Detail})
		}
		x.table([]string{"TIME", "ACTOR", "ACTION", "OBJECT", "DETAIL"}, rows)
	})
}

// password reads $RPI_DEPLOY_PASSWORD or the first line of stdin.
func (x *ctxt) password() (string, error) {
	if p := x.env.getenv("RPI_DEPLOY_PASSWORD"); p != "" {
		return p, nil
	}
	in := x.env.Stdin
	if in == nil {
		in = os.Stdin
	}
	fmt.Fprintf(x.env.Stderr, "password (one line on stdin): ")
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	fmt.Fprintln(x.env.Stderr)
	return strings.TrimRight(line, "\r\n"), nil
}

func cmdUserAdd(ctx context.Context, x *ctxt) error {
	name, err := x.arg(0, "NAME")
	if err != nil {
		return err
	}
	pw, err := x.password()
	if err != nil {
		return err
	}
	if dir, db := x.flagStr("data"), x.flagStr("db"); dir != "" || db != "" {
		if dir != "" && db != "" {
			return fmt.Errorf("--data and --db: give one (--data for SQLite, --db for PostgreSQL)")
		}
		if x.env.SetPassword == nil {
			return fmt.Errorf("--data/--db: this program cannot open the database (run rpi-deployd user add)")
		}
		if err := x.env.SetPassword(ctx, dir, db, name, pw); err != nil {
			return err
		}
	} else if err := x.c.Put(ctx, v1+"/users/"+url.PathEscape(name), map[string]string{"password": pw}, nil); err != nil {
		return err
	}
	fmt.Fprintf(x.out, "user %s: password set\n", name)
	return nil
}

func cmdUserList(ctx context.Context, x *ctxt) error {
	var us []mgmtapi.User
	if err := x.c.Get(ctx, v1+"/users", nil, &us); err != nil {
		return err
	}
	return show(x, us, func(us []mgmtapi.User) {
		rows := [][]string{}
		for _, u := range us {
			rows = append(rows, []string{u.Name, u.CreatedAt})
		}
		x.table([]string{"NAME", "CREATED"}, rows)
	})
}

func cmdUserRm(ctx context.Context, x *ctxt) error {
	name, err := x.arg(0, "NAME")
	if err != nil {
		return err
	}
	return x.c.Delete(ctx, v1+"/users/"+url.PathEscape(name))
}

func (x *ctxt) flagStr(name string) string {
	f := x.fs.Lookup(name)
	if f == nil {
		return ""
	}
	return f.Value.String()
}

func (x *ctxt) flagInt(name string) int {
	n, _ := strconv.Atoi(x.flagStr(name))
	return n
}

func (x *ctxt) flagBool(name string) bool { return x.flagStr(name) == "true" }

func loadName(imagePath string) (string, error) {
	m, err := manifest.Load(manifest.PathFor(imagePath))
	if err != nil {
		return "", err
	}
	return m.Name, nil
}

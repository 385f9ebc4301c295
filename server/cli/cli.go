// Package cli is rpi-deployd's operator command line: every subcommand but `serve`
// talks to a running server over the management API (server/client), with the
// server URL from --server (default http://127.0.0.1:8080, or $RPI_DEPLOY_SERVER)
// and the admin token from --token or $RPI_DEPLOY_TOKEN.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/rpi-deploy/rpi-deploy/server/client"
)

// Env is the process environment a command sees (tests pass their own).
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Version        string
	// SetPassword sets a user's password directly in the database, without a server:
	// SQLite in data directory dir (`user add --data DIR`) or PostgreSQL at dbURL
	// (`user add --db URL`); rpi-deployd passes domain.SetPasswordInDB. The CLI itself
	// links no database: nil makes --data and --db an error.
	SetPassword func(ctx context.Context, dir, dbURL, user, password string) error
}

// Errorf writes to Stderr.
func (e Env) Errorf(format string, a ...any) { fmt.Fprintf(e.Stderr, format, a...) }

func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

// errUsage is returned for bad command lines (exit status 2).
var errUsage = errors.New("usage")

// cmd is one subcommand.
type cmd struct {
	name  string // "venue add"
	args  string // synopsis of arguments
	help  string
	flags string // "name count:int free:bool": the command's own flags
	run   func(ctx context.Context, x *ctxt) error
}

// ctxt is what a running subcommand gets.
type ctxt struct {
	env  Env
	fs   *flag.FlagSet
	pos  []string // positional arguments
	c    *client.Client
	out  io.Writer
	json *bool
}

func (x *ctxt) arg(i int, name string) (string, error) {
	if i >= len(x.pos) {
		return "", fmt.Errorf("%w: missing %s", errUsage, name)
	}
	return x.pos[i], nil
}

// table prints rows aligned.
func (x *ctxt) table(header []string, rows [][]string) {
	tw := tabwriter.NewWriter(x.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// Run runs one CLI invocation and returns the exit status.
func Run(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stdout)
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(env.Stdout, "rpi-deployd", env.Version)
		return 0
	}
	var c *cmd
	rest := args
	for i := range commands {
		words := strings.Fields(commands[i].name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == commands[i].name {
			if c == nil || len(words) > len(strings.Fields(c.name)) {
				c, rest = &commands[i], args[len(words):]
			}
		}
	}
	if c == nil {
		env.Errorf("rpi-deployd: unknown command %q (rpi-deployd help lists them)\n", strings.Join(args, " "))
		return 2
	}
	x, err := newCtxt(c, rest, env)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if !errors.Is(err, errFlags) {
			env.Errorf("rpi-deployd %s: %v\n", c.name, err)
		}
		return 2
	}
	if err := c.run(ctx, x); err != nil {
		if errors.Is(err, errUsage) {
			env.Errorf("rpi-deployd %s: %v\n", c.name, err)
			x.fs.Usage()
			return 2
		}
		env.Errorf("rpi-deployd %s: %v\n", c.name, err)
		return 1
	}
	return 0
}

// errFlags is a command line the flag package rejected (it said why on Stderr).
var errFlags = errors.New("bad flags")

// newCtxt parses the command line of c (the common flags, then c's own) and builds
// its client from the flags and the environment.
func newCtxt(c *cmd, args []string, env Env) (*ctxt, error) {
	x := &ctxt{env: env, out: env.Stdout, fs: flag.NewFlagSet(c.name, flag.ContinueOnError)}
	x.fs.SetOutput(env.Stderr)
	server := x.fs.String("server", "", "server URL (default $RPI_DEPLOY_SERVER or "+client.DefaultServer+")")
	token := x.fs.String("token", "", "admin token (default $RPI_DEPLOY_TOKEN)")
	caFile := x.fs.String("ca", "", "PEM `file` of the CA (or the self-signed certificate) to check an https server with (default $RPI_DEPLOY_CA)")
	pin := x.fs.String("tls-fingerprint", "", "SHA-256 `fingerprint` of the https server's certificate, as rpi-deployd serve prints it (default $RPI_DEPLOY_TLS_FINGERPRINT)")
	x.json = x.fs.Bool("json", false, "print JSON instead of a table")
	for _, f := range strings.Fields(c.flags) {
		name, kind, _ := strings.Cut(f, ":")
		switch kind {
		case "int":
			x.fs.Int(name, 0, name)
		case "bool":
			x.fs.Bool(name, false, name)
		default:
			x.fs.String(name, "", name)
		}
	}
	x.fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: rpi-deployd %s %s\n  %s\n", c.name, c.args, c.help)
		x.fs.PrintDefaults()
	}
	// Flags may come before, between or after positional arguments.
	pos, err := parseInterspersed(x.fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errFlags
	}
	x.pos = pos
	x.c = client.New(orEnv(*server, env, "RPI_DEPLOY_SERVER"), orEnv(*token, env, "RPI_DEPLOY_TOKEN"))
	if err := x.c.SetTLS(orEnv(*caFile, env, "RPI_DEPLOY_CA"), orEnv(*pin, env, "RPI_DEPLOY_TLS_FINGERPRINT")); err != nil {
		return nil, err
	}
	return x, nil
}

// orEnv is v, or when v is empty the environment variable key.
func orEnv(v string, env Env, key string) string {
	if v == "" {
		return env.getenv(key)
	}
	return v
}

func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "rpi-deployd — rpi-deploy server and operator CLI\n\nusage:\n")
	fmt.Fprintf(w, "  rpi-deployd serve [--config FILE] [--data DIR] [--listen ADDR] [--agent-listen ADDR] [--token T] [--max-streams N]\n")
	fmt.Fprintf(w, "        [--tls off|self-signed|files] [--tls-cert FILE --tls-key FILE] [--disk-reserve BYTES]\n")
	fmt.Fprintf(w, "        [--dhcp-mode full|proxy|off] [--dhcp-interface IF] [--dhcp-range FIRST-LAST] [--tftp-root DIR]\n")
	fmt.Fprintf(w, "  rpi-deployd tftproot --image IMAGE --initramfs FILE --out DIR   (assemble the TFTP root; docs/netboot.md)\n")
	names := make([]int, len(commands))
	for i := range commands {
		names[i] = i
	}
	sort.SliceStable(names, func(a, b int) bool { return commands[names[a]].name < commands[names[b]].name })
	for _, i := range names {
		c := commands[i]
		fmt.Fprintf(w, "  rpi-deployd %s %s\n      %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintf(w, "\nEvery command but serve talks to a running server: --server URL (default $RPI_DEPLOY_SERVER or %s),\n--token TOKEN (default $RPI_DEPLOY_TOKEN); --json prints JSON. For an https server with its own certificate:\n--ca FILE ($RPI_DEPLOY_CA) or --tls-fingerprint SHA256 ($RPI_DEPLOY_TLS_FINGERPRINT).\n", client.DefaultServer)
}

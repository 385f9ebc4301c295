package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/scripts/bench/benchkit"
	"github.com/rpi-deploy/rpi-deploy/server/client"
)

// runPG is `hellobench pg -db URL`: the same bursts of new boards (-boards hellos
// sent at once, -bursts of them) go to -servers rpi-deployd processes sharing the
// PostgreSQL database URL, board i to server i % servers, and to one rpi-deployd on
// its own SQLite file, taking turns burst by burst. It prints hello-p50 and
// hello-p99 of the PostgreSQL servers (NAME -Nservers-pg) with the one SQLite
// server as the baseline. URL must name an empty database; it is never printed
// (it may hold a password).
func runPG() error {
	fs := flag.NewFlagSet("hellobench pg", flag.ContinueOnError)
	bin := fs.String("bin", "bin/rpi-deployd", "rpi-deployd binary")
	db := fs.String("db", "", "PostgreSQL URL (postgres://…) of an empty database the servers share")
	servers := fs.Int("servers", 3, "rpi-deployd processes on the PostgreSQL database")
	boards := fs.Int("boards", 1000, "hellos in one burst, all sent at once")
	bursts := fs.Int("bursts", 3, "bursts per side")
	if err := fs.Parse(os.Args[2:]); err != nil {
		return err
	}
	if !strings.HasPrefix(*db, "postgres://") && !strings.HasPrefix(*db, "postgresql://") {
		return errors.New("pg: -db must be a postgres:// URL")
	}
	if *servers < 1 {
		return fmt.Errorf("pg: -servers %d: want at least 1", *servers)
	}
	work, err := os.MkdirTemp("", "hellobench-pg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	img, err := benchkit.MakeImage(work, "bench", io.LimitReader(rand.Reader, 1<<20), 1<<20)
	if err != nil {
		return err
	}
	ctx := context.Background()

	one, err := benchkit.StartDeployd(*bin, filepath.Join(work, "sqlite"), benchToken, os.Stderr, serveArgs(100000)...)
	if err != nil {
		return err
	}
	defer one.Stop()
	if _, err := benchkit.Setup(ctx, one.URL, benchToken, img, "RXP2", 0); err != nil {
		return fmt.Errorf("set up the SQLite server: %w", err)
	}
	var urls []string
	for i := range *servers {
		// Started one after the other: the first migrates the empty database.
		p, err := benchkit.StartDeployd(*bin, filepath.Join(work, fmt.Sprintf("pg%d", i)), benchToken, os.Stderr,
			append(serveArgs(100000), "--db", *db, "--site", fmt.Sprintf("pg%d", i))...)
		if err != nil {
			return fmt.Errorf("rpi-deployd %d on PostgreSQL: %w", i, err)
		}
		defer p.Stop()
		urls = append(urls, p.URL)
	}
	// The batch and the image record live in the shared database: set up once; the
	// other sites pull the image from pg0, as a second site does before its boards.
	m, err := benchkit.Setup(ctx, urls[0], benchToken, img, "RXP2", 0)
	if err != nil {
		return fmt.Errorf("set up the PostgreSQL servers: %w", err)
	}
	for i, u := range urls[1:] {
		if err := pullImage(ctx, u, m.Name, fmt.Sprintf("pg%d", i+1)); err != nil {
			return err
		}
	}

	var ours, base []float64
	for b := range *bursts {
		base = append(base, burst([]string{one.URL}, *boards, 0x10, b)...)
		ours = append(ours, burst(urls, *boards, 0x11, b)...)
	}
	name := fmt.Sprintf("-%dservers-pg", *servers)
	benchkit.Line("hello-p50"+name, benchkit.Percentile(ours, 50), benchkit.Percentile(base, 50))
	benchkit.Line("hello-p99"+name, benchkit.Percentile(ours, 99), benchkit.Percentile(base, 99))
	return nil
}

// pullImage has the server at url (site) pull image name from site pg0 and waits
// until the image is ready there.
func pullImage(ctx context.Context, url, name, site string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := client.New(url, benchToken).PullImage(ctx, name, "pg0", 200*time.Millisecond, nil); err != nil {
		return fmt.Errorf("pull %s to %s: %w", name, site, err)
	}
	return nil
}

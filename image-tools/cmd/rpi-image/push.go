package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/push"
)

// defaultServer is the server URL when neither --server nor $RPI_DEPLOY_SERVER is set
// (the same default as rpi-deployd's CLI).
const defaultServer = "http://127.0.0.1:8080"

// runPush uploads a packed image and its manifest to rpi-deployd, resuming where the
// server stands (package push).
func runPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("push", "[--server URL] [--token T] NAME.img.zst", stderr)
	server := fs.String("server", "", "rpi-deployd `URL` (default $RPI_DEPLOY_SERVER or "+defaultServer+")")
	token := fs.String("token", "", "admin `token` (default $RPI_DEPLOY_TOKEN)")
	retries := fs.Int("retries", 0, "consecutive failures without progress before giving up (default 5)")
	quiet := fs.Bool("q", false, "no progress output")
	allow := fs.Bool("allow-no-first-boot", false, "let the server accept an image without a first-boot mechanism (boards keep its hostname)")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *server == "" {
		*server = os.Getenv("RPI_DEPLOY_SERVER")
	}
	if *server == "" {
		*server = defaultServer
	}
	if *token == "" {
		*token = os.Getenv("RPI_DEPLOY_TOKEN")
	}
	m, err := manifest.Load(manifest.PathFor(pos[0]))
	if err != nil {
		return err
	}
	opt := push.Options{Server: *server, Token: *token, Image: pos[0], Retries: *retries, AllowNoFirstBoot: *allow}
	if !*quiet {
		opt.Progress = stderr
	}
	if err := push.Push(ctx, opt); err != nil {
		return fmt.Errorf("push %q to %s: %w", pos[0], *server, err)
	}
	fmt.Fprintf(stdout, "%s: on %s as %q (%d bytes, sha256 %s)\n", pos[0], *server, m.Name, m.CompressedSize, m.SHA256)
	return nil
}

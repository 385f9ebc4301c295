// Command rpi-deployd is the rpi-deploy server (`rpi-deployd serve`) and the
// operator CLI that talks to a running server over its API (every other
// subcommand; see `rpi-deployd help`).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rpi-deploy/rpi-deploy/server/cli"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
)

// version is stamped by the Makefile: -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	env := cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Version: version,
		SetPassword: domain.SetPasswordInDB}
	if len(args) > 0 && args[0] == "serve" {
		if err := serve(ctx, args[1:], env); err != nil {
			env.Errorf("rpi-deployd: %v\n", err)
			return 1
		}
		return 0
	}
	if len(args) > 0 && args[0] == "tftproot" {
		if err := tftproot(ctx, args[1:], env); err != nil {
			env.Errorf("rpi-deployd: %v\n", err)
			return 1
		}
		return 0
	}
	return cli.Run(ctx, args, env)
}

//go:build !linux

package main

import (
	"context"
	"errors"

	"github.com/rpi-deploy/rpi-deploy/server/cli"
)

// errServeLinuxOnly is what `rpi-deployd serve` and `rpi-deployd tftproot` answer
// outside Linux: the server's DHCP and TFTP bind to a network interface
// (SO_BINDTODEVICE) and read packet info (IP_PKTINFO), which only Linux offers here,
// and tftproot fills that server's TFTP root. Every other subcommand is a client of a
// server's API and runs on Linux, macOS and Windows alike.
var errServeLinuxOnly = errors.New("serve and tftproot run on Linux only (the server's DHCP and TFTP bind to a network interface); the other subcommands talk to a Linux server from any OS")

func serve(context.Context, []string, cli.Env) error { return errServeLinuxOnly }

func tftproot(context.Context, []string, cli.Env) error { return errServeLinuxOnly }

//go:build linux

package main

import (
	"crypto/tls"
	"net"
	"path/filepath"

	"github.com/rpi-deploy/rpi-deploy/server/cli"
	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/tlscert"
)

// TLSDir is the directory of the generated certificate inside the data directory.
const TLSDir = "tls"

// serveTLS returns the management listener's TLS configuration, nil when TLS is
// off, and prints the certificate's fingerprint for clients to pin.
func serveTLS(cfg config.Config, env cli.Env) (*tls.Config, error) {
	var (
		cert tls.Certificate
		fp   string
		err  error
	)
	switch cfg.TLSMode() {
	case "self-signed":
		host, _, _ := net.SplitHostPort(cfg.Listen)
		cert, fp, err = tlscert.SelfSigned(filepath.Join(cfg.Data, TLSDir), []string{host})
	case "files":
		cert, fp, err = tlscert.Load(cfg.TLSCert, cfg.TLSKey)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	env.Errorf("rpi-deployd: TLS certificate sha256 fingerprint %s\n", fp)
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

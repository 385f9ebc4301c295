package store

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
)

// TestSilentServer: a PostgreSQL address where something accepts connections but
// never answers (a server hung, or a dropped route) fails the open after
// ConnectTimeout with ErrUnavailable, instead of holding the caller for ever.
func TestSilentServer(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, ".s.PGSQL.5432"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read nothing, answer nothing
		}
	}()
	_, err = OpenDB(context.Background(), Config{Dir: t.TempDir(), URL: "postgres://postgres@/x?host=" + dir})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("open against a silent server: %v, want ErrUnavailable", err)
	}
}

package domain_test

import (
	"path"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// bothDialects runs f as the subtests "sqlite" and "postgres": the services that f
// makes (newService, newClockedService) run on that database.
func bothDialects(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, d := range []string{"sqlite", "postgres"} {
		t.Run(d, f)
	}
}

// storeConfig is the database of a test: a fresh PostgreSQL database (pgtest) in a
// "postgres" subtest of bothDialects, else SQLite in a temporary directory.
func storeConfig(t *testing.T) store.Config {
	t.Helper()
	cfg := store.Config{Dir: t.TempDir()}
	if path.Base(t.Name()) == "postgres" {
		cfg.URL = pgtest.DB(t)
	}
	return cfg
}

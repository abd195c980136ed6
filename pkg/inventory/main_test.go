package inventory_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// pg is the PostgreSQL server every test of the package shares (a database each).
var pg *testenv.Postgres

func TestMain(m *testing.M) { os.Exit(testenv.RunWithPostgres(m, &pg)) }

// backend is an empty inventory of each kind.
type backend struct{ name, dsn string }

func backends(t testing.TB) []backend {
	return []backend{{"sqlite", emptyDSN(t, "sqlite")}, {"postgres", emptyDSN(t, "postgres")}}
}

// emptyDSN is the DSN of an empty inventory of the backend named ("sqlite" or "postgres"): a file
// in a temporary directory, or a new database of the package's PostgreSQL server.
func emptyDSN(tb testing.TB, name string) string {
	if name == "postgres" {
		return pg.NewDatabase(tb)
	}
	return "sqlite:" + filepath.Join(tb.TempDir(), "inv.db")
}

// emptyStore opens an empty inventory of the backend named (emptyDSN); the caller closes it.
func emptyStore(tb testing.TB, name string) *inventory.Store {
	tb.Helper()
	s, err := inventory.Open(context.Background(), emptyDSN(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// forEachBackend runs fn against a fresh store of each backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, s *inventory.Store)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s, err := inventory.Open(context.Background(), b.dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if s.Backend() != b.name {
				t.Fatalf("backend %q, want %q", s.Backend(), b.name)
			}
			fn(t, s)
		})
	}
}

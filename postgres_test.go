package icemerge

import (
	"testing"

	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

// The PostgreSQL catalog backends: postgres keeps source, warehouse and
// bookmarks on disk, minio-postgres in a MinIO bucket (the production
// layout for teams not on Glue); both put the sql catalog in a new
// PostgreSQL database of their own. They skip (fail with CI=true) when
// PostgreSQL is not reachable.
var postgresBackends = []string{"postgres", "minio-postgres"}

// concurrencyBackends are the backends of the tests of concurrent runs and
// writers: every catalog, PostgreSQL included.
var concurrencyBackends = append(append([]string{}, allBackends...), postgresBackends...)

// newAnyEnv is newEnv, also for the PostgreSQL backends.
func newAnyEnv(t testing.TB, backend string) *env {
	t.Helper()
	base, onPostgres := map[string]string{"postgres": "local", "minio-postgres": "minio-sql"}[backend]
	if !onPostgres {
		return newEnv(t, backend)
	}
	uri := testservers.Postgres(t) // skips before any other server is asked for
	e := newEnv(t, base)
	e.backend = backend
	e.opts.CatalogURI = uri
	if err := e.opts.Validate(); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	return e
}

// eachConcurrencyBackend runs fn once per backend of concurrencyBackends,
// as subtests.
func eachConcurrencyBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range concurrencyBackends {
		t.Run(b, func(t *testing.T) { fn(t, newAnyEnv(t, b)) })
	}
}

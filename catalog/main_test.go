package catalog_test

import (
	"testing"

	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

// TestMain stops the servers the tests started (moto for S3 Tables).
func TestMain(m *testing.M) { testservers.Main(m) }

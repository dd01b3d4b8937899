//go:build !testhooks

package testhook

import (
	"log/slog"
	"path/filepath"
	"testing"
)

// A production build ignores the variable: no wrapper, no fault.
func TestProductionBuildHasNoDiskFaults(t *testing.T) {
	t.Setenv(DiskFaultFileEnv, filepath.Join(t.TempDir(), "disk-fault"))
	if DiskFaults(slog.Default()) != nil {
		t.Fatal("a build without the testhooks tag wraps the log store")
	}
}

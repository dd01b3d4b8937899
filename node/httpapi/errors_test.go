package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/buytracker/buytracker/node/store"
)

func TestDiskFullAnswers507(t *testing.T) {
	e, forwardable := storeError(fmt.Errorf("%w: 1024 bytes free, below 67108864", store.ErrDiskFull))
	if e.status != http.StatusInsufficientStorage || e.code != "insufficient_storage" || forwardable {
		t.Fatalf("disk full maps to %d %s (forwardable %v), want 507 insufficient_storage, not forwarded", e.status, e.code, forwardable)
	}
	for _, want := range []string{"nothing was recorded", "1024 bytes free, below 67108864"} {
		if !strings.Contains(e.message, want) {
			t.Errorf("message %q lacks %q", e.message, want)
		}
	}
}

func TestAHaltedNodeAnswers503NodeHalted(t *testing.T) {
	err := fmt.Errorf("%w: ledger halted: log entry 14: command checksum mismatch", store.ErrHalted)
	aerr, forwardable := storeError(err)
	if aerr.status != http.StatusServiceUnavailable || aerr.code != "node_halted" || forwardable {
		t.Fatalf("storeError(%v) = %+v, forwardable %v; want 503 node_halted, not forwarded", err, aerr, forwardable)
	}
}

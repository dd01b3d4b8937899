package store

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// What --cluster-created-file says: only the cluster's own ID or "true"
// mean created; a missing file, an empty one or another cluster's ID say
// nothing; a file that cannot be read counts as created (waiting is safe).
func TestClusterCreatedFile(t *testing.T) {
	dir := t.TempDir()
	unreadable := filepath.Join(dir, "dir-not-file")
	if err := os.Mkdir(unreadable, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, content string
		write         bool
		path          string
		want          bool
	}{
		{name: "no flag", path: "-", want: false},
		{name: "missing file", want: false},
		{name: "empty", write: true, content: "", want: false},
		{name: "true", write: true, content: "true\n", want: true},
		{name: "own id", write: true, content: "uid-1", want: true},
		{name: "other id", write: true, content: "uid-2\n", want: false},
		{name: "unreadable", path: unreadable, want: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "created")
			switch {
			case tt.path == "-":
				path = ""
			case tt.path != "":
				path = tt.path
			}
			if tt.write {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s := &Store{cfg: Config{ClusterID: "uid-1", ClusterCreatedFile: path}, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if got, why := s.clusterCreated(); got != tt.want {
				t.Fatalf("created = %v (%q), want %v", got, why, tt.want)
			}
		})
	}
}

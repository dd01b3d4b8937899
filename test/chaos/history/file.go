package history

import (
	"encoding/json"
	"fmt"
	"os"
)

// fileVersion is the format of the history file; a reader refuses others.
const fileVersion = 1

type file struct {
	Version int  `json:"version"`
	Ops     []Op `json:"ops"`
}

// WriteJSON writes the recorder's operations to path as one JSON document.
func (r *Recorder) WriteJSON(path string) error {
	return WriteJSON(path, r.Ops())
}

// WriteJSON writes ops to path as one JSON document (times in nanoseconds).
func WriteJSON(path string, ops []Op) error {
	raw, err := json.MarshalIndent(file{Version: fileVersion, Ops: ops}, "", " ")
	if err != nil {
		return fmt.Errorf("encode history: %w", err)
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	return nil
}

// ReadJSON reads a history file written by WriteJSON.
func ReadJSON(path string) ([]Op, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	var f file
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("decode history %s: %w", path, err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("history %s has format version %d, want %d", path, f.Version, fileVersion)
	}
	return f.Ops, nil
}

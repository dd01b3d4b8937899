//go:build testhooks

package testhook

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buytracker/buytracker/node/clock"
)

// MisapplyCents reads MisapplyCentsEnv.
func MisapplyCents() int64 {
	v, _ := strconv.ParseInt(os.Getenv(MisapplyCentsEnv), 10, 64)
	return v
}

// Clock returns the system clock shifted by the offset in the file named by
// ClockOffsetFileEnv, when it is set.
func Clock(logger *slog.Logger) clock.Clock {
	path := os.Getenv(ClockOffsetFileEnv)
	if path == "" {
		return clock.System()
	}
	logger.Warn("Test build: this node's clock is shifted by the offset in a file", "file", path)
	return &offsetClock{path: path, logger: logger}
}

// offsetClock re-reads its offset at most every 100 ms.
type offsetClock struct {
	path    string
	logger  *slog.Logger
	offset  atomic.Int64
	mu      sync.Mutex
	readAt  time.Time
	lastRaw string
}

func (c *offsetClock) Now() time.Time {
	now := time.Now()
	c.mu.Lock()
	if now.Sub(c.readAt) > 100*time.Millisecond {
		c.readAt = now
		if raw, err := os.ReadFile(c.path); err == nil {
			text := strings.TrimSpace(string(raw))
			if d, err := time.ParseDuration(text); err == nil {
				if text != c.lastRaw {
					c.logger.Warn("Test clock offset changed", "offset", d.String())
					c.lastRaw = text
				}
				c.offset.Store(int64(d))
			}
		}
	}
	c.mu.Unlock()
	return now.Add(time.Duration(c.offset.Load()))
}

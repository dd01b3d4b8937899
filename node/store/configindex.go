package store

import (
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// committedConfiguration is the latest configuration this node has seen
// committed, with its log index. hashicorp/raft keeps the index of its
// latest configuration to itself (GetConfiguration gives none); it hands
// a batching FSM every committed configuration entry (instrumentedFSM
// records them), and a snapshot's metadata carries the configuration it
// holds. GET /cluster reports it.
type committedConfiguration struct {
	mu sync.Mutex
	// asOf is the log index up to which the configuration is known to
	// hold: its entry's, or the snapshot's that carried it.
	asOf    uint64
	index   uint64
	servers []raft.Server
}

// record keeps the configuration with its index, known to hold up to log
// index asOf, unless one known to a later index is kept already. A
// snapshot's configuration replaces an older entry's even with a smaller
// index: after a quorum recovery hashicorp/raft records the recovered
// configuration at index 1.
func (c *committedConfiguration) record(asOf, index uint64, cfg raft.Configuration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if asOf > c.asOf {
		c.asOf, c.index, c.servers = asOf, index, slices.Clone(cfg.Servers)
	}
}

// get is the configuration's index and whether latest (the configuration
// Raft uses now, which may not have committed) is that configuration.
func (c *committedConfiguration) get(latest []raft.Server) (index uint64, same bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.index, c.index > 0 && slices.Equal(c.servers, latest)
}

// recordConfigurations keeps the last configuration entry of a batch Raft
// applies (a batching FSM receives them with the commands).
func (c *committedConfiguration) recordConfigurations(logs []*raft.Log) {
	for i := len(logs) - 1; i >= 0; i-- {
		if logs[i].Type == raft.LogConfiguration {
			c.record(logs[i].Index, logs[i].Index, raft.DecodeConfiguration(logs[i].Data))
			return
		}
	}
}

// configurationIndex is the index of the latest committed configuration
// this node knows of: from the entries it applied, or from its latest
// snapshot (a node restored from one applies no older entry), and whether
// latest is it.
func (s *Store) configurationIndex(latest []raft.Server) (uint64, bool) {
	if metas, err := s.snapshots.List(); err == nil && len(metas) > 0 {
		s.fsm.configuration.record(metas[0].Index, metas[0].ConfigurationIndex, metas[0].Configuration)
	}
	return s.fsm.configuration.get(latest)
}

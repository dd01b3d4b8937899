package store

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/ledger"
)

// PublishNode records a node's URLs in the replicated state. Only the
// leader can; others answer ErrNotLeader.
func (s *Store) PublishNode(info ledger.NodeInfo) error {
	if info.ID == "" || info.HTTPURL == "" {
		return fmt.Errorf("publish node: id and http_url are required")
	}
	if cur, ok := s.ledger.Node(info.ID); ok && cur == info {
		return nil
	}
	if s.Raft().State() != raft.Leader {
		return s.notLeaderError()
	}
	if err := s.Raft().Apply(ledger.EncodePublishNode(info), 5*time.Second).Error(); err != nil {
		return fmt.Errorf("publish node %s: %w", info.ID, s.mapRaftError(err))
	}
	return nil
}

// runPublisher makes sure the replicated state holds this node's URLs, so
// peers can forward to it without guessing: the leader applies them itself,
// a follower asks the leader over the peer channel.
func (s *Store) runPublisher() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		self := s.selfInfo()
		if cur, ok := s.ledger.Node(self.ID); (ok && cur == self) || s.ledger.Halted() != nil {
			continue
		}
		if err := s.publishSelf(self); err != nil {
			s.logger.Debug("Publishing this node's URLs failed; will retry", "error", err)
		}
	}
}

func (s *Store) publishSelf(self ledger.NodeInfo) error {
	if s.Raft().State() == raft.Leader {
		return s.PublishNode(self)
	}
	_, leaderAddr, ok := s.leaderAddress()
	if !ok {
		return ErrNoLeader
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerCallTimeout)
	defer cancel()
	return s.peerPublish(ctx, leaderAddr, self)
}

package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/peer"
)

// Members talk to each other only through the peer endpoint on the Raft
// port (node/peer): forwarded purchases, read indexes, address publication,
// status and rejoin requests. This file is the store's side of it: the
// handlers it serves and the calls it makes.

// addressBook maps members' Raft addresses to their server IDs, so that a
// dial can check with TLS that it reached the member it meant. It learns
// from the initial cluster, every configuration the store reads and every
// member the leader adds.
type addressBook struct {
	mu   sync.RWMutex
	byID map[string]string // id -> address
	ids  map[string]string // address -> id
}

func newAddressBook(servers []raft.Server) *addressBook {
	b := &addressBook{byID: map[string]string{}, ids: map[string]string{}}
	b.learn(servers)
	return b
}

func (b *addressBook) learn(servers []raft.Server) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, srv := range servers {
		id, addr := string(srv.ID), string(srv.Address)
		if old, ok := b.byID[id]; ok && old != addr {
			delete(b.ids, old)
		}
		b.byID[id] = addr
		b.ids[addr] = id
	}
}

func (b *addressBook) lookup(addr string) (string, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	id, ok := b.ids[addr]
	return id, ok
}

// refreshAddressBook keeps the book in step with the configuration.
func (s *Store) refreshAddressBook() {
	defer s.wg.Done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		if f := s.Raft().GetConfiguration(); f.Error() == nil {
			s.addrs.learn(f.Configuration().Servers)
		}
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

// registerPeerHandlers makes the endpoint answer the members' RPCs.
func (s *Store) registerPeerHandlers(e *peer.Endpoint) {
	e.Handle(peer.MethodForwardBuys, func(ctx context.Context, _ peer.Caller, payload []byte) ([]byte, error) {
		out, err := s.BuyForwarded(ctx, payload)
		if err != nil {
			return nil, peer.Errorf(peer.CodeBadRequest, "%v", err)
		}
		return out, nil
	})
	e.Handle(peer.MethodReadIndex, func(ctx context.Context, _ peer.Caller, _ []byte) ([]byte, error) {
		if !s.IsLeader() {
			return nil, peer.Errorf(peer.CodeNotLeader, "only the leader hands out read indexes")
		}
		res := s.readIndexRound(ctx)
		if res.err != nil {
			return nil, peerError(res.err)
		}
		return binary.AppendVarint(binary.AppendUvarint(nil, res.index), res.at), nil
	})
	e.Handle(peer.MethodPublishNode, func(_ context.Context, caller peer.Caller, payload []byte) ([]byte, error) {
		var info adminapi.NodeInfo
		if err := json.Unmarshal(payload, &info); err != nil {
			return nil, peer.Errorf(peer.CodeBadRequest, "decode node info: %v", err)
		}
		if !caller.Is(info.ID) {
			return nil, peer.Errorf(peer.CodeForbidden, "a member may only publish its own addresses, not %q's", info.ID)
		}
		err := s.PublishNode(ledger.NodeInfo{ID: info.ID, HTTPURL: info.HTTPURL, AdminURL: info.AdminURL})
		return nil, peerError(err)
	})
	e.Handle(peer.MethodStatus, func(_ context.Context, _ peer.Caller, _ []byte) ([]byte, error) {
		return json.Marshal(s.Status())
	})
	e.Handle(peer.MethodRejoin, func(_ context.Context, caller peer.Caller, payload []byte) ([]byte, error) {
		var req rejoinRequest
		if err := json.Unmarshal(payload, &req); err != nil || req.ID == "" {
			return nil, peer.Errorf(peer.CodeBadRequest, "decode rejoin request: %v", err)
		}
		if !caller.Is(req.ID) {
			return nil, peer.Errorf(peer.CodeForbidden, "a member may only rejoin as itself, not as %q", req.ID)
		}
		index, err := s.rejoin(req)
		if err != nil {
			return nil, peerError(err)
		}
		return json.Marshal(rejoinAnswer{Index: index})
	})
}

// peerError maps the store's errors to peer error codes.
func peerError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotLeader):
		return peer.Errorf(peer.CodeNotLeader, "%v", err)
	case errors.Is(err, ErrNoLeader), errors.Is(err, ErrClosed):
		return peer.Errorf(peer.CodeNoLeader, "%v", err)
	case errors.Is(err, errNotAMember):
		return peer.Errorf(peer.CodeForbidden, "%v", err)
	case errors.Is(err, ErrClockSkew):
		return peer.Errorf(peer.CodeUnavailable, "%v", err)
	}
	return err
}

// peerCallTimeout bounds the store's small peer calls (status, publish,
// read index, rejoin).
const peerCallTimeout = 5 * time.Second

// leaderAddress returns the leader's ID and Raft address when another node
// leads.
func (s *Store) leaderAddress() (string, string, bool) {
	addr, id := s.Raft().LeaderWithID()
	if id == "" || string(id) == s.cfg.ID || addr == "" {
		return "", "", false
	}
	return string(id), string(addr), true
}

// peerStatus asks a member at a Raft address for its status.
func (s *Store) peerStatus(ctx context.Context, addr string) (*adminapi.Status, error) {
	raw, err := s.peers.Call(ctx, addr, peer.MethodStatus, nil, 0)
	if err != nil {
		return nil, err
	}
	var st adminapi.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("decode status from %s: %w", addr, err)
	}
	return &st, nil
}

// peerReadIndex asks the leader for a read index and its clock at the
// round.
func (s *Store) peerReadIndex(ctx context.Context, addr string) (readIndexResult, error) {
	raw, err := s.peers.Call(ctx, addr, peer.MethodReadIndex, nil, 64)
	if err != nil {
		return readIndexResult{}, err
	}
	index, n := binary.Uvarint(raw)
	if n <= 0 {
		return readIndexResult{}, errors.New("malformed read index answer")
	}
	at, m := binary.Varint(raw[n:])
	if m <= 0 {
		return readIndexResult{}, errors.New("malformed read index answer: no leader time")
	}
	return readIndexResult{index: index, at: at}, nil
}

func (s *Store) peerPublish(ctx context.Context, addr string, self ledger.NodeInfo) error {
	payload, err := json.Marshal(adminapi.NodeInfo{ID: self.ID, HTTPURL: self.HTTPURL, AdminURL: self.AdminURL})
	if err != nil {
		return err
	}
	_, err = s.peers.Call(ctx, addr, peer.MethodPublishNode, payload, 0)
	return err
}

// rejoinRequest asks the leader to count the caller as a new incarnation.
type rejoinRequest struct {
	ID          string `json:"id"`
	Address     string `json:"address"`
	Incarnation string `json:"incarnation"`
}

// rejoinAnswer is the index of the configuration in which the caller is a
// non-voter: once the caller's log reaches it, it holds everything committed
// before and may vote again when promoted.
type rejoinAnswer struct {
	Index uint64 `json:"index"`
}

package store

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/rawhttp"
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
	if s.raft.State() != raft.Leader {
		return s.notLeaderError()
	}
	if err := s.raft.Apply(ledger.EncodePublishNode(info), 5*time.Second).Error(); err != nil {
		return fmt.Errorf("publish node %s: %w", info.ID, s.mapRaftError(err))
	}
	return nil
}

// runPublisher makes sure the replicated state holds this node's URLs, so
// peers can forward to it without guessing: the leader applies them itself,
// a follower asks the leader through its admin API.
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
		if cur, ok := s.ledger.Node(self.ID); ok && cur == self {
			continue
		}
		if err := s.publishSelf(self); err != nil {
			s.logger.Debug("Publishing this node's URLs failed; will retry", "error", err)
		}
	}
}

func (s *Store) publishSelf(self ledger.NodeInfo) error {
	if s.raft.State() == raft.Leader {
		return s.PublishNode(self)
	}
	leader, ok := s.Leader()
	if !ok || leader.AdminURL == "" {
		return ErrNoLeader
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.peers.client(leader.AdminURL)
	if err != nil {
		return err
	}
	return c.PublishNode(ctx, adminapi.NodeInfo{ID: self.ID, HTTPURL: self.HTTPURL, AdminURL: self.AdminURL})
}

// peerClients keeps one admin client per peer over one pooled transport,
// and the connections that carry forwarded purchases.
type peerClients struct {
	token     string
	transport *http.Transport
	mu        sync.Mutex
	clients   map[string]*adminapi.Client

	// forwards carries batches of purchases to the leader: each one on a
	// hot path, so over rawhttp rather than net/http's client, which costs
	// a round trip about 0.25 ms more on an idle machine.
	forwards      *rawhttp.Client
	forwardHeader string
}

func newPeerClients(token string, maxForwards int) *peerClients {
	return &peerClients{
		token:         token,
		transport:     &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute},
		clients:       make(map[string]*adminapi.Client),
		forwards:      rawhttp.New(rawhttp.Options{MaxConns: maxForwards, Timeout: forwardTimeout}),
		forwardHeader: "Content-Type: application/octet-stream\r\nAuthorization: Bearer " + token + "\r\n",
	}
}

// forwardBuys posts a batch of purchases, encoded as a ledger buy batch, to
// the leader's admin API and returns its encoded outcomes. An error that
// wraps rawhttp.ErrNotSent means the batch was not sent.
func (p *peerClients) forwardBuys(ctx context.Context, adminURL string, batch []byte) ([]byte, error) {
	resp, err := p.forwards.Do(ctx, &rawhttp.Request{
		BaseURL: adminURL, Method: http.MethodPost, Target: adminapi.ForwardBuysPath,
		Header: p.forwardHeader, Body: batch, MaxBody: maxForwardAnswer,
	})
	if err != nil {
		return nil, fmt.Errorf("forward buys to %s: %w", adminURL, err)
	}
	if resp.Status != http.StatusOK {
		return nil, adminapi.AnswerError(resp.Status, resp.Body)
	}
	return resp.Body, nil
}

// maxForwardAnswer bounds the leader's answer to a forwarded batch: at most
// 1024 purchases of a few dozen bytes of outcome each.
const maxForwardAnswer = 1 << 20

func (p *peerClients) client(adminURL string) (*adminapi.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[adminURL]; ok {
		return c, nil
	}
	c, err := adminapi.NewClient(adminURL, p.token, &http.Client{Transport: p.transport, Timeout: forwardTimeout})
	if err != nil {
		return nil, err
	}
	p.clients[adminURL] = c
	return c, nil
}

func (p *peerClients) status(ctx context.Context, adminURL string) (*adminapi.Status, error) {
	c, err := p.client(adminURL)
	if err != nil {
		return nil, err
	}
	return c.Status(ctx)
}

func (p *peerClients) close() {
	p.transport.CloseIdleConnections()
	p.forwards.CloseIdle()
}

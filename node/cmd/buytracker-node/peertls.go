package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"

	"github.com/buytracker/buytracker/node/pki"
	"github.com/buytracker/buytracker/node/store"
)

// peerTLS is the member's certificate material from --tls-dir, or nil when
// the node runs without it.
type peerTLS struct{ reloader *pki.Reloader }

// loadPeerTLS loads --tls-dir and keeps it current until ctx ends.
func loadPeerTLS(ctx context.Context, dir string, logger *slog.Logger) (*peerTLS, error) {
	if dir == "" {
		logger.Warn("No --tls-dir: member-to-member traffic is plain TCP and unauthenticated, and the admin API plain HTTP. Use this for local development only")
		return nil, nil
	}
	r, err := pki.NewReloader(dir, logger.With("module", "pki"))
	if err != nil {
		return nil, fmt.Errorf("--tls-dir: %w", err)
	}
	go r.Run(ctx) // ends with ctx, when the process stops
	logger.Info("Mutual TLS between members", "tls_dir", dir, "certificate_not_after", r.NotAfter())
	return &peerTLS{reloader: r}, nil
}

// apply sets the store's peer TLS.
func (p *peerTLS) apply(cfg store.Config) store.Config {
	if p != nil {
		cfg.PeerTLS, cfg.NamesID = p.reloader, pki.NamesID
	}
	return cfg
}

// httpsConfig serves the admin API over HTTPS; nil without --tls-dir.
func (p *peerTLS) httpsConfig() *tls.Config {
	if p == nil {
		return nil
	}
	return p.reloader.HTTPSConfig()
}

// forwardConfig is for admin requests forwarded to the leader's admin API.
func (p *peerTLS) forwardConfig() *tls.Config {
	if p == nil {
		return nil
	}
	return p.reloader.AnyMemberClientConfig()
}

package controllers

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
)

// AdminClient is the part of a node's admin API the operator uses;
// *adminapi.Client implements it.
type AdminClient interface {
	Cluster(ctx context.Context) (*adminapi.Cluster, error)
	Status(ctx context.Context) (*adminapi.Status, error)
	AddMember(ctx context.Context, id, address string) (*adminapi.Result, error)
	RemoveMember(ctx context.Context, id string) (*adminapi.Result, error)
	TransferLeadership(ctx context.Context, target string) (*adminapi.Result, error)
}

// AdminClientFactory returns a client for the admin API at baseURL (one
// pod's stable DNS name) that authenticates with token.
type AdminClientFactory func(baseURL, token string) (AdminClient, error)

// Deadlines of admin API calls: reads are cheap; a membership change or a
// leadership transfer commits well within adminCallTimeout on a healthy
// cluster.
const (
	adminReadTimeout = 5 * time.Second
	adminCallTimeout = 15 * time.Second
)

// NewAdminClientFactory returns the factory the manager uses: real HTTP
// clients sharing one connection pool.
func NewAdminClientFactory() AdminClientFactory {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: adminCallTimeout,
	}
	httpClient := &http.Client{Transport: transport, Timeout: adminCallTimeout}
	return func(baseURL, token string) (AdminClient, error) {
		return adminapi.NewClient(baseURL, token, httpClient)
	}
}

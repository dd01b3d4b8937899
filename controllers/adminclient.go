package controllers

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/pki"
)

// AdminClient is the part of a node's admin API the operator uses;
// *adminapi.Client implements it.
type AdminClient interface {
	Cluster(ctx context.Context) (*adminapi.Cluster, error)
	Status(ctx context.Context) (*adminapi.Status, error)
	AddMember(ctx context.Context, id, address string) (*adminapi.Result, error)
	RemoveMember(ctx context.Context, id string) (*adminapi.Result, error)
	TransferLeadership(ctx context.Context, target string) (*adminapi.Result, error)
	RecoverQuorum(ctx context.Context, lastIndex uint64) (*adminapi.RecoverResult, error)
}

// AdminTarget is one node's admin API and what a call to it needs.
type AdminTarget struct {
	// URL is the admin API's base URL: https, the pod's stable name, 8081.
	URL string
	// ID is the node's server ID (its pod's name): its certificate must
	// name it.
	ID string
	// Token is the bearer token of the admin API.
	Token string
	// CABundle holds the PEM certificates of the CAs the node's
	// certificate must chain to.
	CABundle []byte
}

// AdminClientFactory returns a client for one node's admin API.
type AdminClientFactory func(AdminTarget) (AdminClient, error)

// adminCredentials is what every admin call of one BuyTracker carries.
type adminCredentials struct {
	token    string
	caBundle []byte
}

// AdminBudget bounds the admin calls of one pass, so that a BuyTracker
// whose nodes do not answer holds a worker for at most Observe plus one
// Change, and never delays the others for longer than that.
type AdminBudget struct {
	// Observe bounds the whole observation of a pass: every GET /status
	// and GET /cluster it makes, together.
	Observe time.Duration
	// Read bounds one GET: a node that answers at all answers a read
	// within it.
	Read time.Duration
	// Change bounds one mutating call: a membership change, a leadership
	// transfer or a recovery commits well within it on a healthy cluster.
	Change time.Duration
}

// DefaultAdminBudget is the manager's budget of admin calls.
var DefaultAdminBudget = AdminBudget{Observe: 10 * time.Second, Read: 3 * time.Second, Change: 15 * time.Second}

// adminCallCeiling caps any admin HTTP exchange, whatever its context
// says: a call made without a deadline still ends.
const adminCallCeiling = 15 * time.Second

// maxAdminTransports bounds the connection pools kept for (CA bundle,
// node) pairs; past it they are all closed and made again on demand.
const maxAdminTransports = 256

// NewAdminClientFactory returns the factory the manager uses: HTTPS clients
// that verify a node's certificate against its BuyTracker's CA bundle, and
// that it names the node's server ID, keeping one connection pool per CA
// bundle and node.
func NewAdminClientFactory() AdminClientFactory {
	return newAdminClientFactory((&net.Dialer{Timeout: 3 * time.Second}).DialContext)
}

func newAdminClientFactory(dial func(ctx context.Context, network, addr string) (net.Conn, error)) AdminClientFactory {
	var (
		mu         sync.Mutex
		transports = map[string]*http.Transport{}
	)
	return func(t AdminTarget) (AdminClient, error) {
		sum := sha256.Sum256(t.CABundle)
		key := fmt.Sprintf("%x/%s/%s", sum[:8], t.ID, t.URL)
		mu.Lock()
		transport, ok := transports[key]
		if !ok {
			cfg, err := adminTLSConfig(t.CABundle, t.ID)
			if err != nil {
				mu.Unlock()
				return nil, err
			}
			if len(transports) >= maxAdminTransports {
				for k, old := range transports {
					old.CloseIdleConnections()
					delete(transports, k)
				}
			}
			transport = &http.Transport{
				DialContext:           dial,
				TLSClientConfig:       cfg,
				TLSHandshakeTimeout:   5 * time.Second,
				MaxIdleConnsPerHost:   2,
				IdleConnTimeout:       90 * time.Second,
				ResponseHeaderTimeout: adminCallCeiling,
			}
			transports[key] = transport
		}
		mu.Unlock()
		return adminapi.NewClient(t.URL, t.Token, &http.Client{Transport: transport, Timeout: adminCallCeiling})
	}
}

// adminTLSConfig trusts only the CAs of bundle (the usual chain and host
// name checks) and requires, in addition, that the certificate name the
// server ID id.
func adminTLSConfig(bundle []byte, id string) (*tls.Config, error) {
	if id == "" {
		return nil, errors.New("admin client: no server ID to verify")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return nil, errors.New("admin client: the CA bundle holds no certificate")
	}
	return &tls.Config{
		RootCAs:    pool,
		MinVersion: tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the node sent no certificate")
			}
			if leaf := cs.PeerCertificates[0]; !pki.NamesID(leaf, id) {
				return fmt.Errorf("the node's certificate (CN %q, DNS %v) does not name server ID %q", leaf.Subject.CommonName, leaf.DNSNames, id)
			}
			return nil
		},
	}, nil
}

// Package clientauth decides whether a client API request may use a route:
// which routes need a bearer token, and whether a token has the role a route
// needs. Tokens and their roles come from the file named by
// --client-auth-file, which is re-read while the node runs; the file or
// --client-auth-required asks for tokens on every route.
package clientauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Role is what a token may do.
type Role string

// The roles, one per kind of client.
const (
	Write  Role = "write"  // POST /buy
	Read   Role = "read"   // GET /stats
	Export Role = "export" // GET /buys
)

var knownRoles = []Role{Write, Read, Export}

var (
	// ErrNoCredentials means a route needs a token and none was given.
	ErrNoCredentials = errors.New("a bearer token is required")
	// ErrBadCredentials means the token given is not one of the file's.
	ErrBadCredentials = errors.New("the bearer token is not valid")
	// ErrMissingRole means the token is valid but lacks the route's role.
	ErrMissingRole = errors.New("the bearer token lacks the role this route needs")
	// ErrNoTokens means GET /buys needs a token and the node has no auth
	// file, so the route is closed whatever the client sends.
	ErrNoTokens = errors.New("no client tokens are configured")
)

// minTokenLength keeps guessable tokens out of the file.
const minTokenLength = 16

// fileFormat is the auth file, for example
//
//	{"require_auth_everywhere": false,
//	 "tokens": [{"name": "audit", "token": "…", "roles": ["export"]}]}
type fileFormat struct {
	RequireAuthEverywhere bool         `json:"require_auth_everywhere"`
	Tokens                []tokenEntry `json:"tokens"`
}

type tokenEntry struct {
	Name  string `json:"name"`
	Token string `json:"token"`
	Roles []Role `json:"roles"`
}

// policy is one version of the file, ready to check requests against.
type policy struct {
	fromFile   bool
	everywhere bool
	tokens     []token
}

type token struct {
	name   string
	digest [sha256.Size]byte
	roles  []Role
}

// Tokens checks requests against the current auth file. A nil *Tokens, or
// one opened without a file, holds no tokens: routes that need one refuse.
type Tokens struct {
	path   string
	logger *slog.Logger
	// required is --client-auth-required: tokens everywhere whatever the
	// file says. It lives here, not in a policy, so a reload keeps it.
	required bool
	current  atomic.Pointer[policy]
	// opened is the file as Open read it, for Watch to compare against.
	opened []byte
}

// Open reads the auth file at path; an empty path means no file. With
// required, POST /buy and GET /stats need a token whatever the file says;
// without a file no token is valid, so they answer 401 (the binary refuses
// to start that way).
func Open(path string, required bool, logger *slog.Logger) (*Tokens, error) {
	t := &Tokens{path: path, logger: logger, required: required}
	p := &policy{}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read client auth file: %w", err)
		}
		if p, err = parse(raw); err != nil {
			return nil, fmt.Errorf("client auth file %s: %w", path, err)
		}
		t.opened = raw
	}
	t.current.Store(p)
	return t, nil
}

// parse checks an auth file and turns it into a policy. Tokens are kept as
// SHA-256 digests, so that comparing one does not depend on its length.
func parse(raw []byte) (*policy, error) {
	var f fileFormat
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not the expected JSON object: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON object")
	}
	p := &policy{fromFile: true, everywhere: f.RequireAuthEverywhere}
	names, digests := map[string]bool{}, map[[sha256.Size]byte]bool{}
	for i, e := range f.Tokens {
		switch {
		case e.Name == "":
			return nil, fmt.Errorf("tokens[%d]: a name is required", i)
		case names[e.Name]:
			return nil, fmt.Errorf("tokens[%d]: the name %q is used twice", i, e.Name)
		case len(e.Token) < minTokenLength:
			return nil, fmt.Errorf("token %q: at least %d characters are required", e.Name, minTokenLength)
		case strings.IndexFunc(e.Token, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
			return nil, fmt.Errorf("token %q: only printable ASCII without spaces is allowed", e.Name)
		case len(e.Roles) == 0:
			return nil, fmt.Errorf("token %q: at least one role is required", e.Name)
		}
		for _, r := range e.Roles {
			if !slices.Contains(knownRoles, r) {
				return nil, fmt.Errorf("token %q: unknown role %q (want write, read or export)", e.Name, r)
			}
		}
		d := sha256.Sum256([]byte(e.Token))
		if digests[d] {
			return nil, fmt.Errorf("token %q: the same token is listed twice", e.Name)
		}
		names[e.Name], digests[d] = true, true
		p.tokens = append(p.tokens, token{name: e.Name, digest: d, roles: e.Roles})
	}
	return p, nil
}

// Needed reports whether a route with this role needs a token: export
// always, write and read only when the file or the flag requires tokens
// everywhere.
func (t *Tokens) Needed(role Role) bool {
	return t.needed(t.policy(), role)
}

func (t *Tokens) needed(p *policy, role Role) bool {
	return role == Export || p.everywhere || (t != nil && t.required)
}

// Authorize checks the Authorization header of a request for a route with
// this role. It returns the token's name, or an error that wraps one of
// ErrNoTokens, ErrNoCredentials, ErrBadCredentials and ErrMissingRole.
// Routes that need no token pass without looking at the header.
func (t *Tokens) Authorize(authorization string, role Role) (string, error) {
	p := t.policy()
	if !t.needed(p, role) {
		return "", nil
	}
	if !p.fromFile && role == Export {
		return "", ErrNoTokens
	}
	scheme, given, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || given == "" {
		return "", ErrNoCredentials
	}
	d := sha256.Sum256([]byte(given))
	found := -1
	for i := range p.tokens {
		// Every token is compared, so the time taken says nothing about
		// which one matched.
		if subtle.ConstantTimeCompare(d[:], p.tokens[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", ErrBadCredentials
	}
	if !slices.Contains(p.tokens[found].roles, role) {
		return p.tokens[found].name, fmt.Errorf("%w: token %q has no %s role", ErrMissingRole, p.tokens[found].name, role)
	}
	return p.tokens[found].name, nil
}

func (t *Tokens) policy() *policy {
	if t == nil {
		return &policy{}
	}
	return t.current.Load()
}

// Watch re-reads the file every interval until ctx ends and applies it when
// its content changed. A file that cannot be read or is invalid changes
// nothing: the previous tokens stay in force and the error is logged once.
// Without a file it returns at once.
func (t *Tokens) Watch(ctx context.Context, interval time.Duration) {
	if t == nil || t.path == "" {
		return
	}
	last, lastErr := t.opened, ""
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		raw, err := os.ReadFile(t.path)
		if err == nil && bytes.Equal(raw, last) {
			continue
		}
		var p *policy
		if err == nil {
			p, err = parse(raw)
		}
		if err != nil {
			if err.Error() != lastErr {
				t.logger.Error("Client auth file could not be applied; the previous tokens stay in force", "path", t.path, "error", err)
				lastErr = err.Error()
			}
			continue
		}
		last, lastErr = raw, ""
		t.current.Store(p)
		t.logger.Info("Client auth file reloaded", "path", t.path, "tokens", len(p.tokens),
			"require_auth_everywhere", p.everywhere, "client_auth_required", t.required)
	}
}

package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// APIError is a non-2xx answer from the admin API.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	// lastIndex is the last_index of a recovery's refusal.
	lastIndex uint64
}

func (e *APIError) Error() string {
	return fmt.Sprintf("admin API: %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// IsStatus reports whether err is an APIError with the given HTTP status.
func IsStatus(err error, status int) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.StatusCode == status
}

// Client calls one node's admin API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// DefaultTimeout bounds a call when the caller's context has no deadline.
const DefaultTimeout = 10 * time.Second

// NewClient returns a client for the admin API at baseURL (for example
// "http://promo-0.promo-peers.default.svc:8081"). httpClient may be nil.
func NewClient(baseURL, token string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("parse admin URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("admin URL %q: scheme must be http or https", baseURL)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: DefaultTimeout}
	}
	return &Client{base: u, token: token, http: httpClient}, nil
}

// BaseURL returns the URL the client calls.
func (c *Client) BaseURL() string { return c.base.String() }

// Cluster returns the cluster's membership as the leader sees it (or the
// answering node, when no leader is known).
func (c *Client) Cluster(ctx context.Context) (*Cluster, error) {
	var out Cluster
	if err := c.do(ctx, http.MethodGet, "/cluster", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Status returns the answering node's own Raft status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var out Status
	if err := c.do(ctx, http.MethodGet, "/status", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddMember adds a server as a non-voter; the leader promotes it to voter
// once it has caught up. Adding a member that is already present with the
// same address succeeds without a change.
func (c *Client) AddMember(ctx context.Context, id, address string) (*Result, error) {
	var out Result
	err := c.do(ctx, http.MethodPost, "/cluster/members", AddMemberRequest{ID: id, Address: address}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveMember removes a server from the configuration; removing an absent
// server succeeds without a change.
func (c *Client) RemoveMember(ctx context.Context, id string) (*Result, error) {
	var out Result
	if err := c.do(ctx, http.MethodDelete, "/cluster/members/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TransferLeadership moves leadership to target, or to the most up-to-date
// voter when target is empty. If target already leads, it succeeds at once.
func (c *Client) TransferLeadership(ctx context.Context, target string) (*Result, error) {
	var out Result
	if err := c.do(ctx, http.MethodPost, "/cluster/leadership-transfer", TransferRequest{ID: target}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Snapshot makes the node take a Raft snapshot now; the result's Index is
// the snapshot's last log index.
func (c *Client) Snapshot(ctx context.Context) (*Result, error) {
	var out Result
	if err := c.do(ctx, http.MethodPost, "/snapshot", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RecoverQuorum asks the node to recover from a lost quorum: to make itself
// the only voter, keeping its log, when its last log index is lastIndex. A
// refusal (409) is a *RecoverRefusedError carrying the node's last index.
// Asked again after it succeeded, it answers the same result.
func (c *Client) RecoverQuorum(ctx context.Context, lastIndex uint64) (*RecoverResult, error) {
	var out RecoverResult
	err := c.do(ctx, http.MethodPost, "/cluster/recover", RecoverRequest{LastIndex: lastIndex}, &out)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusConflict {
		return nil, &RecoverRefusedError{APIError: apiErr, LastIndex: apiErr.lastIndex}
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RecoverRefusedError is a refused recovery: nothing changed on the node.
type RecoverRefusedError struct {
	*APIError
	// LastIndex is the node's last log index when it refused.
	LastIndex uint64
}

// Unwrap lets errors.As and IsStatus see the APIError.
func (e *RecoverRefusedError) Unwrap() error { return e.APIError }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s%s: %w", method, c.base, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return AnswerError(resp.StatusCode, raw)
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// AnswerError turns a non-2xx answer of the admin API into an APIError,
// with the code and message of its JSON error body when it has one.
func AnswerError(status int, body []byte) *APIError {
	apiErr := &APIError{StatusCode: status, Code: "http_error", Message: strings.TrimSpace(string(body))}
	var eb RecoverRefusal // an ErrorBody, with last_index when a recovery was refused
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		apiErr.Code, apiErr.Message, apiErr.lastIndex = eb.Error.Code, eb.Error.Message, eb.LastIndex
	}
	return apiErr
}

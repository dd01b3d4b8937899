package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/test/chaos/history"
)

// statusTimeout bounds one status call: Leader and AwaitConverged ask every
// node, and a paused or cut-off node must not hold them up.
const statusTimeout = 2 * time.Second

func (c *Cluster) admin(n *Node) (*adminapi.Client, error) {
	return adminapi.NewClient(n.AdminURL, c.adminToken, c.adminHTTP)
}

// Status is n's own view (admin GET /status).
func (c *Cluster) Status(ctx context.Context, n *Node) (*adminapi.Status, error) {
	a, err := c.admin(n)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	st, err := a.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: status of %s: %w", n.ID, err)
	}
	return st, nil
}

// members returns the running nodes the test counts as members.
func (c *Cluster) members() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.nodes {
		if n.member && c.runningLocked(n) {
			out = append(out, n)
		}
	}
	return out
}

// statuses asks every node in ns at once; a failed call leaves a nil status
// and its error.
func (c *Cluster) statuses(ctx context.Context, ns []*Node) ([]*adminapi.Status, []error) {
	sts, errs := make([]*adminapi.Status, len(ns)), make([]error, len(ns))
	var wg sync.WaitGroup
	for i, n := range ns {
		wg.Go(func() { sts[i], errs[i] = c.Status(ctx, n) })
	}
	wg.Wait()
	return sts, errs
}

// Leader returns the node that a majority of the running members name as
// leader, and that itself answers that it leads. It asks once; callers
// retry.
func (c *Cluster) Leader(ctx context.Context) (*Node, error) {
	ms := c.members()
	if len(ms) == 0 {
		return nil, errors.New("cluster: no member is running")
	}
	sts, errs := c.statuses(ctx, ms)
	votes := map[string]int{}
	for _, st := range sts {
		if st != nil && st.Leader != "" {
			votes[st.Leader]++
		}
	}
	for id, v := range votes {
		if 2*v <= len(ms) {
			continue
		}
		for i, n := range ms {
			if n.ID == id && sts[i] != nil && sts[i].State == "Leader" {
				return n, nil
			}
		}
		return nil, fmt.Errorf("cluster: %d of %d running members name %s, which does not answer as leader", v, len(ms), id)
	}
	return nil, fmt.Errorf("cluster: no leader named by a majority of %d running members (votes %v; errors %v)", len(ms), votes, errors.Join(errs...))
}

// onLeader calls fn with the leader's admin client until it succeeds,
// retrying across leader changes until ctx ends. An answer that says the
// request itself is wrong (400, 401, 403, 404, 409) is not retried.
func (c *Cluster) onLeader(ctx context.Context, what string, fn func(context.Context, *adminapi.Client) error) error {
	var last error
	for {
		leader, err := c.Leader(ctx)
		if err == nil {
			var a *adminapi.Client
			if a, err = c.admin(leader); err == nil {
				err = fn(ctx, a)
			}
			if err == nil {
				return nil
			}
			for _, s := range []int{400, 401, 403, 404, 409} {
				if adminapi.IsStatus(err, s) {
					return fmt.Errorf("cluster: %s: %w", what, err)
				}
			}
		}
		last = err
		if ctx.Err() != nil {
			return fmt.Errorf("cluster: %s: %w (last: %w)", what, ctx.Err(), last)
		}
		sleep(ctx, 200*time.Millisecond)
	}
}

// AddMember adds n through the leader's admin API (POST /cluster/members),
// starting n's process first when it is not running. The leader adds it as
// a non-voter and promotes it once it caught up: await that with
// Cluster (admin GET /cluster) or AwaitConverged.
func (c *Cluster) AddMember(ctx context.Context, n *Node) error {
	if !c.Running(n) {
		if err := c.start(n); err != nil {
			return err
		}
	}
	err := c.onLeader(ctx, "add "+n.ID, func(ctx context.Context, a *adminapi.Client) error {
		_, err := a.AddMember(ctx, n.ID, n.RaftAddr)
		return err
	})
	if err == nil {
		c.setMember(n, true)
		c.cfg.Logf("cluster: added %s", n.ID)
	}
	return err
}

// RemoveMember removes n through the leader's admin API. Its process keeps
// running until killed.
func (c *Cluster) RemoveMember(ctx context.Context, n *Node) error {
	err := c.onLeader(ctx, "remove "+n.ID, func(ctx context.Context, a *adminapi.Client) error {
		_, err := a.RemoveMember(ctx, n.ID)
		return err
	})
	if err == nil {
		c.setMember(n, false)
		c.cfg.Logf("cluster: removed %s", n.ID)
	}
	return err
}

func (c *Cluster) setMember(n *Node, member bool) {
	c.mu.Lock()
	n.member = member
	c.mu.Unlock()
}

// Membership is the leader's view of the configuration (admin GET
// /cluster, answered by the leader).
func (c *Cluster) Membership(ctx context.Context) (*adminapi.Cluster, error) {
	var out *adminapi.Cluster
	err := c.onLeader(ctx, "membership", func(ctx context.Context, a *adminapi.Client) (err error) {
		out, err = a.Cluster(ctx)
		return err
	})
	return out, err
}

// Snapshot makes n take a snapshot now (each node compacts its own log).
func (c *Cluster) Snapshot(ctx context.Context, n *Node) error {
	a, err := c.admin(n)
	if err != nil {
		return err
	}
	if _, err := a.Snapshot(ctx); err != nil {
		return fmt.Errorf("cluster: snapshot %s: %w", n.ID, err)
	}
	return nil
}

// AwaitConverged waits, bounded by ctx, until every running member is ready
// (GET /ready), names the same leader, and is at the same applied index
// with the same digest. A paused member never converges: resume it first. A
// member that exited on its own fails it at once.
func (c *Cluster) AwaitConverged(ctx context.Context) error {
	var why error
	for {
		if crashed := c.Crashed(); len(crashed) > 0 {
			return fmt.Errorf("cluster: not converged: %s exited on its own (see %s)", crashed[0].ID, crashed[0].logPath)
		}
		if why = c.converged(ctx); why == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("cluster: not converged: %w (%w)", why, ctx.Err())
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

func (c *Cluster) converged(ctx context.Context) error {
	ms := c.members()
	if len(ms) == 0 {
		return errors.New("no member is running")
	}
	for _, n := range ms {
		if err := c.ready(ctx, n); err != nil {
			return err
		}
	}
	sts, errs := c.statuses(ctx, ms)
	first := sts[0]
	for i, st := range sts {
		if st == nil {
			return errs[i]
		}
		switch {
		case st.Leader == "" || st.Leader != first.Leader:
			return fmt.Errorf("%s names leader %q, %s names %q", ms[0].ID, first.Leader, ms[i].ID, st.Leader)
		case st.AppliedIndex != first.AppliedIndex:
			return fmt.Errorf("%s applied %d, %s applied %d", ms[0].ID, first.AppliedIndex, ms[i].ID, st.AppliedIndex)
		case st.DigestIndex != first.DigestIndex || st.Digest != first.Digest:
			return fmt.Errorf("%s has digest %.12s at %d, %s has %.12s at %d", ms[0].ID, first.Digest, first.DigestIndex, ms[i].ID, st.Digest, st.DigestIndex)
		}
	}
	return nil
}

// ready checks n's GET /ready.
func (c *Cluster) ready(ctx context.Context, n *Node) error {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.HTTPURL+"/ready", nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s /ready: %w", n.ID, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s not ready: %d %s", n.ID, resp.StatusCode, body)
	}
	return nil
}

// Export pages through n's GET /buys at stale consistency (n's own applied
// state, whoever leads) with the export token.
func (c *Cluster) Export(ctx context.Context, n *Node) ([]history.Record, error) {
	var out []history.Record
	after := uint64(0)
	for {
		url := fmt.Sprintf("%s/buys?after=%d&limit=1000&consistency=stale", n.HTTPURL, after)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+ExportToken)
		resp, err := c.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("cluster: export %s: %w", n.ID, err)
		}
		var page struct {
			Purchases []history.Record `json:"purchases"`
			NextAfter uint64           `json:"next_after"`
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d: %.300s", resp.StatusCode, raw)
		}
		if err == nil {
			err = json.Unmarshal(raw, &page)
		}
		if err != nil {
			return nil, fmt.Errorf("cluster: export %s after %d: %w", n.ID, after, err)
		}
		if len(page.Purchases) == 0 {
			return out, nil
		}
		if page.NextAfter <= after {
			return nil, fmt.Errorf("cluster: export %s: next_after %d after %d does not move on", n.ID, page.NextAfter, after)
		}
		out = append(out, page.Purchases...)
		after = page.NextAfter
	}
}

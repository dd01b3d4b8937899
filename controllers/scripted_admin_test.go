package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/buytracker/buytracker/node/adminapi"
)

// scriptedCluster stands in for the nodes' admin API, which envtest cannot
// run (it runs no pods): one Raft configuration that the membership calls
// change the way a node would, a log of those calls, and a hook tests use
// to look at the world, or to stop the operator, in the middle of a call.
type scriptedCluster struct {
	names clusterNames

	mu      sync.Mutex
	leader  string
	members []adminapi.Member
	commit  uint64
	down    map[string]bool
	calls   []string
	tokens  map[string]bool
	// onCall runs after a membership call changed the configuration, with
	// the call's context; an error it returns is the call's answer.
	onCall func(ctx context.Context, call string) error
	// nodeStatus changes what a pod answers to GET /status (incarnation,
	// disk, clock); statusCalls counts those calls per pod.
	nodeStatus  map[string]func(*adminapi.Status)
	statusCalls map[string]int
	// clusterCalls counts GET /cluster calls.
	clusterCalls int
	// recoveredAt is the index a pod recovered a lost quorum at.
	recoveredAt map[string]uint64
}

func newScriptedCluster(names clusterNames, size int32, leader int32) *scriptedCluster {
	s := &scriptedCluster{names: names, leader: names.pod(leader), commit: 100, down: map[string]bool{}, tokens: map[string]bool{},
		nodeStatus: map[string]func(*adminapi.Status){}, statusCalls: map[string]int{}, recoveredAt: map[string]uint64{}}
	for i := range size {
		s.members = append(s.members, adminapi.Member{ID: names.pod(i), Address: names.raftAddress(names.pod(i)), Suffrage: adminapi.Voter})
	}
	return s
}

func (s *scriptedCluster) factory() AdminClientFactory {
	return func(target AdminTarget) (AdminClient, error) {
		u, err := url.Parse(target.URL)
		if err != nil {
			return nil, err
		}
		pod, _, _ := strings.Cut(u.Hostname(), ".")
		if u.Scheme != "https" || u.Hostname() != s.names.host(pod) || target.ID != pod {
			return nil, fmt.Errorf("%s (ID %q) is not the admin API of a node of %s/%s", target.URL, target.ID, s.names.namespace, s.names.name)
		}
		// What the real client does first: a bundle without a CA fails.
		if _, err := adminTLSConfig(target.CABundle, target.ID); err != nil {
			return nil, err
		}
		return &scriptedNode{cluster: s, pod: pod, token: target.Token}, nil
	}
}

func (s *scriptedCluster) setDown(pod string, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down[pod] = down
}

// setNodeStatus makes pod answer GET /status as edit says, from now on.
func (s *scriptedCluster) setNodeStatus(pod string, edit func(*adminapi.Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodeStatus[pod] = edit
}

// takeStatusCalls returns the GET /status calls per pod since the last
// time, and starts counting again.
func (s *scriptedCluster) takeStatusCalls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls := s.statusCalls
	s.statusCalls = map[string]int{}
	return calls
}

// joining says whether pod reports itself a new incarnation still joining,
// which the node's promoter does not promote.
func (s *scriptedCluster) joining(pod string) bool {
	st := adminapi.Status{}
	if edit := s.nodeStatus[pod]; edit != nil {
		edit(&st)
	}
	return st.Joining
}

func (s *scriptedCluster) setHook(hook func(ctx context.Context, call string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onCall = hook
}

func (s *scriptedCluster) callLog() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *scriptedCluster) memberIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, m := range s.members {
		ids = append(ids, fmt.Sprintf("%s:%s", m.ID, m.Suffrage))
	}
	return ids
}

// scriptedNode is one pod's admin API.
type scriptedNode struct {
	cluster *scriptedCluster
	pod     string
	token   string
}

var errNodeDown = errors.New("connection refused")

// answer checks that the node is up and was called with a token.
func (n *scriptedNode) answer() error {
	if n.token == "" {
		return &adminapi.APIError{StatusCode: 401, Code: "unauthorized"}
	}
	n.cluster.tokens[n.token] = true
	if n.cluster.down[n.pod] {
		return fmt.Errorf("%s: %w", n.pod, errNodeDown)
	}
	return nil
}

// Cluster answers as the leader would, from its own knowledge: only its
// own member carries a last index. Like the node's promoter, it makes a
// caught-up non-voter a voter, one per call.
func (n *scriptedNode) Cluster(context.Context) (*adminapi.Cluster, error) {
	s := n.cluster
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clusterCalls++
	if err := n.answer(); err != nil {
		return nil, err
	}
	out := &adminapi.Cluster{ServedBy: s.leader, Leader: s.leader, Term: 1, CommitIndex: s.commit, AppliedIndex: s.commit}
	for _, m := range s.members {
		m.Leader = m.ID == s.leader
		if m.ID == s.leader {
			idx := s.commit
			m.LastIndex = &idx
		}
		out.Members = append(out.Members, m)
	}
	for i, m := range s.members {
		if m.Suffrage == adminapi.Nonvoter && !s.down[m.ID] && !s.joining(m.ID) {
			s.members[i].Suffrage = adminapi.Voter
			break
		}
	}
	return out, nil
}

func (n *scriptedNode) Status(context.Context) (*adminapi.Status, error) {
	s := n.cluster
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := n.answer(); err != nil {
		return nil, err
	}
	s.statusCalls[n.pod]++
	return n.statusLocked(), nil
}

func (n *scriptedNode) statusLocked() *adminapi.Status {
	s := n.cluster
	state := "Follower"
	if n.pod == s.leader {
		state = "Leader"
	}
	st := &adminapi.Status{ID: n.pod, State: state, Leader: s.leader, Term: 1, LastIndex: s.commit, CommitIndex: s.commit, AppliedIndex: s.commit,
		RecoveredIndex: s.recoveredAt[n.pod]}
	if edit := s.nodeStatus[n.pod]; edit != nil {
		edit(st)
	}
	return st
}

// RecoverQuorum answers as a node does: a pod that recovered at lastIndex
// and leads answers the same again; one that knows a leader, holds no data
// of its own, or has another last index refuses; otherwise it becomes the
// only voter and leads.
func (n *scriptedNode) RecoverQuorum(_ context.Context, lastIndex uint64) (*adminapi.RecoverResult, error) {
	s := n.cluster
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := n.answer(); err != nil {
		return nil, err
	}
	s.calls = append(s.calls, fmt.Sprintf("recover %s %d", n.pod, lastIndex))
	st := n.statusLocked()
	refuse := func(reason string) error {
		return &adminapi.RecoverRefusedError{APIError: &adminapi.APIError{StatusCode: 409, Code: "recover_refused", Message: reason}, LastIndex: st.LastIndex}
	}
	switch {
	case s.recoveredAt[n.pod] == lastIndex && s.leader == n.pod:
		return &adminapi.RecoverResult{Recovered: true, LastIndex: lastIndex, Term: 2}, nil
	case s.leader != "":
		return nil, refuse("a leader is known (" + s.leader + ")")
	case !st.HasData || st.Joining:
		return nil, refuse("this node holds no data of its own")
	case st.LastIndex != lastIndex:
		return nil, refuse(fmt.Sprintf("this node's last index is %d, not %d", st.LastIndex, lastIndex))
	}
	s.leader, s.recoveredAt[n.pod] = n.pod, lastIndex
	s.members = []adminapi.Member{{ID: n.pod, Address: s.names.raftAddress(n.pod), Suffrage: adminapi.Voter}}
	return &adminapi.RecoverResult{Recovered: true, LastIndex: lastIndex, Term: 2}, nil
}

func (n *scriptedNode) AddMember(ctx context.Context, id, address string) (*adminapi.Result, error) {
	return n.change(ctx, "add "+id, func(s *scriptedCluster) {
		if !slices.ContainsFunc(s.members, func(m adminapi.Member) bool { return m.ID == id }) {
			s.members = append(s.members, adminapi.Member{ID: id, Address: address, Suffrage: adminapi.Nonvoter})
		}
	})
}

func (n *scriptedNode) RemoveMember(ctx context.Context, id string) (*adminapi.Result, error) {
	return n.change(ctx, "remove "+id, func(s *scriptedCluster) {
		s.members = slices.DeleteFunc(s.members, func(m adminapi.Member) bool { return m.ID == id })
	})
}

func (n *scriptedNode) TransferLeadership(ctx context.Context, target string) (*adminapi.Result, error) {
	return n.change(ctx, "transfer "+target, func(s *scriptedCluster) { s.leader = target })
}

func (n *scriptedNode) change(ctx context.Context, call string, apply func(*scriptedCluster)) (*adminapi.Result, error) {
	s := n.cluster
	s.mu.Lock()
	if err := n.answer(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	apply(s)
	s.commit++
	s.calls = append(s.calls, call)
	index, hook := s.commit, s.onCall
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, call); err != nil {
			return nil, err
		}
	}
	return &adminapi.Result{Index: index, Message: call}, nil
}

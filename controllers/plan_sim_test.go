package controllers

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// simCluster models what the planner's steps act on: the StatefulSet and
// its pods, and the Raft configuration. A step changes it at once; tick
// models time passing (a restarted pod comes back, the leader promotes
// caught-up non-voters).
type simCluster struct {
	desired, sts   int32
	leader         string
	voter          map[string]bool // members; false for non-voters
	pods           map[string]*simPod
	failed         map[string]bool
	updateRevision string
	commit         uint64
	// restarts lists the pods deleted by the planner, in order.
	restarts []string
	// halted members report a halted ledger; haltSeen are those the last
	// pass recorded as halted (the status); joining members are new
	// incarnations not yet allowed to vote; replaced lists the members
	// replaced, in order.
	halted, haltSeen, joining map[string]bool
	replaced                  []string
}

type simPod struct {
	restarting bool
	revision   string
	// replacing: deleted with its claim; not running until a tick makes it
	// again on a new volume.
	replacing bool
}

func newSim(size int32, leader int32, failed ...int32) *simCluster {
	s := &simCluster{sts: size, desired: size, leader: testNames.pod(leader), voter: map[string]bool{},
		pods: map[string]*simPod{}, failed: map[string]bool{}, updateRevision: "r1", commit: 100,
		halted: map[string]bool{}, haltSeen: map[string]bool{}, joining: map[string]bool{}}
	for i := range size {
		s.voter[testNames.pod(i)] = true
		s.pods[testNames.pod(i)] = &simPod{revision: "r1"}
	}
	for _, f := range failed {
		s.failed[testNames.pod(f)] = true
	}
	return s
}

func (s *simCluster) ready(id string) bool {
	p, ok := s.pods[id]
	_, member := s.voter[id]
	return ok && member && !p.restarting && !p.replacing && !s.failed[id] && !s.halted[id]
}

func (s *simCluster) view() clusterView {
	v := clusterView{names: testNames, desired: s.desired, stsReplicas: s.sts, updateRevision: s.updateRevision,
		pods: map[string]podView{}, raft: &adminapi.Cluster{Leader: s.leader, CommitIndex: s.commit}, leaderLastIndex: s.commit,
		nodes: map[string]*adminapi.Status{}, haltRecorded: map[string]string{}, replaceHalted: true}
	for id, p := range s.pods {
		v.pods[id] = podView{running: !p.replacing, pending: p.replacing, ready: s.ready(id), revision: p.revision}
		if !p.replacing && (s.halted[id] || s.joining[id]) {
			st := &adminapi.Status{ID: id, Joining: s.joining[id]}
			if s.halted[id] {
				st.Halted = "checksum mismatch"
			}
			v.nodes[id] = st
		}
	}
	for id := range s.haltSeen {
		v.haltRecorded[id] = ""
	}
	for id, voter := range s.voter {
		m := adminapi.Member{ID: id, Address: testNames.raftAddress(id), Suffrage: adminapi.Nonvoter, Leader: id == s.leader}
		if voter {
			m.Suffrage = adminapi.Voter
		}
		if s.ready(id) {
			idx := s.commit
			m.LastIndex = &idx
		}
		v.raft.Members = append(v.raft.Members, m)
	}
	slices.SortFunc(v.raft.Members, func(a, b adminapi.Member) int { return int(v.ordinalOf(a.ID) - v.ordinalOf(b.ID)) })
	return v
}

// healthyVoters counts voters and healthy voters, as the planner must see
// them after a step.
func (s *simCluster) healthyVoters() (voters, healthy int) {
	for id, voter := range s.voter {
		if voter {
			voters++
			if s.ready(id) {
				healthy++
			}
		}
	}
	return voters, healthy
}

// apply carries out a step, failing the test when it would break quorum.
func (s *simCluster) apply(t *testing.T, st step) {
	t.Helper()
	switch st.action {
	case actionScale:
		for id := range s.voter {
			if o, _ := testNames.ordinal(id); o >= st.replicas {
				t.Fatalf("StatefulSet shrinks to %d while %s is a member", st.replicas, id)
			}
		}
		s.sts = st.replicas
		for id := range s.pods {
			if o, _ := testNames.ordinal(id); o >= s.sts {
				delete(s.pods, id)
			}
		}
		for i := range s.sts {
			if _, ok := s.pods[testNames.pod(i)]; !ok {
				s.pods[testNames.pod(i)] = &simPod{revision: s.updateRevision}
			}
		}
	case actionAddMember:
		if _, ok := s.pods[st.member]; !ok {
			t.Fatalf("adds %s, which has no pod", st.member)
		}
		s.voter[st.member] = false
		s.commit++
	case actionRemoveMember:
		if st.member == s.leader {
			t.Fatalf("removes the leader %s", st.member)
		}
		delete(s.voter, st.member)
		s.commit++
	case actionTransferLeadership:
		if !s.voter[st.target] || !s.ready(st.target) {
			t.Fatalf("transfers leadership to %s, not a healthy voter", st.target)
		}
		if o, _ := testNames.ordinal(st.target); o >= s.desired {
			t.Fatalf("transfers leadership to %s, which is leaving", st.target)
		}
		s.leader = st.target
	case actionDeletePod:
		if voters, _ := s.healthyVoters(); voters > 1 && st.member == s.leader {
			t.Fatalf("restarts the leader %s", st.member)
		}
		s.pods[st.member] = &simPod{restarting: true, revision: s.updateRevision}
		s.restarts = append(s.restarts, st.member)
	case actionReplaceMember:
		switch {
		case st.member == s.leader:
			t.Fatalf("replaces the leader %s", st.member)
		case !s.halted[st.member] || !s.haltSeen[st.member]:
			t.Fatalf("replaces %s, not seen halted by two passes", st.member)
		}
		for id, p := range s.pods {
			if p.replacing || s.joining[id] {
				t.Fatalf("replaces %s while %s is being replaced", st.member, id)
			}
		}
		s.pods[st.member] = &simPod{replacing: true, revision: s.updateRevision}
		s.replaced = append(s.replaced, st.member)
	}
	voters, healthy := s.healthyVoters()
	if healthy < quorum(voters) && !(voters == 1 && st.action == actionDeletePod) {
		t.Fatalf("after %q: %d of %d voters healthy, below quorum", st.note, healthy, voters)
	}
	if _, ok := s.voter[s.leader]; !ok {
		t.Fatalf("after %q: the leader %s is no member", st.note, s.leader)
	}
}

// tick reports whether anything changed. A replaced member comes back
// empty: a non-voter that joins, then may vote, then is promoted; a halted
// leader's Raft is shut down, so another voter leads.
func (s *simCluster) tick() bool {
	changed := false
	if s.halted[s.leader] {
		for i := range s.desired {
			if id := testNames.pod(i); s.voter[id] && s.ready(id) {
				s.leader, changed = id, true
				break
			}
		}
	}
	for id, p := range s.pods {
		switch {
		case p.replacing:
			p.replacing, s.halted[id], s.joining[id], s.voter[id] = false, false, true, false
			return true
		case s.joining[id]:
			delete(s.joining, id)
			return true
		}
	}
	for _, p := range s.pods {
		changed = changed || p.restarting
		p.restarting = false
	}
	for id, voter := range s.voter {
		if !voter && s.ready(id) && !s.joining[id] {
			s.voter[id] = true
			return true // the node promotes one per pass
		}
	}
	return changed
}

// run drives the planner until it reports the cluster reconciled.
func (s *simCluster) run(t *testing.T) {
	t.Helper()
	for range 500 {
		st := planNext(s.view())
		s.haltSeen = maps.Clone(s.halted)
		if st.action == actionWait {
			if st.phase == buytrackerv1alpha1.ReasonReconciled {
				return
			}
			if !s.tick() {
				t.Fatalf("stuck: %s (%s)", st.note, st.phase)
			}
			continue
		}
		s.apply(t, st)
	}
	t.Fatal("no convergence in 500 steps")
}

func (s *simCluster) checkConverged(t *testing.T) {
	t.Helper()
	expect(t, "StatefulSet replicas", s.sts, s.desired)
	for i := range s.desired {
		if voter, ok := s.voter[testNames.pod(i)]; !ok || !voter {
			t.Errorf("%s is not a voter", testNames.pod(i))
		}
	}
	expect(t, "members", len(s.voter), int(s.desired))
}

func TestPlanScalesEverySizeToEverySize(t *testing.T) {
	sizes := []int32{1, 3, 5, 7, 9}
	for _, from := range sizes {
		for _, to := range sizes {
			// With a failed member: one that stays (1, kept when to >= 3)
			// or one that goes; the leader is the highest member, so that
			// a scale-down has to move leadership first.
			cases := [][]int32{nil}
			if from >= 3 {
				cases = append(cases, []int32{1})
			}
			if from >= 5 {
				cases = append(cases, []int32{from - 2})
			}
			for _, failed := range cases {
				t.Run(fmt.Sprintf("%d to %d, failed %v", from, to, failed), func(t *testing.T) {
					s := newSim(from, from-1, failed...)
					s.desired = to
					s.run(t)
					s.checkConverged(t)
				})
			}
		}
	}
}

func TestPlanRollsFollowersFirstAndTheLeaderLast(t *testing.T) {
	for _, size := range []int32{1, 3, 5, 7, 9} {
		t.Run(fmt.Sprintf("%d members", size), func(t *testing.T) {
			s := newSim(size, size/2)
			leader := s.leader
			s.updateRevision = "r2"
			s.run(t)
			expect(t, "restarts", len(s.restarts), int(size))
			expect(t, "last restart", s.restarts[len(s.restarts)-1], leader)
			for id, p := range s.pods {
				expect(t, id+" revision", p.revision, "r2")
			}
		})
		if size == 1 {
			continue
		}
		t.Run(fmt.Sprintf("%d members with one failed", size), func(t *testing.T) {
			s := newSim(size, 0, size-1)
			s.updateRevision = "r2"
			st := planNext(s.view())
			expect(t, "action", st.action, actionWait)
			expect(t, "phase", st.phase, buytrackerv1alpha1.ReasonRollingUpdate)
		})
	}
}

func TestPlanReplacesHaltedMembersOneAtATimeWhileTheOthersKeepAQuorum(t *testing.T) {
	for _, size := range []int32{3, 5, 7, 9} {
		for halted := int32(1); halted <= (size-1)/2; halted++ {
			// The leader is among the halted: it hands over first.
			t.Run(fmt.Sprintf("%d members, %d halted", size, halted), func(t *testing.T) {
				s := newSim(size, 0)
				for i := range halted {
					s.halted[testNames.pod(i)] = true
				}
				s.run(t)
				s.checkConverged(t)
				want := []string{}
				for i := range halted {
					want = append(want, testNames.pod(i))
				}
				expect(t, "replaced, lowest first, each once", s.replaced, want)
				if s.halted[s.leader] {
					t.Errorf("the leader %s is halted", s.leader)
				}
			})
		}
		// One more halted member than the cluster can lose: nothing is
		// replaced, the planner waits.
		t.Run(fmt.Sprintf("%d members, a majority halted", size), func(t *testing.T) {
			s := newSim(size, size-1)
			for i := range size/2 + 1 {
				s.halted[testNames.pod(i)] = true
			}
			for range 3 {
				st := planNext(s.view())
				s.haltSeen = maps.Clone(s.halted)
				expect(t, "action", st.action, actionWait)
				expect(t, "phase", st.phase, buytrackerv1alpha1.ReasonReplacingMember)
			}
		})
	}
}

package controllers

import (
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

const testCommit = 1000

// viewOf builds a view from a compact description, one token per pod:
// the ordinal, then flags: L leader, n non-voter, x failed (pod not ready,
// no index), g lagging, o outdated template, p pod only (not a member),
// s pod not started yet (not running, not a member), m member without a
// pod, t pod pending on a volume claim that is being deleted (implies m's
// missing index), h halted (and recorded as halted by the pass before),
// f halted, seen for the first time, d diverged, j a new incarnation still
// joining. Every pod has a volume claim.
func viewOf(desired, stsReplicas int32, tokens string) clusterView {
	v := clusterView{
		names: testNames, desired: desired, stsReplicas: stsReplicas,
		updateRevision: "new", pods: map[string]podView{},
		raft:            &adminapi.Cluster{CommitIndex: testCommit},
		leaderLastIndex: testCommit,
		nodes:           map[string]*adminapi.Status{},
		claims:          map[string]claimView{},
		haltRecorded:    map[string]string{},
		replaceHalted:   true,
	}
	for _, tok := range strings.Fields(tokens) {
		digits := strings.TrimRight(tok, "Lnxgopsmthfdj")
		ord, _ := strconv.Atoi(digits)
		flags := tok[len(digits):]
		id := testNames.pod(int32(ord))
		has := func(f string) bool { return strings.Contains(flags, f) }
		pod := podView{running: !has("s") && !has("t"), ready: !has("x") && !has("p") && !has("s") && !has("t"), revision: "new",
			pending: has("s") || has("t"), uid: types.UID("uid-" + id)}
		if has("o") {
			pod.revision = "old"
		}
		if !has("m") {
			v.pods[id] = pod
			v.claims[id] = claimView{name: "data-" + id, terminating: has("t"), uid: types.UID("claim-" + id)}
		}
		if has("h") || has("f") || has("d") || has("j") {
			st := &adminapi.Status{ID: id, Incarnation: "inc-" + id, Joining: has("j")}
			switch {
			case has("h") || has("f"):
				st.Halted = "entry 812: checksum mismatch"
			case has("d"):
				st.Diverged = "digest differs from promo-0's at index 990"
			}
			v.nodes[id] = st
			if has("h") {
				v.haltRecorded[id] = st.Incarnation
			}
		}
		if has("p") || has("s") {
			continue
		}
		m := adminapi.Member{ID: id, Address: testNames.raftAddress(id), Suffrage: adminapi.Voter, Leader: has("L")}
		if has("n") {
			m.Suffrage = adminapi.Nonvoter
		}
		idx := uint64(testCommit)
		if has("g") {
			idx = testCommit - caughtUpLag - 1
		}
		if !has("x") && !has("m") && !has("t") {
			m.LastIndex = &idx
		}
		if has("L") {
			v.raft.Leader = id
		}
		v.raft.Members = append(v.raft.Members, m)
	}
	return v
}

func TestPlanNext(t *testing.T) {
	const (
		up       = buytrackerv1alpha1.ReasonScalingUp
		down     = buytrackerv1alpha1.ReasonScalingDown
		roll     = buytrackerv1alpha1.ReasonRollingUpdate
		done     = buytrackerv1alpha1.ReasonReconciled
		noLeader = buytrackerv1alpha1.ReasonWaitingForLeader
		replace  = buytrackerv1alpha1.ReasonReplacingMember
	)
	tests := []struct {
		name   string
		view   clusterView
		action action
		phase  string
		member string // member, target ("a->b") or replicas
	}{
		{"no node answers", func() clusterView { v := viewOf(3, 3, "0 1 2"); v.raft = nil; return v }(), actionWait, noLeader, ""},
		{"no leader", viewOf(3, 3, "0 1 2"), actionWait, noLeader, ""},
		{"steady", viewOf(3, 3, "0L 1 2"), actionWait, done, ""},
		{"steady with a failed member", viewOf(3, 3, "0L 1x 2"), actionWait, done, ""},

		{"scale up grows the StatefulSet first", viewOf(5, 3, "0L 1 2"), actionScale, up, "5"},
		{"scale up adds the lowest new pod", viewOf(5, 5, "0L 1 2 3p 4p"), actionAddMember, up, "promo-3"},
		{"scale up adds the next pod while the first catches up", viewOf(5, 5, "0L 1 2 3n 4p"), actionAddMember, up, "promo-4"},
		{"scale up waits for a pod to start", viewOf(5, 5, "0L 1 2 3s 4s"), actionWait, up, ""},
		{"scale up waits for promotion", viewOf(5, 5, "0L 1 2 3 4n"), actionWait, up, ""},
		{"scale up with a failed member still adds", viewOf(5, 5, "0L 1x 2 3p 4p"), actionAddMember, up, "promo-3"},

		{"scale down moves leadership off a leaving leader", viewOf(3, 5, "0 1 2 3 4L"), actionTransferLeadership, down, "promo-4->promo-0"},
		{"scale down picks a healthy successor", viewOf(3, 5, "0x 1g 2 3 4L"), actionTransferLeadership, down, "promo-4->promo-2"},
		{"scale down without a healthy successor waits", viewOf(3, 5, "0x 1x 2x 3 4L"), actionWait, down, ""},
		{"scale down removes the highest member", viewOf(3, 5, "0L 1 2 3 4"), actionRemoveMember, down, "promo-4"},
		{"scale down removes non-voters first", viewOf(3, 5, "0L 1 2 3n 4"), actionRemoveMember, down, "promo-3"},
		{"scale down removes failed voters first", viewOf(3, 5, "0L 1 2 3x 4"), actionRemoveMember, down, "promo-3"},
		{"scale down never removes into a lost quorum", viewOf(3, 5, "0L 1x 2x 3 4"), actionWait, down, ""},
		{"scale down removes a failed member to keep quorum", viewOf(1, 3, "0L 1x 2"), actionRemoveMember, down, "promo-1"},
		{"scale down waits for the removal to commit", func() clusterView {
			v := viewOf(3, 5, "0L 1 2 3p 4p")
			v.leaderLastIndex = testCommit + 1
			return v
		}(), actionWait, down, ""},
		{"scale down waits for proof of commit", func() clusterView {
			v := viewOf(3, 5, "0L 1 2 3p 4p")
			v.leaderLastIndex = 0
			return v
		}(), actionWait, down, ""},
		{"scale down shrinks the StatefulSet once committed", viewOf(3, 5, "0L 1 2 3p 4p"), actionScale, down, "3"},

		{"rollout restarts the highest follower first", viewOf(3, 3, "0Lo 1o 2o"), actionDeletePod, roll, "promo-2"},
		{"rollout waits for a restarted pod", viewOf(3, 3, "0Lo 1o 2x"), actionWait, roll, ""},
		{"rollout waits for a lagging member", viewOf(3, 3, "0Lo 1o 2g"), actionWait, roll, ""},
		{"rollout moves leadership before the leader restarts", viewOf(3, 3, "0Lo 1 2"), actionTransferLeadership, roll, "promo-0->promo-1"},
		{"rollout restarts the old leader once it follows", viewOf(3, 3, "0o 1L 2"), actionDeletePod, roll, "promo-0"},
		{"rollout of a single member restarts it", viewOf(1, 1, "0Lo"), actionDeletePod, roll, "promo-0"},
		{"rollout never starts with a failed member", viewOf(5, 5, "0Lo 1o 2o 3x 4o"), actionWait, roll, ""},
		{"rollout waits until the StatefulSet controller caught up", func() clusterView {
			v := viewOf(3, 3, "0Lo 1o 2o")
			v.updateRevision = ""
			return v
		}(), actionWait, done, ""},
		{"rollout waits on a halted member it may not replace", func() clusterView {
			v := viewOf(3, 3, "0Lo 1o 2h")
			v.replaceHalted = false
			return v
		}(), actionWait, roll, ""},

		{"a halted follower seen by two passes is replaced", viewOf(3, 3, "0L 1xh 2"), actionReplaceMember, replace, "promo-1"},
		{"a halted member whose pod still looks ready is replaced", viewOf(3, 3, "0L 1h 2"), actionReplaceMember, replace, "promo-1"},
		{"a halt seen by one pass waits for the next", viewOf(3, 3, "0L 1xf 2"), actionWait, replace, ""},
		{"a halt recorded for an earlier incarnation waits for the next pass", func() clusterView {
			v := viewOf(3, 3, "0L 1xh 2")
			v.haltRecorded["promo-1"] = "the lost one"
			return v
		}(), actionWait, replace, ""},
		{"a diverged member is not replaced: it may clear", viewOf(3, 3, "0L 1d 2"), actionWait, done, ""},
		{"a diverged member counts as unhealthy", viewOf(3, 3, "0Lo 1d 2"), actionWait, roll, ""},
		{"a halted member stays when replacement is off", func() clusterView {
			v := viewOf(3, 3, "0L 1xh 2")
			v.replaceHalted = false
			return v
		}(), actionWait, done, ""},
		{"a halted member still reported as leader waits", viewOf(3, 3, "0Lh 1 2"), actionWait, replace, ""},
		{"no replacement without a quorum of the others", viewOf(3, 3, "0L 1xh 2x"), actionWait, replace, ""},
		{"no replacement of the only member", viewOf(1, 1, "0Lxh"), actionWait, replace, ""},
		{"five members: replaced while the other four keep a quorum", viewOf(5, 5, "0L 1xh 2x 3 4"), actionReplaceMember, replace, "promo-1"},
		{"never two at once: another member is rejoining", viewOf(5, 5, "0L 1xh 2nj 3 4"), actionWait, replace, ""},
		{"never two at once: another member has no pod", viewOf(5, 5, "0L 1xh 2xm 3 4"), actionWait, replace, ""},
		{"two halted members: the lowest first", viewOf(5, 5, "0L 1xh 2 3xh 4"), actionReplaceMember, replace, "promo-1"},
		{"a halted member that is leaving is removed, not replaced", viewOf(3, 5, "0L 1 2 3 4xh"), actionRemoveMember, down, "promo-4"},
		{"a pod pending on a claim being deleted is deleted again", viewOf(3, 3, "0L 1t 2"), actionDeletePod, replace, "promo-1"},
		{"a pod pending on a claim being deleted is deleted without a leader", viewOf(3, 3, "0 1t 2"), actionDeletePod, replace, "promo-1"},
		{"a running pod whose claim is being deleted is left alone", func() clusterView {
			v := viewOf(3, 3, "0L 1 2")
			v.claims["promo-1"] = claimView{name: "data-promo-1", terminating: true}
			return v
		}(), actionWait, done, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := planNext(tt.view)
			expect(t, "action", s.action, tt.action)
			expect(t, "phase", s.phase, tt.phase)
			var got string
			switch s.action {
			case actionScale:
				got = strconv.Itoa(int(s.replicas))
			case actionTransferLeadership:
				got = s.member + "->" + s.target
			case actionWait:
			default:
				got = s.member
			}
			expect(t, "subject", got, tt.member)
			if s.note == "" {
				t.Error("step has no note")
			}
			if s.action == actionAddMember {
				expect(t, "address", s.address, testNames.raftAddress(s.member))
			}
			if s.action == actionReplaceMember && (!strings.Contains(s.note, s.member) || !strings.Contains(s.note, "checksum mismatch")) {
				t.Errorf("note %q does not name the member and why it halted", s.note)
			}
		})
	}
}

package controllers

import (
	"cmp"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/types"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// caughtUpLag is how many entries behind the leader's commit index a member
// may be and still count as caught up (the node promotes non-voters with
// the same margin).
const caughtUpLag = 256

// clusterView is everything the planner decides from.
type clusterView struct {
	names clusterNames
	// desired is spec.replicas.
	desired int32
	// stsReplicas is the StatefulSet's spec.replicas.
	stsReplicas int32
	// updateRevision is the StatefulSet's latest template revision, empty
	// until the StatefulSet controller has observed the latest template.
	updateRevision string
	// pods are the cluster's pods by name.
	pods map[string]podView
	// raft is the leader's view of the configuration; nil when no node
	// answered.
	raft *adminapi.Cluster
	// leaderLastIndex is the leader's last log index, read before raft;
	// 0 when it was not read.
	leaderLastIndex uint64
	// nodes are the answers of GET /status by pod, read once per pass
	// before raft; a pod that did not answer is absent.
	nodes map[string]*adminapi.Status
	// claims are the members' volume claims (data-<pod>) by pod name.
	claims map[string]claimView
	// haltRecorded holds the members the status before this pass recorded
	// as halted, with the incarnation recorded for them: a halt seen by
	// two passes, not a blip of one answer.
	haltRecorded map[string]string
	// replaceHalted is spec.integrity.replaceHaltedMembers.
	replaceHalted bool
}

type podView struct {
	running, ready, terminating bool
	// pending: the pod waits to be scheduled or for its volume.
	pending  bool
	revision string
	// uid lets a deletion name the very pod that was observed.
	uid types.UID
}

type claimView struct {
	name        string
	terminating bool
	uid         types.UID
}

// action is the one mutating thing a step does.
type action int

const (
	actionWait action = iota
	actionScale
	actionAddMember
	actionRemoveMember
	actionTransferLeadership
	actionDeletePod
	// actionReplaceMember deletes a member's volume claim, then its pod:
	// the StatefulSet makes both again and the node rejoins empty.
	actionReplaceMember
)

// step is the planner's answer: at most one change, and why.
type step struct {
	action action
	// phase is the reason of the Progressing condition.
	phase string
	// member is the member or pod the step changes; target the member
	// leadership goes to; address the Raft address of a new member;
	// replicas the StatefulSet's new size.
	member, target, address string
	replicas                int32
	// note says what the step does or what it waits for.
	note string
}

func wait(phase, format string, args ...any) step {
	return step{action: actionWait, phase: phase, note: fmt.Sprintf(format, args...)}
}

func quorum(voters int) int { return voters/2 + 1 }

// planNext returns the next single step towards the desired cluster. The
// order matters: shrink the Raft configuration before the StatefulSet (and
// before replacing a halted member, which a leaving one need not be), grow
// the StatefulSet before the configuration, and roll a change only through
// a cluster that is whole. No step leaves fewer healthy voters than a
// quorum, except restarting the only member of a one-member cluster.
func planNext(v clusterView) step {
	if s, ok := v.planPendingOnDeletedClaim(); ok {
		return s
	}
	if v.raft == nil {
		return wait(buytrackerv1alpha1.ReasonWaitingForLeader, "no node answered the admin API")
	}
	if v.raft.Leader == "" {
		return wait(buytrackerv1alpha1.ReasonWaitingForLeader, "the nodes know no leader")
	}
	if s, ok := v.planMembershipShrink(); ok {
		return s
	}
	if s, ok := v.planReplacement(); ok {
		return s
	}
	if v.stsReplicas > v.desired {
		if v.leaderLastIndex == 0 || v.raft.CommitIndex < v.leaderLastIndex {
			return wait(buytrackerv1alpha1.ReasonScalingDown, "waiting for the configuration change to commit")
		}
		return step{action: actionScale, phase: buytrackerv1alpha1.ReasonScalingDown, replicas: v.desired,
			note: fmt.Sprintf("Scaling StatefulSet from %d to %d pods", v.stsReplicas, v.desired)}
	}
	if v.stsReplicas < v.desired {
		return step{action: actionScale, phase: buytrackerv1alpha1.ReasonScalingUp, replicas: v.desired,
			note: fmt.Sprintf("Scaling StatefulSet from %d to %d pods", v.stsReplicas, v.desired)}
	}
	if s, ok := v.planMembershipGrowth(); ok {
		return s
	}
	if s, ok := v.planRollout(); ok {
		return s
	}
	return step{action: actionWait, phase: buytrackerv1alpha1.ReasonReconciled, note: "the cluster matches its spec"}
}

// planMembershipShrink removes members the spec no longer wants, one at a
// time: leadership first moves to a member that stays, then non-voters and
// failed voters go before healthy ones, highest ordinal first.
func (v clusterView) planMembershipShrink() (step, bool) {
	var extras []adminapi.Member
	for _, m := range v.raft.Members {
		if i, ok := v.names.ordinal(m.ID); ok && i >= v.desired {
			extras = append(extras, m)
		}
	}
	if len(extras) == 0 {
		return step{}, false
	}
	leaving := func(id string) bool {
		return slices.ContainsFunc(extras, func(m adminapi.Member) bool { return m.ID == id })
	}
	if leaving(v.raft.Leader) {
		target := v.successor(leaving)
		if target == "" {
			return wait(buytrackerv1alpha1.ReasonScalingDown,
				"no healthy voter that stays can take over leadership from %s", v.raft.Leader), true
		}
		return step{action: actionTransferLeadership, phase: buytrackerv1alpha1.ReasonScalingDown,
			member: v.raft.Leader, target: target,
			note: fmt.Sprintf("Moving leadership from %s to %s before removing it", v.raft.Leader, target)}, true
	}
	slices.SortFunc(extras, func(a, b adminapi.Member) int {
		return cmp.Or(
			cmp.Compare(removalRank(v, a), removalRank(v, b)),
			-cmp.Compare(v.ordinalOf(a.ID), v.ordinalOf(b.ID)),
		)
	})
	m := extras[0]
	if m.Suffrage == adminapi.Voter {
		voters, healthy := v.voterCounts()
		after, healthyAfter := voters-1, healthy
		if v.healthy(m) {
			healthyAfter--
		}
		if healthyAfter < quorum(after) {
			return wait(buytrackerv1alpha1.ReasonScalingDown,
				"removing %s would leave %d healthy of %d voters, no quorum", m.ID, healthyAfter, after), true
		}
	}
	return step{action: actionRemoveMember, phase: buytrackerv1alpha1.ReasonScalingDown, member: m.ID,
		note: fmt.Sprintf("Removing member %s from the Raft configuration", m.ID)}, true
}

// removalRank orders members to remove: non-voters, failed voters, voters.
func removalRank(v clusterView, m adminapi.Member) int {
	switch {
	case m.Suffrage != adminapi.Voter:
		return 0
	case !v.healthy(m):
		return 1
	}
	return 2
}

// planMembershipGrowth adds each wanted pod that is not a member, lowest
// ordinal first, then waits for the leader to promote the new non-voters.
func (v clusterView) planMembershipGrowth() (step, bool) {
	for i := range v.desired {
		id := v.names.pod(i)
		if _, ok := v.member(id); ok {
			continue
		}
		if p, ok := v.pods[id]; !ok || !p.running || p.terminating {
			return wait(buytrackerv1alpha1.ReasonScalingUp, "waiting for pod %s to run before adding it", id), true
		}
		return step{action: actionAddMember, phase: buytrackerv1alpha1.ReasonScalingUp, member: id,
			address: v.names.raftAddress(id),
			note:    fmt.Sprintf("Adding member %s as a non-voter", id)}, true
	}
	for i := range v.desired {
		if m, _ := v.member(v.names.pod(i)); m.Suffrage != adminapi.Voter {
			return wait(buytrackerv1alpha1.ReasonScalingUp, "waiting for %s to catch up and become a voter", m.ID), true
		}
	}
	return step{}, false
}

// planRollout restarts pods whose template is outdated, one at a time and
// only while every member is healthy: followers first, highest ordinal
// first; the leader's pod last, after leadership has moved off it.
func (v clusterView) planRollout() (step, bool) {
	if v.updateRevision == "" {
		return step{}, false
	}
	var outdated []string
	for i := range v.desired {
		id := v.names.pod(i)
		if p, ok := v.pods[id]; ok && p.revision != v.updateRevision {
			outdated = append(outdated, id)
		}
	}
	if len(outdated) == 0 {
		return step{}, false
	}
	for i := range v.desired {
		id := v.names.pod(i)
		if m, ok := v.member(id); !ok || !v.healthy(m) {
			return wait(buytrackerv1alpha1.ReasonRollingUpdate,
				"waiting for %s to be ready and caught up before restarting another pod", id), true
		}
	}
	voters, healthy := v.voterCounts()
	for _, id := range slices.Backward(outdated) {
		if id == v.raft.Leader {
			continue
		}
		if healthy-1 < quorum(voters) {
			return wait(buytrackerv1alpha1.ReasonRollingUpdate, "restarting %s would lose quorum", id), true
		}
		return step{action: actionDeletePod, phase: buytrackerv1alpha1.ReasonRollingUpdate, member: id,
			note: fmt.Sprintf("Restarting follower %s with the new template", id)}, true
	}
	leader := v.raft.Leader
	if voters == 1 {
		return step{action: actionDeletePod, phase: buytrackerv1alpha1.ReasonRollingUpdate, member: leader,
			note: fmt.Sprintf("Restarting %s, the only member: the cluster is unavailable until it is back", leader)}, true
	}
	target := v.successor(func(id string) bool { return id == leader })
	if target == "" {
		return wait(buytrackerv1alpha1.ReasonRollingUpdate, "no healthy voter can take over leadership from %s", leader), true
	}
	return step{action: actionTransferLeadership, phase: buytrackerv1alpha1.ReasonRollingUpdate,
		member: leader, target: target,
		note: fmt.Sprintf("Moving leadership from %s to %s before restarting it", leader, target)}, true
}

// successor is the healthy voter, not excluded, with the most of the log
// (lowest ordinal on a tie); empty when there is none.
func (v clusterView) successor(excluded func(id string) bool) string {
	best, bestIndex := "", uint64(0)
	for _, m := range v.raft.Members {
		if m.Suffrage != adminapi.Voter || excluded(m.ID) || !v.healthy(m) {
			continue
		}
		idx := *m.LastIndex // healthy members reported it
		if best == "" || idx > bestIndex || (idx == bestIndex && v.ordinalOf(m.ID) < v.ordinalOf(best)) {
			best, bestIndex = m.ID, idx
		}
	}
	return best
}

// healthy: the member's pod is ready, the member is not out of service and
// has applied the log to within caughtUpLag of the leader's commit index.
// (A node that halts or diverges is not ready, but its pod's readiness
// lags behind by a probe period.)
func (v clusterView) healthy(m adminapi.Member) bool {
	p, ok := v.pods[m.ID]
	if !ok || !p.ready || p.terminating || m.LastIndex == nil || v.isOutOfService(m.ID) {
		return false
	}
	return *m.LastIndex+caughtUpLag >= v.raft.CommitIndex
}

func (v clusterView) voterCounts() (voters, healthy int) {
	for _, m := range v.raft.Members {
		if m.Suffrage != adminapi.Voter {
			continue
		}
		voters++
		if v.healthy(m) {
			healthy++
		}
	}
	return voters, healthy
}

func (v clusterView) member(id string) (adminapi.Member, bool) {
	for _, m := range v.raft.Members {
		if m.ID == id {
			return m, true
		}
	}
	return adminapi.Member{ID: id}, false
}

func (v clusterView) ordinalOf(id string) int32 {
	i, ok := v.names.ordinal(id)
	if !ok {
		return -1
	}
	return i
}

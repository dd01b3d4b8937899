package controllers

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// nextStatus is the status one pass reports: what it observed (v, nil when
// the pass did not get that far), the step it planned and its error.
// observedGeneration only advances when the pass observed the cluster and
// succeeded.
func nextStatus(bt *buytrackerv1alpha1.BuyTracker, v *clusterView, s step, loopErr error) buytrackerv1alpha1.BuyTrackerStatus {
	st := *bt.Status.DeepCopy()
	gen := bt.Generation
	if v != nil {
		st.Replicas, st.ReadyReplicas = 0, 0
		for _, p := range v.pods {
			if p.terminating {
				continue
			}
			st.Replicas++
			if p.ready {
				st.ReadyReplicas++
			}
		}
		st.Selector = v.names.selector().String()
		st.Leader, st.Members = "", memberStatuses(v, st.Members)
		if v.raft != nil {
			st.Leader = v.raft.Leader
		}
		meta.SetStatusCondition(&st.Conditions, availableCondition(v, gen))
		meta.SetStatusCondition(&st.Conditions, degradedCondition(v, gen))
		if loopErr == nil {
			st.ObservedGeneration = gen
		}
	}
	meta.SetStatusCondition(&st.Conditions, progressingCondition(s, loopErr, gen))
	return st
}

// memberStatuses lists the configuration; when no node answered, the last
// known members are kept and shown as not ready.
func memberStatuses(v *clusterView, previous []buytrackerv1alpha1.MemberStatus) []buytrackerv1alpha1.MemberStatus {
	if v.raft == nil {
		out := make([]buytrackerv1alpha1.MemberStatus, len(previous))
		for i, m := range previous {
			m.Ready = false
			out[i] = m
		}
		return out
	}
	var out []buytrackerv1alpha1.MemberStatus
	for _, m := range v.raft.Members {
		suffrage := buytrackerv1alpha1.SuffrageNonvoter
		if m.Suffrage == adminapi.Voter {
			suffrage = buytrackerv1alpha1.SuffrageVoter
		}
		out = append(out, buytrackerv1alpha1.MemberStatus{Name: m.ID, Address: m.Address, Suffrage: suffrage, Ready: v.healthy(m)})
	}
	return out
}

func availableCondition(v *clusterView, gen int64) metav1.Condition {
	c := metav1.Condition{Type: buytrackerv1alpha1.ConditionAvailable, Status: metav1.ConditionFalse, ObservedGeneration: gen}
	switch {
	case v.raft == nil:
		c.Reason, c.Message = buytrackerv1alpha1.ReasonUnreachable, "no node answered the admin API"
	case v.raft.Leader == "":
		c.Reason, c.Message = buytrackerv1alpha1.ReasonNoLeader, "the nodes know no leader"
	default:
		voters, healthy := v.voterCounts()
		if healthy < quorum(voters) {
			c.Reason = buytrackerv1alpha1.ReasonNoQuorum
			c.Message = fmt.Sprintf("%d of %d voters are healthy, %d needed", healthy, voters, quorum(voters))
			break
		}
		c.Status, c.Reason = metav1.ConditionTrue, buytrackerv1alpha1.ReasonQuorum
		c.Message = fmt.Sprintf("leader %s, %d of %d voters healthy", v.raft.Leader, healthy, voters)
	}
	return c
}

// degradedCondition: a member is down when its pod is gone or not ready
// (for a non-voter still catching up: not running) or it did not report its
// index; a voter lags when it is more than caughtUpLag entries behind.
func degradedCondition(v *clusterView, gen int64) metav1.Condition {
	c := metav1.Condition{Type: buytrackerv1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, ObservedGeneration: gen}
	if v.raft == nil {
		c.Reason, c.Message = buytrackerv1alpha1.ReasonMemberUnavailable, "no node answered the admin API"
		return c
	}
	var down, lagging []string
	for _, m := range v.raft.Members {
		p, ok := v.pods[m.ID]
		up := ok && !p.terminating && (p.ready || (m.Suffrage != adminapi.Voter && p.running))
		switch {
		case !up || m.LastIndex == nil:
			down = append(down, m.ID)
		case m.Suffrage == adminapi.Voter && *m.LastIndex+caughtUpLag < v.raft.CommitIndex:
			lagging = append(lagging, m.ID)
		}
	}
	switch {
	case len(down) > 0:
		c.Reason, c.Message = buytrackerv1alpha1.ReasonMemberUnavailable, "members down: "+strings.Join(down, ", ")
	case len(lagging) > 0:
		c.Reason, c.Message = buytrackerv1alpha1.ReasonMemberLagging, "members lagging behind the leader: "+strings.Join(lagging, ", ")
	default:
		c.Status, c.Reason = metav1.ConditionFalse, buytrackerv1alpha1.ReasonMembersHealthy
		c.Message = fmt.Sprintf("all %d members are healthy", len(v.raft.Members))
	}
	return c
}

func progressingCondition(s step, loopErr error, gen int64) metav1.Condition {
	c := metav1.Condition{Type: buytrackerv1alpha1.ConditionProgressing, Status: metav1.ConditionTrue,
		ObservedGeneration: gen, Reason: s.phase, Message: s.note}
	switch {
	case loopErr != nil:
		c.Reason, c.Message = buytrackerv1alpha1.ReasonReconcileError, loopErr.Error()
	case s.phase == buytrackerv1alpha1.ReasonReconciled:
		c.Status = metav1.ConditionFalse
	}
	return c
}

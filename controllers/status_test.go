package controllers

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

func TestNextStatusConditions(t *testing.T) {
	type cond struct {
		status metav1.ConditionStatus
		reason string
	}
	unreachable := viewOf(3, 3, "0 1 2")
	unreachable.raft = nil
	tests := []struct {
		name                             string
		view                             clusterView
		available, progressing, degraded cond
	}{
		{"healthy and reconciled", viewOf(3, 3, "0L 1 2"),
			cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonQuorum},
			cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonReconciled},
			cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonMembersHealthy}},
		{"one member down keeps quorum", viewOf(3, 3, "0L 1x 2"),
			cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonQuorum},
			cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonReconciled},
			cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonMemberUnavailable}},
		{"a lagging voter", viewOf(3, 3, "0L 1g 2"),
			cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonQuorum},
			cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonReconciled},
			cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonMemberLagging}},
		{"two of three down lose quorum", viewOf(3, 3, "0L 1x 2x"),
			cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonNoQuorum},
			cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonReconciled},
			cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonMemberUnavailable}},
		{"no leader", viewOf(3, 3, "0 1 2"),
			cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonNoLeader},
			cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonWaitingForLeader},
			cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonMembersHealthy}},
		{"unreachable", unreachable,
			cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonUnreachable},
			cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonWaitingForLeader},
			cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonMemberUnavailable}},
		{"a new non-voter catching up is not degraded", viewOf(5, 5, "0L 1 2 3 4n"),
			cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonQuorum},
			cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonScalingUp},
			cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonMembersHealthy}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bt := testBuyTracker()
			bt.Generation = 4
			st := nextStatus(bt, &tt.view, planNext(tt.view), nil)
			for typ, want := range map[string]cond{
				buytrackerv1alpha1.ConditionAvailable:   tt.available,
				buytrackerv1alpha1.ConditionProgressing: tt.progressing,
				buytrackerv1alpha1.ConditionDegraded:    tt.degraded,
			} {
				c := meta.FindStatusCondition(st.Conditions, typ)
				if c == nil {
					t.Fatalf("no %s condition", typ)
				}
				expect(t, typ, cond{c.Status, c.Reason}, want)
				expect(t, typ+" observedGeneration", c.ObservedGeneration, int64(4))
			}
			expect(t, "observedGeneration", st.ObservedGeneration, int64(4))
		})
	}
}

func TestNextStatusFields(t *testing.T) {
	v := viewOf(5, 5, "0L 1 2x 3n 4s")
	bt := testBuyTracker()
	st := nextStatus(bt, &v, planNext(v), nil)
	expect(t, "replicas", st.Replicas, int32(5))
	expect(t, "readyReplicas", st.ReadyReplicas, int32(3))
	expect(t, "leader", st.Leader, "promo-0")
	expect(t, "selector", st.Selector, "app.kubernetes.io/instance=promo,app.kubernetes.io/name=buytracker")
	want := []buytrackerv1alpha1.MemberStatus{
		{Name: "promo-0", Address: testNames.raftAddress("promo-0"), Suffrage: buytrackerv1alpha1.SuffrageVoter, Ready: true},
		{Name: "promo-1", Address: testNames.raftAddress("promo-1"), Suffrage: buytrackerv1alpha1.SuffrageVoter, Ready: true},
		{Name: "promo-2", Address: testNames.raftAddress("promo-2"), Suffrage: buytrackerv1alpha1.SuffrageVoter, Ready: false},
		{Name: "promo-3", Address: testNames.raftAddress("promo-3"), Suffrage: buytrackerv1alpha1.SuffrageNonvoter, Ready: true},
	}
	expect(t, "members", st.Members, want)

	// Nothing changed: the same status, transition times included, so no write.
	bt.Status = st
	again := nextStatus(bt, &v, planNext(v), nil)
	expect(t, "unchanged status", again, st)

	// Unreachable: the last known members stay, shown not ready.
	v.raft = nil
	bt.Status = st
	st = nextStatus(bt, &v, planNext(v), nil)
	expect(t, "members kept", len(st.Members), 4)
	expect(t, "member not ready", st.Members[0].Ready, false)
}

func TestNextStatusAfterAFailedPass(t *testing.T) {
	v := viewOf(3, 3, "0L 1 2")
	bt := testBuyTracker()
	bt.Generation = 2
	bt.Status.ObservedGeneration = 1
	st := nextStatus(bt, &v, planNext(v), errors.New("patch statefulset: conflict"))
	expect(t, "observedGeneration", st.ObservedGeneration, int64(1))
	c := meta.FindStatusCondition(st.Conditions, buytrackerv1alpha1.ConditionProgressing)
	expect(t, "reason", c.Reason, buytrackerv1alpha1.ReasonReconcileError)
	expect(t, "message", c.Message, "patch statefulset: conflict")

	st = nextStatus(bt, nil, step{}, errors.New("get secret: forbidden"))
	expect(t, "observedGeneration without a view", st.ObservedGeneration, int64(1))
}

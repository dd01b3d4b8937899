package controllers

import (
	"testing"

	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/utils/ptr"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// A one-member BuyTracker survives no disruption whatever its budget says;
// a budget that allows none only makes every node drain hang (issue 14).
// It gets no budget, one appears once it grows, and it goes when it
// shrinks to one member again.
func TestAOneMemberBuyTrackerHasNoBlockingDisruptionBudget(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{Replicas: ptr.To[int32](1)})
	f.pass(t)
	f.pass(t)
	if f.exists(t, "promo", &policyv1.PodDisruptionBudget{}) {
		t.Fatal("a one-member BuyTracker got a PodDisruptionBudget: it allows no disruption, so every drain of its node hangs")
	}

	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Replicas = ptr.To[int32](3) })
	f.settle(t)
	pdb := &policyv1.PodDisruptionBudget{}
	f.get(t, "promo", pdb)
	expect(t, "maxUnavailable of three members", pdb.Spec.MaxUnavailable.IntVal, int32(1))

	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Replicas = ptr.To[int32](1) })
	f.settle(t)
	if f.exists(t, "promo", &policyv1.PodDisruptionBudget{}) {
		t.Fatal("the budget stayed after the BuyTracker shrank to one member")
	}
}

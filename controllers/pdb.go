package controllers

import (
	"context"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// desiredDisruptionBudget lets voluntary disruptions (drains, evictions)
// take down at most the failures a cluster of voters members survives:
// (voters-1)/2, so a majority always stays. A one-member cluster allows
// none. voters is the smaller of the desired and the current size, the
// safe bound while a scale is under way.
func desiredDisruptionBudget(bt *buytrackerv1alpha1.BuyTracker, n clusterNames, voters int32) *policyv1.PodDisruptionBudget {
	maxUnavailable := intstr.FromInt32(max(voters-1, 0) / 2)
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: childMeta(bt, n, n.disruptionBudget()),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &maxUnavailable,
			Selector:       &metav1.LabelSelector{MatchLabels: n.selectorLabels()},
		},
	}
}

var disruptionBudgetKind = childKind[*policyv1.PodDisruptionBudget]{
	owned: func(p *policyv1.PodDisruptionBudget) any { return p.Spec },
	merge: func(existing, desired *policyv1.PodDisruptionBudget) {
		existing.Spec.MaxUnavailable = desired.Spec.MaxUnavailable
		existing.Spec.MinAvailable = nil
		existing.Spec.Selector = desired.Spec.Selector
	},
}

func (r *BuyTrackerReconciler) reconcileDisruptionBudget(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, voters int32) error {
	_, err := applyChild(ctx, r.Client, &policyv1.PodDisruptionBudget{}, desiredDisruptionBudget(bt, n, voters), disruptionBudgetKind)
	return err
}

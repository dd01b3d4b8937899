package controllers

import (
	"context"
	"fmt"

	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// desiredDisruptionBudget lets voluntary disruptions (drains, evictions)
// take down at most the failures a cluster of voters members survives:
// (voters-1)/2, so a majority always stays. A one-member cluster allows
// none.
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

func appliedDisruptionBudget(p *policyv1.PodDisruptionBudget, manager string) (any, error) {
	return policyv1ac.ExtractPodDisruptionBudget(p, manager)
}

// reconcileDisruptionBudget keeps the budget, except for a BuyTracker of one
// member: it survives no disruption whatever its budget says, and a budget
// that allows none would make every drain of its node hang (CloudNativePG's
// users met the same trap). It gets none, and a drain takes it down as a
// node failure would; one appears as soon as it grows.
func (r *BuyTrackerReconciler) reconcileDisruptionBudget(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, voters int32) error {
	if bt.DesiredReplicas() == 1 {
		var existing policyv1.PodDisruptionBudget
		err := r.Get(ctx, client.ObjectKey{Namespace: bt.Namespace, Name: n.disruptionBudget()}, &existing)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get disruption budget: %w", err)
		}
		if !metav1.IsControlledBy(&existing, bt) {
			return nil
		}
		if err := r.Delete(ctx, &existing, client.Preconditions{UID: &existing.UID}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete the disruption budget of a one-member cluster: %w", err)
		}
		return nil
	}
	return applyChild(ctx, r.Client, &policyv1.PodDisruptionBudget{}, desiredDisruptionBudget(bt, n, voters), appliedDisruptionBudget)
}

// budgetVoters is the voter count the budget protects: the smallest of the
// desired size, the StatefulSet's size and the voters of the configuration
// (the last known one when no node answers), which is the safe bound while
// a scale is under way.
func budgetVoters(bt *buytrackerv1alpha1.BuyTracker, v clusterView) int32 {
	voters := min(v.desired, v.stsReplicas)
	known := int32(0)
	if v.raft != nil {
		for _, m := range v.raft.Members {
			if m.Suffrage == adminapi.Voter {
				known++
			}
		}
	} else {
		for _, m := range bt.Status.Members {
			if m.Suffrage == buytrackerv1alpha1.SuffrageVoter {
				known++
			}
		}
	}
	if known > 0 {
		voters = min(voters, known)
	}
	return voters
}

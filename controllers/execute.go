package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// execute carries out one planned step and records an Event for it.
func (r *BuyTrackerReconciler) execute(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, sts *appsv1.StatefulSet, v clusterView, s step, creds adminCredentials) error {
	var (
		reason, verb string
		eventType    = corev1.EventTypeNormal
		err          error
	)
	switch s.action {
	case actionWait:
		return nil
	case actionScale:
		reason, verb = "Scaled", "Scale"
		err = r.scaleStatefulSet(ctx, sts, s.replicas)
	case actionAddMember:
		reason, verb = "MemberAdded", "AddMember"
		err = r.callLeader(ctx, n, v, creds, func(ctx context.Context, a AdminClient) error {
			_, err := a.AddMember(ctx, s.member, s.address)
			return err
		})
	case actionRemoveMember:
		reason, verb = "MemberRemoved", "RemoveMember"
		err = r.callLeader(ctx, n, v, creds, func(ctx context.Context, a AdminClient) error {
			_, err := a.RemoveMember(ctx, s.member)
			return err
		})
	case actionTransferLeadership:
		reason, verb = "LeadershipTransferred", "TransferLeadership"
		err = r.callLeader(ctx, n, v, creds, func(ctx context.Context, a AdminClient) error {
			_, err := a.TransferLeadership(ctx, s.target)
			return err
		})
	case actionDeletePod:
		reason, verb = "PodRestarted", "DeletePod"
		err = r.deletePod(ctx, bt.Namespace, s.member, v.pods[s.member].uid)
	case actionReplaceMember:
		// A Warning: a volume is deleted, which whoever watches Warnings
		// should know of.
		reason, verb, eventType = "MemberReplacementStarted", "ReplaceMember", corev1.EventTypeWarning
		err = r.replaceMember(ctx, bt.Namespace, s.member, v)
	default:
		return fmt.Errorf("unknown step %d", s.action)
	}
	if err != nil {
		r.event(bt, corev1.EventTypeWarning, verb+"Failed", verb, "%s: %v", s.note, err)
		return fmt.Errorf("%s: %w", s.note, err)
	}
	r.event(bt, eventType, reason, verb, "%s", s.note)
	return nil
}

// callLeader sends a membership call to the leader's pod (any node would
// forward it there, the leader saves a hop).
func (r *BuyTrackerReconciler) callLeader(ctx context.Context, n clusterNames, v clusterView, creds adminCredentials, call func(context.Context, AdminClient) error) error {
	admin, err := r.adminClient(n, v.raft.Leader, creds)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.adminBudget().Change)
	defer cancel()
	return call(ctx, admin)
}

// deletePod deletes the observed pod, not a successor of the same name.
func (r *BuyTrackerReconciler) deletePod(ctx context.Context, namespace, name string, uid types.UID) error {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := r.Delete(ctx, pod, &client.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod %s: %w", name, err)
	}
	return nil
}

// replaceMember deletes the member's volume claim, then its pod, as a user
// would for a lost volume: the claim stays (protected) until the pod is
// gone, then the StatefulSet makes the pod again with a new, empty claim.
// Each part is idempotent, so a pass after an operator restart that finds
// the claim already being deleted only deletes the pod; a pod made again
// before the old claim was gone is deleted again by a later step
// (planPendingOnDeletedClaim).
func (r *BuyTrackerReconciler) replaceMember(ctx context.Context, namespace, pod string, v clusterView) error {
	if c, ok := v.claims[pod]; ok && !c.terminating {
		claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: c.name}}
		err := r.Delete(ctx, claim, &client.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &c.uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete volume claim %s: %w", c.name, err)
		}
	}
	return r.deletePod(ctx, namespace, pod, v.pods[pod].uid)
}

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
	default:
		return fmt.Errorf("unknown step %d", s.action)
	}
	if err != nil {
		r.event(bt, corev1.EventTypeWarning, verb+"Failed", verb, "%s: %v", s.note, err)
		return fmt.Errorf("%s: %w", s.note, err)
	}
	r.event(bt, corev1.EventTypeNormal, reason, verb, "%s", s.note)
	return nil
}

// callLeader sends a membership call to the leader's pod (any node would
// forward it there, the leader saves a hop).
func (r *BuyTrackerReconciler) callLeader(ctx context.Context, n clusterNames, v clusterView, creds adminCredentials, call func(context.Context, AdminClient) error) error {
	admin, err := r.adminClient(n, v.raft.Leader, creds)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, adminCallTimeout)
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

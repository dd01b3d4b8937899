package controllers

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// statefulSetKind owns the pod template, the update strategy and the volume
// retention policy; spec.replicas belongs to the planner and the immutable
// fields are handled by recreating the StatefulSet.
var statefulSetKind = childKind[*appsv1.StatefulSet]{
	owned: func(s *appsv1.StatefulSet) any {
		return appsv1.StatefulSetSpec{
			Template:                             s.Spec.Template,
			UpdateStrategy:                       s.Spec.UpdateStrategy,
			PersistentVolumeClaimRetentionPolicy: s.Spec.PersistentVolumeClaimRetentionPolicy,
		}
	},
	merge: func(existing, desired *appsv1.StatefulSet) {
		existing.Spec.Template = desired.Spec.Template
		existing.Spec.UpdateStrategy = desired.Spec.UpdateStrategy
		existing.Spec.PersistentVolumeClaimRetentionPolicy = desired.Spec.PersistentVolumeClaimRetentionPolicy
	},
}

// reconcileInitialReplicas returns the size the cluster was created with,
// recording it on the BuyTracker the first time. A BuyTracker that lost the
// annotation gets it back from its StatefulSet.
func (r *BuyTrackerReconciler) reconcileInitialReplicas(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames) (int32, error) {
	if v, ok := bt.Annotations[annotationInitialReplicas]; ok {
		i, err := strconv.ParseInt(v, 10, 32)
		if err != nil || i < 1 {
			return 0, fmt.Errorf("annotation %s=%q is not a size: %w", annotationInitialReplicas, v, errBrokenChild)
		}
		return int32(i), nil
	}
	initial := bt.DesiredReplicas()
	var sts appsv1.StatefulSet
	err := r.Get(ctx, client.ObjectKey{Namespace: bt.Namespace, Name: n.statefulSet()}, &sts)
	switch {
	case err == nil:
		if i, perr := strconv.ParseInt(sts.Annotations[annotationInitialReplicas], 10, 32); perr == nil && i > 0 {
			initial = int32(i)
		}
	case !apierrors.IsNotFound(err):
		return 0, fmt.Errorf("get statefulset %s: %w", n.statefulSet(), err)
	}
	patch := client.MergeFrom(bt.DeepCopy())
	if bt.Annotations == nil {
		bt.Annotations = map[string]string{}
	}
	bt.Annotations[annotationInitialReplicas] = strconv.Itoa(int(initial))
	if err := r.Patch(ctx, bt, patch); err != nil {
		return 0, fmt.Errorf("record initial size on buytracker %s: %w", bt.Name, err)
	}
	return initial, nil
}

// reconcileStatefulSet creates or updates the StatefulSet and returns it; it
// returns nil while the StatefulSet is being replaced.
func (r *BuyTrackerReconciler) reconcileStatefulSet(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, initial int32) (*appsv1.StatefulSet, error) {
	in := statefulSetInputs{nodeImage: r.NodeImage, initialReplicas: initial}
	var existing appsv1.StatefulSet
	err := r.Get(ctx, client.ObjectKey{Namespace: bt.Namespace, Name: n.statefulSet()}, &existing)
	switch {
	case apierrors.IsNotFound(err):
		// A StatefulSet replaced for a storage change comes back at the
		// size it had; a new cluster starts at its initial size.
		in.replicas = initial
		if bt.Status.Replicas > 0 {
			in.replicas = bt.Status.Replicas
		}
		desired := desiredStatefulSet(bt, n, in)
		if _, err := createOrPatchChild(ctx, r.Client, &appsv1.StatefulSet{}, desired, statefulSetKind); err != nil {
			return nil, err
		}
		r.event(bt, corev1.EventTypeNormal, "StatefulSetCreated", "Create", "Created StatefulSet %s with %d pods", desired.Name, in.replicas)
		return desired, nil
	case err != nil:
		return nil, fmt.Errorf("get statefulset %s: %w", n.statefulSet(), err)
	case existing.DeletionTimestamp != nil:
		return nil, nil
	}
	in.replicas = ptr.Deref(existing.Spec.Replicas, initial)
	desired := desiredStatefulSet(bt, n, in)
	if immutableFieldsDiffer(&existing, desired) {
		// Volume claim templates cannot change in place: delete the
		// StatefulSet but not its pods, which the new one adopts.
		orphan := metav1.DeletePropagationOrphan
		if err := r.Delete(ctx, &existing, &client.DeleteOptions{
			PropagationPolicy: &orphan,
			Preconditions:     &metav1.Preconditions{UID: &existing.UID, ResourceVersion: &existing.ResourceVersion},
		}); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("delete statefulset %s to change its volume claim template: %w", existing.Name, err)
		}
		r.event(bt, corev1.EventTypeNormal, "StatefulSetReplaced", "Delete",
			"Replacing StatefulSet %s (pods kept) to apply the new storage settings to new volumes", existing.Name)
		return nil, nil
	}
	wrote, err := createOrPatchChild(ctx, r.Client, &existing, desired, statefulSetKind)
	if err != nil {
		return nil, err
	}
	if wrote {
		r.event(bt, corev1.EventTypeNormal, "StatefulSetUpdated", "Update",
			"Updated StatefulSet %s to the spec; pods whose template changed restart one at a time, followers first", existing.Name)
	}
	return &existing, nil
}

// immutableFieldsDiffer reports a change the API server refuses to make in
// place. Existing volumes keep their class and size; volumes created later
// get the new ones.
func immutableFieldsDiffer(existing, desired *appsv1.StatefulSet) bool {
	if existing.Spec.ServiceName != desired.Spec.ServiceName ||
		existing.Spec.PodManagementPolicy != desired.Spec.PodManagementPolicy ||
		!equality.Semantic.DeepEqual(existing.Spec.Selector, desired.Spec.Selector) ||
		len(existing.Spec.VolumeClaimTemplates) != len(desired.Spec.VolumeClaimTemplates) {
		return true
	}
	for i, want := range desired.Spec.VolumeClaimTemplates {
		have := existing.Spec.VolumeClaimTemplates[i]
		if have.Name != want.Name ||
			ptr.Deref(have.Spec.StorageClassName, "") != ptr.Deref(want.Spec.StorageClassName, "") ||
			!equality.Semantic.DeepEqual(have.Spec.Resources.Requests, want.Spec.Resources.Requests) ||
			!equality.Semantic.DeepEqual(have.Spec.AccessModes, want.Spec.AccessModes) {
			return true
		}
	}
	return false
}

// scaleStatefulSet sets spec.replicas and nothing else.
func (r *BuyTrackerReconciler) scaleStatefulSet(ctx context.Context, sts *appsv1.StatefulSet, replicas int32) error {
	patch := client.MergeFrom(sts.DeepCopy())
	sts.Spec.Replicas = ptr.To(replicas)
	if err := r.Patch(ctx, sts, patch); err != nil {
		return fmt.Errorf("scale statefulset %s to %d: %w", sts.Name, replicas, err)
	}
	return nil
}

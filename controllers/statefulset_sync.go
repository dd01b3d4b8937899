package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// scaleFieldManager owns the StatefulSet's spec.replicas and nothing else:
// the planner changes it one step at a time from what it observed, by an
// apply of that one field. The operator's own apply (fieldManager) never
// sets it after creation, so it can neither undo a step with an older
// value nor, by leaving the field out, reset it to 1 while the scale
// step's manager still owns it.
const scaleFieldManager = "buytracker-operator-scale"

func appliedStatefulSet(s *appsv1.StatefulSet, manager string) (any, error) {
	return appsv1ac.ExtractStatefulSet(s, manager)
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

// reconcileStatefulSet creates or applies the StatefulSet and returns it
// as the API server has it; it returns nil while the StatefulSet is being
// replaced. Everything but spec.replicas is applied by fieldManager;
// spec.replicas is set once, on creation, and handed at once to
// scaleFieldManager (see applyReplicas).
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
		created, err := r.createStatefulSet(ctx, desiredStatefulSet(bt, n, in))
		if err != nil {
			return nil, err
		}
		r.event(bt, corev1.EventTypeNormal, "StatefulSetCreated", "Create", "Created StatefulSet %s with %d pods", created.Name, in.replicas)
		return created, nil
	case err != nil:
		return nil, fmt.Errorf("get statefulset %s: %w", n.statefulSet(), err)
	case existing.DeletionTimestamp != nil:
		return nil, nil
	}
	desired := desiredStatefulSet(bt, n, in)
	desired.Spec.Replicas = nil // the scale step's
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
	wrote, err := applyChildAndRead(ctx, r.Client, &existing, desired, appliedStatefulSet, r.keepReplicasWithTheScaleStep)
	if err != nil {
		return nil, err
	}
	if wrote {
		r.event(bt, corev1.EventTypeNormal, "StatefulSetUpdated", "Update",
			"Updated StatefulSet %s to the spec; pods whose template changed restart one at a time, followers first", existing.Name)
	}
	return &existing, nil
}

// createStatefulSet creates desired by an apply of fieldManager that sets
// spec.replicas too (a StatefulSet is not created without its size), then
// hands spec.replicas to scaleFieldManager; the next apply of fieldManager
// leaves it out and so gives it up. Should the second write not happen,
// the next pass makes it (keepReplicasWithTheScaleStep) before applying.
func (r *BuyTrackerReconciler) createStatefulSet(ctx context.Context, desired *appsv1.StatefulSet) (*appsv1.StatefulSet, error) {
	want, err := applyContent(r.Scheme(), desired)
	if err != nil {
		return nil, err
	}
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(want), client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
		return nil, fmt.Errorf("create statefulset %s: %w", desired.Name, err)
	}
	var created appsv1.StatefulSet
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(want.Object, &created); err != nil {
		return nil, fmt.Errorf("decode the created statefulset %s: %w", desired.Name, err)
	}
	if err := r.applyReplicas(ctx, &created, ptr.Deref(desired.Spec.Replicas, 1), true); err != nil {
		return nil, err
	}
	return &created, nil
}

// keepReplicasWithTheScaleStep makes scaleFieldManager an owner of
// spec.replicas before fieldManager applies without it: a StatefulSet just
// created, or one of an older operator (whose fields fieldManager just
// adopted, spec.replicas with them), would otherwise lose its size. The
// value is the one sts holds, written only if sts is still the latest
// version: an older copy from the cache is refused (and the next pass
// tries again), so it never undoes a scale step.
func (r *BuyTrackerReconciler) keepReplicasWithTheScaleStep(ctx context.Context, sts *appsv1.StatefulSet) error {
	if ownsReplicas(sts, scaleFieldManager) || sts.Spec.Replicas == nil {
		return nil
	}
	return r.applyReplicas(ctx, sts, *sts.Spec.Replicas, true)
}

// ownsReplicas reports whether manager applied spec.replicas of sts.
func ownsReplicas(sts *appsv1.StatefulSet, manager string) bool {
	for _, m := range sts.ManagedFields {
		if m.Manager != manager || m.Operation != metav1.ManagedFieldsOperationApply || m.Subresource != "" || m.FieldsV1 == nil {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal(m.FieldsV1.GetRawBytes(), &fields); err != nil {
			return false
		}
		spec, _ := fields["f:spec"].(map[string]any)
		_, ok := spec["f:replicas"]
		return ok
	}
	return false
}

// applyReplicas sets spec.replicas, and only it, as scaleFieldManager;
// with onlyIfLatest the write is refused unless sts is the latest version
// (its resourceVersion is a precondition of the apply). sts takes the
// answer.
func (r *BuyTrackerReconciler) applyReplicas(ctx context.Context, sts *appsv1.StatefulSet, replicas int32, onlyIfLatest bool) error {
	ac := appsv1ac.StatefulSet(sts.Name, sts.Namespace).WithSpec(appsv1ac.StatefulSetSpec().WithReplicas(replicas))
	if onlyIfLatest {
		ac.WithResourceVersion(sts.ResourceVersion)
	}
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ac)
	if err != nil {
		return fmt.Errorf("scale statefulset %s to %d: %w", sts.Name, replicas, err)
	}
	u := &unstructured.Unstructured{Object: raw}
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(scaleFieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("scale statefulset %s to %d: %w", sts.Name, replicas, err)
	}
	var answer appsv1.StatefulSet
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &answer); err != nil {
		return fmt.Errorf("decode statefulset %s scaled to %d: %w", sts.Name, replicas, err)
	}
	*sts = answer
	return nil
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

// scaleStatefulSet is the planner's scale step: spec.replicas, and only
// it, applied by scaleFieldManager.
func (r *BuyTrackerReconciler) scaleStatefulSet(ctx context.Context, sts *appsv1.StatefulSet, replicas int32) error {
	return r.applyReplicas(ctx, sts, replicas, false)
}

package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// memberClaim is what the operator reads of one member's volume claim.
type memberClaim struct {
	name, pod, class  string
	request, capacity resource.Quantity
	terminating       bool
	uid               types.UID
}

// volumeOutcome is what the expansion step did and saw, per claim.
type volumeOutcome struct {
	want resource.Quantity
	// expanding: requested at the new size, not grown yet by the driver.
	expanding []string
	// notAllowed: too small, and their class does not allow expansion;
	// classes names those classes.
	notAllowed, classes []string
	// failed: the API server refused the patch; why says the first reason.
	failed []string
	why    string
}

// reconcileVolumes grows every member's claim to spec.storage.size when its
// StorageClass allows expansion: the StatefulSet's claim template only
// sizes claims made after it changed. Claims are never shrunk (the API
// refuses it). It returns the VolumeExpansion condition; an expansion that
// is not allowed or refused is reported there and in an Event, and does
// not stop the pass.
// Claims being deleted are left alone.
func (r *BuyTrackerReconciler) reconcileVolumes(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, claims []memberClaim) (metav1.Condition, error) {
	out := volumeOutcome{want: storageSize(bt)}
	allows := map[string]*bool{} // class -> allowVolumeExpansion; nil: could not read it
	for _, c := range claims {
		var err error
		switch {
		case c.terminating:
			continue
		case c.request.Cmp(out.want) >= 0:
			if c.capacity.Cmp(out.want) < 0 {
				out.expanding = append(out.expanding, c.name)
			}
			continue
		case c.class == "":
			out.notAllowed = append(out.notAllowed, c.name)
			continue
		}
		allowed, ok := allows[c.class]
		if !ok {
			allowed, err = r.classAllowsExpansion(ctx, c.class)
			if err != nil {
				return metav1.Condition{}, err
			}
			allows[c.class] = allowed
		}
		if allowed != nil && !*allowed {
			out.notAllowed = append(out.notAllowed, c.name)
			if !slices.Contains(out.classes, c.class) {
				out.classes = append(out.classes, c.class)
			}
			continue
		}
		// Allowed, or not known (a namespaced install may not read
		// StorageClasses): the API server's admission checks the class.
		if err := r.requestSize(ctx, bt.Namespace, c.name, out.want); err != nil {
			out.failed = append(out.failed, c.name)
			if out.why == "" {
				out.why = err.Error()
			}
			continue
		}
		r.event(bt, corev1.EventTypeNormal, "VolumeExpansionRequested", "ExpandVolume",
			"Requested %s for volume claim %s (was %s)", out.want.String(), c.name, c.request.String())
		out.expanding = append(out.expanding, c.name)
	}
	return volumeCondition(out, bt.Generation), nil
}

// memberClaims lists the claims the StatefulSet made for its pods
// (data-<pod>, labelled with the pods' selector), read from the API server
// once per pass: the operator does not cache claims.
func (r *BuyTrackerReconciler) memberClaims(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames) ([]memberClaim, error) {
	var list corev1.PersistentVolumeClaimList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(bt.Namespace), client.MatchingLabels(n.selectorLabels())); err != nil {
		return nil, fmt.Errorf("list volume claims of buytracker %s: %w", bt.Name, err)
	}
	var out []memberClaim
	for _, p := range list.Items {
		pod, ok := strings.CutPrefix(p.Name, dataVolume+"-")
		if _, member := n.ordinal(pod); !ok || !member {
			continue
		}
		out = append(out, memberClaim{
			name: p.Name, pod: pod, class: ptr.Deref(p.Spec.StorageClassName, ""),
			request: p.Spec.Resources.Requests[corev1.ResourceStorage], capacity: p.Status.Capacity[corev1.ResourceStorage],
			terminating: p.DeletionTimestamp != nil, uid: p.UID,
		})
	}
	slices.SortFunc(out, func(a, b memberClaim) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// classAllowsExpansion reads allowVolumeExpansion of a StorageClass; nil
// when the operator may not read StorageClasses (a namespaced install).
func (r *BuyTrackerReconciler) classAllowsExpansion(ctx context.Context, name string) (*bool, error) {
	var sc storagev1.StorageClass
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, &sc)
	switch {
	case apierrors.IsForbidden(err):
		return nil, nil
	case apierrors.IsNotFound(err):
		return ptr.To(false), nil
	case err != nil:
		return nil, fmt.Errorf("get storage class %s: %w", name, err)
	}
	return ptr.To(ptr.Deref(sc.AllowVolumeExpansion, false)), nil
}

// requestSize patches a claim's storage request and nothing else.
func (r *BuyTrackerReconciler) requestSize(ctx context.Context, namespace, name string, size resource.Quantity) error {
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	patch := client.RawPatch("application/merge-patch+json",
		fmt.Appendf(nil, `{"spec":{"resources":{"requests":{"storage":%q}}}}`, size.String()))
	if err := r.Patch(ctx, pvc, patch); err != nil {
		return fmt.Errorf("request %s for volume claim %s: %w", size.String(), name, err)
	}
	return nil
}

// volumeCondition says where the member volumes stand against the spec:
// a refusal first (something to act on), then volumes still growing.
func volumeCondition(o volumeOutcome, gen int64) metav1.Condition {
	c := metav1.Condition{Type: buytrackerv1alpha1.ConditionVolumeExpansion, Status: metav1.ConditionFalse, ObservedGeneration: gen}
	switch {
	case len(o.failed) > 0:
		c.Reason = buytrackerv1alpha1.ReasonExpansionFailed
		c.Message = fmt.Sprintf("the API server refused to grow %s to %s: %s", strings.Join(o.failed, ", "), o.want.String(), o.why)
	case len(o.notAllowed) > 0:
		c.Reason = buytrackerv1alpha1.ReasonExpansionNotAllowed
		c.Message = fmt.Sprintf("volume claims %s are smaller than %s and their storage class (%s) does not set allowVolumeExpansion: they keep their size, only new members get %s",
			strings.Join(o.notAllowed, ", "), o.want.String(), classList(o.classes), o.want.String())
	case len(o.expanding) > 0:
		c.Status, c.Reason = metav1.ConditionTrue, buytrackerv1alpha1.ReasonVolumesExpanding
		c.Message = fmt.Sprintf("waiting for the storage driver to grow %s to %s", strings.Join(o.expanding, ", "), o.want.String())
	default:
		c.Reason = buytrackerv1alpha1.ReasonVolumesAtSize
		c.Message = "every member volume holds at least " + o.want.String()
	}
	return c
}

func classList(classes []string) string {
	if len(classes) == 0 {
		return "none named"
	}
	return strings.Join(classes, ", ")
}

package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// errBrokenChild reports a child object the operator will not repair on
// its own (for example an admin-token Secret without its token).
var errBrokenChild = errors.New("child object is not usable")

// childKind describes how the operator owns part of one kind of child.
type childKind[T client.Object] struct {
	// owned returns the part of an object the operator sets.
	owned func(T) any
	// merge copies that part from desired into existing.
	merge func(existing, desired T)
}

// createOrPatchChild creates desired, or patches the existing object so
// that what the operator owns matches desired, recording a hash of it in
// annotationSpecHash; together with a semantic comparison (which catches
// edits made by others) the hash keeps an unchanged BuyTracker from causing
// any write. It reports whether it wrote. Only the StatefulSet is still
// written this way (see statefulset_sync.go); the other children are
// applied (applyChild).
func createOrPatchChild[T client.Object](ctx context.Context, c client.Client, existing, desired T, kind childKind[T]) (bool, error) {
	hash, err := hashOf(kind.owned(desired), desired.GetLabels(), desired.GetAnnotations())
	if err != nil {
		return false, err
	}
	annotations := maps.Clone(desired.GetAnnotations())
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[annotationSpecHash] = hash
	desired.SetAnnotations(annotations)

	key := client.ObjectKeyFromObject(desired)
	if err := c.Get(ctx, key, existing); err != nil {
		if !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("get %T %s: %w", desired, key, err)
		}
		if err := c.Create(ctx, desired); err != nil {
			return false, fmt.Errorf("create %T %s: %w", desired, key, err)
		}
		return true, nil
	}
	if existing.GetAnnotations()[annotationSpecHash] == hash &&
		equality.Semantic.DeepDerivative(kind.owned(desired), kind.owned(existing)) &&
		isSubset(desired.GetLabels(), existing.GetLabels()) &&
		equality.Semantic.DeepEqual(desired.GetOwnerReferences(), existing.GetOwnerReferences()) {
		return false, nil
	}
	patch := client.MergeFrom(existing.DeepCopyObject().(client.Object))
	kind.merge(existing, desired)
	labels := existing.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, desired.GetLabels())
	existing.SetLabels(labels)
	merged := existing.GetAnnotations()
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, annotations)
	existing.SetAnnotations(merged)
	existing.SetOwnerReferences(desired.GetOwnerReferences())
	if err := c.Patch(ctx, existing, patch); err != nil {
		return false, fmt.Errorf("patch %T %s: %w", desired, key, err)
	}
	return true, nil
}

func hashOf(parts ...any) (string, error) {
	raw, err := json.Marshal(parts)
	if err != nil {
		return "", fmt.Errorf("hash child spec: %w", err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8]), nil
}

func isSubset(want, have map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

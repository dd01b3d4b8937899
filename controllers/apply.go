package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/csaupgrade"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// fieldManager names the operator in its children's managedFields: server-
// side apply makes it the owner of every field it sets and of no other, so
// a field it stops setting is removed and fields others set are kept.
const fieldManager = "buytracker-operator"

// appliedKind reads back, from one kind of child, the configuration the
// operator applied to it (client-go's Extract<Kind>).
type appliedKind[T client.Object] func(obj T, fieldManager string) (any, error)

// applyChild writes desired by server-side apply, forcing the operator's
// ownership of every field it sets (an edit of those fields by someone
// else is undone). It sends nothing when the fields the operator owns
// already hold what it would apply, so that an unchanged BuyTracker causes
// no request; existing is scratch space of desired's type.
func applyChild[T client.Object](ctx context.Context, c client.Client, existing, desired T, extract appliedKind[T]) error {
	_, err := applyChildAndRead(ctx, c, existing, desired, extract, nil)
	return err
}

// applyChildAndRead is applyChild that leaves in existing the object as
// the API server has it after the pass (the answer of the apply when it
// wrote), reports whether it wrote, and runs beforeApply on an existing
// object before comparing (the StatefulSet hands spec.replicas to the
// scale step's manager there); with beforeApply it only updates.
func applyChildAndRead[T client.Object](ctx context.Context, c client.Client, existing, desired T, extract appliedKind[T], beforeApply func(ctx context.Context, existing T) error) (bool, error) {
	key := client.ObjectKeyFromObject(desired)
	found := true
	switch err := c.Get(ctx, key, existing); {
	case apierrors.IsNotFound(err) && beforeApply != nil:
		// desired is incomplete (the StatefulSet without its size): only
		// an update, never a creation.
		return false, fmt.Errorf("%T %s is gone; the next pass creates it: %w", desired, key, err)
	case apierrors.IsNotFound(err):
		found = false
	case err != nil:
		return false, fmt.Errorf("get %T %s: %w", desired, key, err)
	default:
		if err := adoptLegacyFields(ctx, c, existing); err != nil {
			return false, err
		}
		if beforeApply != nil {
			if err := beforeApply(ctx, existing); err != nil {
				return false, err
			}
		}
	}
	return applyOver(ctx, c, existing, found, desired, extract, false)
}

// applyOverRead is applyChild for a child the caller has read itself
// (existing, when found): the Secrets, whose data the operator decides
// from what it read. With lock the apply carries that read's
// resourceVersion as a precondition, so that it never writes over a
// change it has not seen (a conflict; the next pass reads again).
func applyOverRead[T client.Object](ctx context.Context, c client.Client, existing T, found bool, desired T, extract appliedKind[T], lock bool) (bool, error) {
	if found {
		if err := adoptLegacyFields(ctx, c, existing); err != nil {
			return false, err
		}
	}
	return applyOver(ctx, c, existing, found, desired, extract, lock)
}

// applyOver compares what the operator applied to existing (when found)
// with desired, and applies desired when they differ, leaving in existing
// the object as written.
func applyOver[T client.Object](ctx context.Context, c client.Client, existing T, found bool, desired T, extract appliedKind[T], lock bool) (bool, error) {
	key := client.ObjectKeyFromObject(desired)
	want, err := applyContent(c.Scheme(), desired)
	if err != nil {
		return false, err
	}
	if found {
		owned, err := extract(existing, fieldManager)
		if err != nil {
			return false, fmt.Errorf("read the fields the operator owns in %T %s: %w", desired, key, err)
		}
		if same, err := sameContent(owned, want); err != nil {
			return false, err
		} else if same {
			return false, nil
		}
		if lock {
			want.SetResourceVersion(existing.GetResourceVersion())
		}
	}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(want), client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
		return false, fmt.Errorf("apply %T %s: %w", desired, key, err)
	}
	// The apply's answer is the object as written (existing is emptied
	// first: the converter leaves fields the answer lacks as they were).
	reflect.ValueOf(existing).Elem().SetZero()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(want.Object, existing); err != nil {
		return true, fmt.Errorf("decode the applied %T %s: %w", desired, key, err)
	}
	return true, nil
}

// applyContent is what applying obj sends: its fields without the status
// and the creation time, which a typed object always carries.
func applyContent(scheme *runtime.Scheme, obj client.Object) (*unstructured.Unstructured, error) {
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return nil, err
	}
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %T %s: %w", obj, obj.GetName(), err)
	}
	u := &unstructured.Unstructured{Object: raw}
	u.SetGroupVersionKind(gvk)
	delete(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}

// sameContent reports whether an applied configuration read back from the
// server holds exactly want.
func sameContent(owned any, want *unstructured.Unstructured) (bool, error) {
	raw, err := json.Marshal(owned)
	if err != nil {
		return false, fmt.Errorf("encode applied configuration: %w", err)
	}
	var have map[string]any
	if err := json.Unmarshal(raw, &have); err != nil {
		return false, fmt.Errorf("decode applied configuration: %w", err)
	}
	// Both sides as JSON, so that numbers compare alike.
	raw, err = json.Marshal(want.Object)
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", want.GetName(), err)
	}
	var wantMap map[string]any
	if err := json.Unmarshal(raw, &wantMap); err != nil {
		return false, err
	}
	return equality.Semantic.DeepEqual(have, wantMap), nil
}

// annotationSpecHash marked the children written by the operator's
// create-or-patch, before it used server-side apply.
const annotationSpecHash = "buytracker.dev/spec-hash"

// adoptLegacyFields hands the fields an older operator wrote with create
// and patch (as an Update of the manager named after its binary) to the
// operator's apply manager, once: otherwise a field the operator no longer
// sets would stay, owned by the old manager (a client port changed from
// 8080 to 9090 would leave both). Only children the older operator wrote
// are touched: those it marked with the hash annotation, and the kinds it
// wrote without the mark (the Secrets, the cluster-state ConfigMap and the
// cert-manager Certificates), whose fields written by an Update of that
// manager can only be its own.
func adoptLegacyFields(ctx context.Context, c client.Client, obj client.Object) error {
	if !writtenByOlderOperator(obj) {
		return nil
	}
	// The API server names an Update's manager after the client's user
	// agent, up to the first "/": the binary's name.
	legacy, _, _ := strings.Cut(rest.DefaultKubernetesUserAgent(), "/")
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(obj, sets.New(legacy), fieldManager)
	if err != nil {
		return fmt.Errorf("hand the fields of %T %s to %s: %w", obj, obj.GetName(), fieldManager, err)
	}
	if patch == nil {
		return nil
	}
	if err := c.Patch(ctx, obj, client.RawPatch("application/json-patch+json", patch)); err != nil {
		return fmt.Errorf("hand the fields of %T %s to %s: %w", obj, obj.GetName(), fieldManager, err)
	}
	return nil
}

// writtenByOlderOperator reports whether obj may hold fields an older
// operator wrote by create and patch.
func writtenByOlderOperator(obj client.Object) bool {
	switch obj.(type) {
	case *corev1.Secret, *corev1.ConfigMap, *unstructured.Unstructured:
		return true
	}
	_, ok := obj.GetAnnotations()[annotationSpecHash]
	return ok
}

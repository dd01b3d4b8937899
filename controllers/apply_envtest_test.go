package controllers

import (
	"context"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

func appliers(obj client.Object) []string {
	var out []string
	for _, m := range obj.GetManagedFields() {
		if m.Operation == metav1.ManagedFieldsOperationApply {
			out = append(out, m.Manager)
		}
	}
	return out
}

func TestChildrenAreAppliedByTheOperator(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	for range 3 {
		f.pass(t)
	}
	children := f.children(t)
	for _, name := range []string{"Service/promo", "Service/promo-peers", "PodDisruptionBudget/promo", "NetworkPolicy/promo"} {
		if got := appliers(children[name]); !slices.Equal(got, []string{fieldManager}) {
			t.Errorf("%s applied by %v, want only %s", name, got, fieldManager)
		}
	}

	// Someone else edits a field the operator owns, and adds one of their
	// own: the first is undone, the second kept.
	ctx := context.Background()
	np := children["NetworkPolicy/promo"].(*networkingv1.NetworkPolicy)
	patch := client.MergeFrom(np.DeepCopy())
	np.Spec.Ingress = np.Spec.Ingress[:1]
	np.Labels["team"] = "shop"
	if err := f.s.client.Patch(ctx, np, patch); err != nil {
		t.Fatalf("edit network policy: %v", err)
	}
	f.pass(t)
	f.get(t, "promo", np)
	expect(t, "ingress rules", len(np.Spec.Ingress), 3)
	expect(t, "their label", np.Labels["team"], "shop")
}

func TestChildrenOfAnOlderOperatorAreAdopted(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	f := newDirectFixtureIn(t, ns, buytrackerv1alpha1.BuyTrackerSpec{})
	bt := f.buyTracker(t)
	// The client Service as the create-or-patch wrote it: created by this
	// process (an Update of the manager named after its binary), marked by
	// the hash annotation, on port 8080.
	old := desiredClientService(bt, namesOf(bt, "cluster.local"))
	old.Annotations = map[string]string{annotationSpecHash: "0123456789abcdef"}
	if err := s.client.Create(context.Background(), old); err != nil {
		t.Fatalf("create the older operator's Service: %v", err)
	}
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Service.Port = 9090 })
	f.pass(t)

	var svc corev1.Service
	f.get(t, "promo", &svc)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9090 {
		t.Errorf("ports %v, want only 9090: the older operator's port stayed", svc.Spec.Ports)
	}
	if _, ok := svc.Annotations[annotationSpecHash]; ok {
		t.Errorf("annotation %s kept", annotationSpecHash)
	}
	for _, m := range svc.ManagedFields {
		if m.Manager != fieldManager && m.Operation == metav1.ManagedFieldsOperationUpdate && m.Subresource == "" {
			t.Errorf("fields still owned by %s (%s)", m.Manager, m.Operation)
		}
	}
}

// The StatefulSet is applied like the other children, except spec.replicas:
// that belongs to the planner's scale step (its own field manager), so that
// no apply of the operator undoes a step or resets the size.
func TestStatefulSetReplicasBelongToTheScaleStep(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	for range 3 {
		f.pass(t)
	}
	before := &appsv1.StatefulSet{}
	f.get(t, "promo", before)
	expect(t, "replicas", ptr.Deref(before.Spec.Replicas, 0), int32(3))
	got := appliers(before)
	slices.Sort(got)
	expect(t, "appliers", got, []string{fieldManager, scaleFieldManager})
	expect(t, "the scale step owns replicas", ownsReplicas(before, scaleFieldManager), true)
	expect(t, "the operator's apply owns replicas", ownsReplicas(before, fieldManager), false)

	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Replicas = ptr.To[int32](5) })
	sts := &appsv1.StatefulSet{}
	for range 5 {
		f.pass(t)
		if f.get(t, "promo", sts); ptr.Deref(sts.Spec.Replicas, 0) == 5 {
			break
		}
	}
	expect(t, "replicas after the scale step", ptr.Deref(sts.Spec.Replicas, 0), int32(5))

	// The next apply changes the template and leaves the size alone.
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Image = "buytracker/node:v2" })
	f.pass(t)
	f.get(t, "promo", sts)
	expect(t, "image", sts.Spec.Template.Spec.Containers[0].Image, "buytracker/node:v2")
	expect(t, "replicas after the next apply", ptr.Deref(sts.Spec.Replicas, 0), int32(5))

	// Handing replicas to the scale step from an older copy (a stale cache)
	// is refused: it cannot bring back the size before the step.
	err := f.r.applyReplicas(context.Background(), before.DeepCopy(), 3, true)
	if !apierrors.IsConflict(err) {
		t.Errorf("applying replicas from an older copy: %v, want a conflict", err)
	}
	f.get(t, "promo", sts)
	expect(t, "replicas after the stale write", ptr.Deref(sts.Spec.Replicas, 0), int32(5))
}

func TestStatefulSetOfAnOlderOperatorIsAdopted(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	f := newDirectFixtureIn(t, ns, buytrackerv1alpha1.BuyTrackerSpec{})
	bt := f.buyTracker(t)
	// The StatefulSet as the create-or-patch wrote it: created by this
	// process (an Update of the manager named after its binary, which its
	// scale step patched too), marked by the hash annotation.
	old := desiredStatefulSet(bt, namesOf(bt, "cluster.local"), statefulSetInputs{nodeImage: f.r.NodeImage, initialReplicas: 3, replicas: 3})
	old.Annotations[annotationSpecHash] = "0123456789abcdef"
	if err := s.client.Create(context.Background(), old); err != nil {
		t.Fatalf("create the older operator's StatefulSet: %v", err)
	}
	f.pass(t)

	var sts appsv1.StatefulSet
	f.get(t, "promo", &sts)
	expect(t, "replicas", ptr.Deref(sts.Spec.Replicas, 0), int32(3))
	if _, ok := sts.Annotations[annotationSpecHash]; ok {
		t.Errorf("annotation %s kept", annotationSpecHash)
	}
	for _, m := range sts.ManagedFields {
		if m.Operation == metav1.ManagedFieldsOperationUpdate && m.Subresource == "" {
			t.Errorf("fields still owned by %s (%s)", m.Manager, m.Operation)
		}
	}
	expect(t, "the scale step owns replicas", ownsReplicas(&sts, scaleFieldManager), true)
	expect(t, "the operator's apply owns replicas", ownsReplicas(&sts, fieldManager), false)
}

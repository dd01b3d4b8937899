package controllers

import (
	"context"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/pki"
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
	var state corev1.ConfigMap
	f.get(t, "promo-cluster-state", &state)
	children["ConfigMap/promo-cluster-state"] = &state
	for _, name := range []string{"Service/promo", "Service/promo-peers", "PodDisruptionBudget/promo", "NetworkPolicy/promo",
		"Secret/promo-admin-token", "Secret/promo-ca", "Secret/promo-0-tls", "Secret/promo-1-tls", "Secret/promo-2-tls", "ConfigMap/promo-cluster-state"} {
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
	// The same on the Secrets and the ConfigMap, by a writer of another
	// name (an Update of this binary's name would be taken for an older
	// operator's and adopted).
	token := children["Secret/promo-admin-token"].(*corev1.Secret)
	wantToken := string(token.Data[adminTokenKey])
	member := children["Secret/promo-1-tls"].(*corev1.Secret)
	wantCert := string(member.Data[keyTLSCert])
	for _, obj := range []client.Object{token, member, &state} {
		patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
		labels := obj.GetLabels()
		labels[labelManagedBy], labels["team"] = "someone", "shop"
		obj.SetLabels(labels)
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			cm.Data[clusterCreatedKey] = "another cluster"
		}
		if err := f.s.client.Patch(ctx, obj, patch, client.FieldOwner("kubectl-edit")); err != nil {
			t.Fatalf("edit %T %s: %v", obj, obj.GetName(), err)
		}
	}

	f.pass(t)
	f.get(t, "promo", np)
	expect(t, "ingress rules", len(np.Spec.Ingress), 3)
	expect(t, "their label", np.Labels["team"], "shop")
	for _, obj := range []client.Object{token, member, &state} {
		f.get(t, obj.GetName(), obj)
		expect(t, obj.GetName()+" managed-by label", obj.GetLabels()[labelManagedBy], managedByValue)
		expect(t, obj.GetName()+" their label", obj.GetLabels()["team"], "shop")
	}
	expect(t, "token", string(token.Data[adminTokenKey]), wantToken)
	expect(t, "member certificate", string(member.Data[keyTLSCert]), wantCert)
	expect(t, "created", state.Data[clusterCreatedKey], string(f.buyTracker(t).UID))
}

// The Secrets an older operator created (an Update of the manager named
// after its binary, no mark) are adopted without a change of their data:
// the token every node has read stays, and the CA too.
func TestSecretsOfAnOlderOperatorAreAdopted(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	f := newDirectFixtureIn(t, ns, buytrackerv1alpha1.BuyTrackerSpec{})
	bt := f.buyTracker(t)
	n := namesOf(bt, "cluster.local")
	ctx := context.Background()
	const token = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	caCert, caKey, err := pki.NewCA(caCommonName(n), time.Now().Add(caValidity))
	if err != nil {
		t.Fatal(err)
	}
	ca := desiredCASecret(bt, n, map[string][]byte{keyTLSCert: caCert, keyTLSKey: caKey, keyCABundle: caCert}, map[string]string{annotationCARotation: ""})
	for _, obj := range []client.Object{desiredAdminSecret(bt, n, []byte(token)), ca} {
		if err := s.client.Create(ctx, obj); err != nil {
			t.Fatalf("create the older operator's %s: %v", obj.GetName(), err)
		}
	}
	for range 3 {
		f.pass(t)
	}
	var got corev1.Secret
	f.get(t, n.adminSecret(), &got)
	expect(t, "token", string(got.Data[adminTokenKey]), token)
	if !f.cluster.tokens[token] || len(f.cluster.tokens) != 1 {
		t.Errorf("admin calls did not all use the older operator's token: %v", f.cluster.tokens)
	}
	for _, name := range []string{n.adminSecret(), n.caSecret()} {
		f.get(t, name, &got)
		expect(t, name+" appliers", appliers(&got), []string{fieldManager})
		for _, m := range got.ManagedFields {
			if m.Operation == metav1.ManagedFieldsOperationUpdate && m.Subresource == "" {
				t.Errorf("%s: fields still owned by %s (%s)", name, m.Manager, m.Operation)
			}
		}
	}
	expect(t, "CA certificate", string(got.Data[keyTLSCert]), string(caCert))
	expect(t, "CA key", string(got.Data[keyTLSKey]), string(caKey))
	var member corev1.Secret
	f.get(t, n.memberSecret("promo-0"), &member)
	if err := verifyMember(n, "promo-0", &member, caCert); err != nil {
		t.Errorf("member not issued by the older operator's CA: %v", err)
	}
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

package controllers

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// directFixture drives one BuyTracker by calling Reconcile itself, with an
// uncached client, so that each pass is deterministic.
type directFixture struct {
	s       *apiServer
	r       *BuyTrackerReconciler
	cluster *scriptedCluster
	standIn *statefulSetStandIn
	key     client.ObjectKey
}

func newDirectFixture(t *testing.T, spec buytrackerv1alpha1.BuyTrackerSpec) *directFixture {
	t.Helper()
	s := needAPIServer(t)
	return newDirectFixtureIn(t, s.newNamespace(t), spec)
}

// newDirectFixtureIn is newDirectFixture in a namespace the test made.
func newDirectFixtureIn(t *testing.T, ns string, spec buytrackerv1alpha1.BuyTrackerSpec) *directFixture {
	t.Helper()
	return newDirectFixtureOn(t, needAPIServer(t), ns, spec)
}

// newDirectFixtureOn is newDirectFixtureIn on another API server than the
// shared one.
func newDirectFixtureOn(t *testing.T, s *apiServer, ns string, spec buytrackerv1alpha1.BuyTrackerSpec) *directFixture {
	t.Helper()
	bt := &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "promo", Namespace: ns}, Spec: spec}
	if err := s.client.Create(context.Background(), bt); err != nil {
		t.Fatalf("create buytracker: %v", err)
	}
	n := namesOf(bt, "cluster.local")
	cluster := newScriptedCluster(n, bt.DesiredReplicas(), 0)
	f := &directFixture{s: s, cluster: cluster, key: client.ObjectKeyFromObject(bt),
		standIn: &statefulSetStandIn{c: s.client, ns: ns},
		r: &BuyTrackerReconciler{Client: s.client, APIReader: s.client,
			Recorder: events.NewFakeRecorder(1000), AdminClients: cluster.factory(),
			NodeImage: "buytracker/node:test", ClusterDomain: "cluster.local"}}
	return f
}

// pass runs one reconcile and, like the StatefulSet controller would, puts
// the pods in step with the StatefulSet.
func (f *directFixture) pass(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.r.Reconcile(ctx, ctrl.Request{NamespacedName: f.key}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if err := f.standIn.sync(ctx); err != nil {
		t.Fatalf("stand-in: %v", err)
	}
}

func (f *directFixture) get(t *testing.T, name string, obj client.Object) {
	t.Helper()
	if err := f.s.client.Get(context.Background(), client.ObjectKey{Namespace: f.key.Namespace, Name: name}, obj); err != nil {
		t.Fatalf("get %T %s: %v", obj, name, err)
	}
}

func (f *directFixture) buyTracker(t *testing.T) *buytrackerv1alpha1.BuyTracker {
	t.Helper()
	var bt buytrackerv1alpha1.BuyTracker
	f.get(t, f.key.Name, &bt)
	return &bt
}

func (f *directFixture) update(t *testing.T, mutate func(*buytrackerv1alpha1.BuyTracker)) {
	t.Helper()
	bt := f.buyTracker(t)
	patch := client.MergeFrom(bt.DeepCopy())
	mutate(bt)
	if err := f.s.client.Patch(context.Background(), bt, patch); err != nil {
		t.Fatalf("update buytracker: %v", err)
	}
}

// children returns every child object, keyed by kind and name.
func (f *directFixture) children(t *testing.T) map[string]client.Object {
	t.Helper()
	out := map[string]client.Object{}
	for name, obj := range map[string]client.Object{
		"StatefulSet/promo":         &appsv1.StatefulSet{},
		"Service/promo":             &corev1.Service{},
		"Service/promo-peers":       &corev1.Service{},
		"PodDisruptionBudget/promo": &policyv1.PodDisruptionBudget{},
		"Secret/promo-admin-token":  &corev1.Secret{},
		"Secret/promo-ca":           &corev1.Secret{},
		"Secret/promo-0-tls":        &corev1.Secret{},
		"Secret/promo-1-tls":        &corev1.Secret{},
		"Secret/promo-2-tls":        &corev1.Secret{},
		"NetworkPolicy/promo":       &networkingv1.NetworkPolicy{},
	} {
		f.get(t, name[strings.Index(name, "/")+1:], obj)
		out[name] = obj
	}
	return out
}

func TestReconcileCreatesEveryChildOwnedByTheBuyTracker(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	f.pass(t)
	bt := f.buyTracker(t)

	expect(t, "defaulted replicas", bt.DesiredReplicas(), int32(3))
	expect(t, "defaulted storage size", bt.Spec.Storage.Size.String(), "1Gi")
	expect(t, "defaulted whenDeleted", bt.Spec.Storage.WhenDeleted, appsv1.RetainPersistentVolumeClaimRetentionPolicyType)
	expect(t, "defaulted raft.maxClockSkew", bt.Spec.Raft.MaxClockSkew.Duration, time.Second)
	expect(t, "defaulted idempotency.maxKeys", *bt.Spec.Idempotency.MaxKeys, buytrackerv1alpha1.DefaultIdempotencyMaxKeys)
	expect(t, "defaulted service", bt.Spec.Service, buytrackerv1alpha1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Port: 8080})
	expect(t, "initial size", bt.Annotations[annotationInitialReplicas], "3")

	for name, obj := range f.children(t) {
		refs := obj.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != bt.UID || !ptr.Deref(refs[0].Controller, false) || !ptr.Deref(refs[0].BlockOwnerDeletion, false) {
			t.Errorf("%s: owner references %+v, want one controller reference to the BuyTracker", name, refs)
		}
		expect(t, name+" managed-by label", obj.GetLabels()[labelManagedBy], managedByValue)
	}
	children := f.children(t)
	sts := children["StatefulSet/promo"].(*appsv1.StatefulSet)
	expect(t, "replicas", *sts.Spec.Replicas, int32(3))
	expect(t, "pod management", sts.Spec.PodManagementPolicy, appsv1.ParallelPodManagement)
	expect(t, "update strategy", sts.Spec.UpdateStrategy.Type, appsv1.OnDeleteStatefulSetStrategyType)
	expect(t, "image", sts.Spec.Template.Spec.Containers[0].Image, "buytracker/node:test")
	if !slices.ContainsFunc(sts.Spec.Template.Spec.Containers[0].Args, func(a string) bool {
		return strings.HasPrefix(a, "--initial-cluster=promo-0=") && strings.Count(a, "=") == 4
	}) {
		t.Errorf("no three-member --initial-cluster in %v", sts.Spec.Template.Spec.Containers[0].Args)
	}
	peers := children["Service/promo-peers"].(*corev1.Service)
	expect(t, "peer service headless", peers.Spec.ClusterIP, corev1.ClusterIPNone)
	expect(t, "peer service publishes not-ready pods", peers.Spec.PublishNotReadyAddresses, true)
	expect(t, "peer ports", len(peers.Spec.Ports), 3)
	clientSvc := children["Service/promo"].(*corev1.Service)
	expect(t, "client ports", len(clientSvc.Spec.Ports), 1)
	expect(t, "client port", clientSvc.Spec.Ports[0].Port, int32(8080))
	pdb := children["PodDisruptionBudget/promo"].(*policyv1.PodDisruptionBudget)
	expect(t, "maxUnavailable", pdb.Spec.MaxUnavailable.IntVal, int32(1))
	secret := children["Secret/promo-admin-token"].(*corev1.Secret)
	if raw, err := hex.DecodeString(string(secret.Data[adminTokenKey])); err != nil || len(raw) != 32 {
		t.Errorf("admin token %q is not 32 random bytes in hex", secret.Data[adminTokenKey])
	}
}

func TestReconcileOfAnUnchangedSpecWritesNothing(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	for range 4 {
		f.pass(t)
	}
	if c := meta.FindStatusCondition(f.buyTracker(t).Status.Conditions, buytrackerv1alpha1.ConditionProgressing); c == nil || c.Reason != buytrackerv1alpha1.ReasonReconciled {
		t.Fatalf("cluster not settled: %+v", c)
	}
	versions := func() map[string]string {
		out := map[string]string{"BuyTracker/promo": f.buyTracker(t).ResourceVersion}
		for name, obj := range f.children(t) {
			out[name] = obj.GetResourceVersion()
		}
		var state corev1.ConfigMap
		f.get(t, "promo-cluster-state", &state)
		out["ConfigMap/promo-cluster-state"] = state.ResourceVersion
		return out
	}
	before := versions()
	var writes []string
	f.r.Client = writeRecorder{Client: f.r.Client, writes: &writes}
	for range 3 {
		f.pass(t)
	}
	expect(t, "resourceVersions", versions(), before)
	// Not even a patch that changes nothing: each would be a request to the
	// API server, every pass, for every BuyTracker.
	expect(t, "writes sent", writes, []string(nil))
	token := f.children(t)["Secret/promo-admin-token"].(*corev1.Secret).Data[adminTokenKey]
	if !f.cluster.tokens[string(token)] || len(f.cluster.tokens) != 1 {
		t.Errorf("admin calls did not all use the Secret's token")
	}
}

func TestSpecChangesReachTheChildren(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	for range 3 {
		f.pass(t)
	}
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) {
		bt.Spec.Image = "buytracker/node:v2"
		bt.Spec.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}
		bt.Spec.Service = buytrackerv1alpha1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Port: 80}
		bt.Spec.Storage.WhenDeleted = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
		bt.Spec.Raft = &buytrackerv1alpha1.RaftSpec{SnapshotThreshold: ptr.To[int64](500), MaxClockSkew: &metav1.Duration{Duration: 300 * time.Millisecond}}
		bt.Spec.Idempotency.MaxKeys = ptr.To[int64](20000)
		bt.Spec.TLS = &buytrackerv1alpha1.ClientTLSSpec{SecretName: "promo-https"}
		bt.Spec.ClientAuth = &buytrackerv1alpha1.ClientAuthSpec{SecretName: "promo-tokens"}
		bt.Spec.TrustedProxies = []buytrackerv1alpha1.ProxyAddress{"10.0.0.0/8"}
	})
	recorder := f.r.Recorder.(*events.FakeRecorder)
	drain(recorder)
	f.pass(t)
	if got := eventsWith(drain(recorder), "StatefulSetUpdated"); len(got) != 1 {
		t.Errorf("StatefulSetUpdated events %q, want one", got)
	}
	children := f.children(t)
	sts := children["StatefulSet/promo"].(*appsv1.StatefulSet)
	c := sts.Spec.Template.Spec.Containers[0]
	for _, flag := range []string{"--max-clock-skew=300ms", "--idempotency-max-keys=20000", "--client-tls-dir=/etc/buytracker/client-tls",
		"--client-auth-file=/etc/buytracker/client-auth.json", "--trusted-proxies=10.0.0.0/8"} {
		if !slices.Contains(c.Args, flag) {
			t.Errorf("no %s in %v", flag, c.Args)
		}
	}
	expect(t, "image", c.Image, "buytracker/node:v2")
	expect(t, "memory limit", c.Resources.Limits.Memory().String(), "256Mi")
	expect(t, "snapshot flag", slices.Contains(c.Args, "--snapshot-threshold=500"), true)
	expect(t, "whenDeleted", sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted, appsv1.DeletePersistentVolumeClaimRetentionPolicyType)
	svc := children["Service/promo"].(*corev1.Service)
	expect(t, "service type", svc.Spec.Type, corev1.ServiceTypeNodePort)
	expect(t, "service port", svc.Spec.Ports[0].Port, int32(80))
	if svc.Spec.Ports[0].NodePort == 0 {
		t.Error("no node port allocated")
	}

	// A storage class cannot change in place: the StatefulSet is deleted
	// with its pods orphaned, then made again.
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Storage.StorageClassName = ptr.To("fast") })
	f.pass(t)
	old := &appsv1.StatefulSet{}
	f.get(t, "promo", old)
	if old.DeletionTimestamp == nil || !slices.Contains(old.Finalizers, metav1.FinalizerOrphanDependents) {
		t.Fatalf("StatefulSet not deleted with orphaned pods: deletion %v, finalizers %v", old.DeletionTimestamp, old.Finalizers)
	}
	releaseOrphans(t, f.s.client, old) // what the garbage collector does
	f.pass(t)
	sts = &appsv1.StatefulSet{}
	f.get(t, "promo", sts)
	expect(t, "storage class", ptr.Deref(sts.Spec.VolumeClaimTemplates[0].Spec.StorageClassName, ""), "fast")
	expect(t, "replicas kept", *sts.Spec.Replicas, int32(3))
	expect(t, "image kept", sts.Spec.Template.Spec.Containers[0].Image, "buytracker/node:v2")

	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Replicas = ptr.To[int32](5) })
	f.pass(t)
	f.get(t, "promo", sts)
	expect(t, "replicas", *sts.Spec.Replicas, int32(5))
	f.pass(t)
	expect(t, "membership calls", f.cluster.callLog(), []string{"add promo-3"})
	pdb := &policyv1.PodDisruptionBudget{}
	f.get(t, "promo", pdb)
	expect(t, "maxUnavailable while growing", pdb.Spec.MaxUnavailable.IntVal, int32(1))
}

// writeRecorder notes every write the reconciler sends through it.
type writeRecorder struct {
	client.Client
	writes *[]string
}

func (w writeRecorder) note(verb string, obj client.Object) {
	*w.writes = append(*w.writes, fmt.Sprintf("%s %T %s", verb, obj, obj.GetName()))
}

func (w writeRecorder) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	w.note("create", obj)
	return w.Client.Create(ctx, obj, opts...)
}

func (w writeRecorder) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	w.note("update", obj)
	return w.Client.Update(ctx, obj, opts...)
}

func (w writeRecorder) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	w.note("patch", obj)
	return w.Client.Patch(ctx, obj, patch, opts...)
}

func (w writeRecorder) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	name := "?"
	if u, ok := obj.(interface{ GetName() string }); ok {
		name = u.GetName()
	}
	*w.writes = append(*w.writes, fmt.Sprintf("apply %T %s", obj, name))
	return w.Client.Apply(ctx, obj, opts...)
}

func (w writeRecorder) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	w.note("delete", obj)
	return w.Client.Delete(ctx, obj, opts...)
}

// releaseOrphans removes the orphan finalizer, as the garbage collector
// does once it has orphaned the dependents (envtest runs no collector).
func releaseOrphans(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	obj.SetFinalizers(slices.DeleteFunc(obj.GetFinalizers(), func(f string) bool { return f == metav1.FinalizerOrphanDependents }))
	if err := c.Patch(context.Background(), obj, patch); err != nil {
		t.Fatalf("remove orphan finalizer: %v", err)
	}
}

func TestDeletionLeavesCleanupToTheGarbageCollector(t *testing.T) {
	for _, whenDeleted := range []appsv1.PersistentVolumeClaimRetentionPolicyType{
		appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
	} {
		t.Run(string(whenDeleted), func(t *testing.T) {
			f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{Storage: buytrackerv1alpha1.StorageSpec{WhenDeleted: whenDeleted}})
			f.pass(t)
			bt := f.buyTracker(t)
			if err := f.s.client.Delete(context.Background(), bt); err != nil {
				t.Fatal(err)
			}
			// No finalizer holds the BuyTracker: it is gone at once, and
			// a late reconcile changes nothing.
			if err := f.s.client.Get(context.Background(), f.key, &buytrackerv1alpha1.BuyTracker{}); err == nil {
				t.Fatal("the BuyTracker is still there")
			}
			f.pass(t)
			// envtest runs no garbage collector; in a cluster it deletes
			// every child, whose controller reference names the deleted
			// BuyTracker, and the StatefulSet's retention policy decides
			// over the volumes.
			for name, obj := range f.children(t) {
				ref := metav1.GetControllerOf(obj)
				if ref == nil || ref.UID != bt.UID || ref.Kind != "BuyTracker" {
					t.Errorf("%s: controller reference %+v does not name the BuyTracker", name, ref)
				}
			}
			sts := f.children(t)["StatefulSet/promo"].(*appsv1.StatefulSet)
			expect(t, "volumes on deletion", sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted, whenDeleted)
			expect(t, "volumes on scale-down", sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled, appsv1.RetainPersistentVolumeClaimRetentionPolicyType)
		})
	}
}

package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// newStorageClass creates a cluster-scoped StorageClass named after the
// test's namespace, so that tests do not share one.
func newStorageClass(t *testing.T, s *apiServer, ns string, expandable bool) string {
	t.Helper()
	sc := &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: ns + "-disks"},
		Provisioner:          "disks.example.com",
		AllowVolumeExpansion: ptr.To(expandable),
	}
	if err := s.client.Create(context.Background(), sc); err != nil {
		t.Fatalf("create storage class: %v", err)
	}
	t.Cleanup(func() { _ = s.client.Delete(context.Background(), sc) })
	return sc.Name
}

// boundClaims makes the members' volumes the way the StatefulSet controller
// and a provisioner would (envtest runs neither): one claim per pod, named
// data-<pod>, labelled with the pods' selector, bound with its capacity.
func (f *directFixture) boundClaims(t *testing.T, class string, count int32, size string) {
	t.Helper()
	ctx := context.Background()
	n := clusterNames{name: f.key.Name, namespace: f.key.Namespace}
	for i := range count {
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.key.Namespace, Name: dataVolume + "-" + n.pod(i), Labels: n.selectorLabels()},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: ptr.To(class),
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
			},
		}
		if err := f.s.client.Create(ctx, pvc); err != nil {
			t.Fatalf("create claim: %v", err)
		}
		f.setCapacity(t, pvc.Name, size)
	}
}

// setCapacity binds a claim with the given capacity, as a storage driver
// reports a volume it has grown.
func (f *directFixture) setCapacity(t *testing.T, name, size string) {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{}
	f.get(t, name, pvc)
	pvc.Status.Phase = corev1.ClaimBound
	pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}
	if err := f.s.client.Status().Update(context.Background(), pvc); err != nil {
		t.Fatalf("bind claim %s: %v", name, err)
	}
}

func (f *directFixture) claimRequests(t *testing.T) map[string]string {
	t.Helper()
	var pvcs corev1.PersistentVolumeClaimList
	if err := f.s.client.List(context.Background(), &pvcs, client.InNamespace(f.key.Namespace)); err != nil {
		t.Fatalf("list claims: %v", err)
	}
	out := map[string]string{}
	for _, p := range pvcs.Items {
		out[p.Name] = p.Spec.Resources.Requests.Storage().String()
	}
	return out
}

// growStorage sets spec.storage.size and runs the passes that replace the
// StatefulSet for its new claim template.
func (f *directFixture) growStorage(t *testing.T, size string) {
	t.Helper()
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Storage.Size = ptr.To(resource.MustParse(size)) })
	f.pass(t)
	old := &appsv1.StatefulSet{}
	f.get(t, "promo", old)
	if old.DeletionTimestamp != nil {
		releaseOrphans(t, f.s.client, old) // what the garbage collector does
	}
	f.pass(t)
}

// settle runs passes until the operator has nothing left to do.
func (f *directFixture) settle(t *testing.T) {
	t.Helper()
	for range 20 {
		f.pass(t)
		if c := meta.FindStatusCondition(f.buyTracker(t).Status.Conditions, buytrackerv1alpha1.ConditionProgressing); c != nil && c.Reason == buytrackerv1alpha1.ReasonReconciled {
			return
		}
	}
	t.Fatalf("not reconciled after 20 passes: %+v", f.buyTracker(t).Status.Conditions)
}

func (f *directFixture) condition(t *testing.T, typ string) *metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(f.buyTracker(t).Status.Conditions, typ)
	if c == nil {
		t.Fatalf("no %s condition", typ)
	}
	return c
}

func eventsWith(recorded []string, reason string) []string {
	return slices.DeleteFunc(slices.Clone(recorded), func(e string) bool { return !strings.Contains(e, " "+reason+" ") })
}

func TestGrowingStorageExpandsEveryMemberVolumeWhenTheClassAllows(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	class := newStorageClass(t, s, ns, true)
	f := newDirectFixtureIn(t, ns, buytrackerv1alpha1.BuyTrackerSpec{Storage: buytrackerv1alpha1.StorageSpec{StorageClassName: ptr.To(class)}})
	f.boundClaims(t, class, 3, "1Gi")
	for range 3 {
		f.pass(t)
	}
	expect(t, "VolumeExpansion before", f.condition(t, buytrackerv1alpha1.ConditionVolumeExpansion).Reason, buytrackerv1alpha1.ReasonVolumesAtSize)
	recorder := f.r.Recorder.(*events.FakeRecorder)
	drain(recorder)

	f.growStorage(t, "2Gi")
	expect(t, "claim requests", f.claimRequests(t), map[string]string{"data-promo-0": "2Gi", "data-promo-1": "2Gi", "data-promo-2": "2Gi"})
	recorded := drain(recorder)
	if got := eventsWith(recorded, "VolumeExpansionRequested"); len(got) != 3 {
		t.Errorf("VolumeExpansionRequested events %q, want one per claim; all: %q", got, recorded)
	}
	c := f.condition(t, buytrackerv1alpha1.ConditionVolumeExpansion)
	expect(t, "VolumeExpansion while the driver grows them", fmt.Sprint(c.Status, " ", c.Reason), "True "+buytrackerv1alpha1.ReasonVolumesExpanding)

	// The driver grows the volumes: the condition clears, nothing is
	// patched again.
	for i := range int32(3) {
		f.setCapacity(t, "data-"+testNames.pod(i), "2Gi")
	}
	f.pass(t)
	c = f.condition(t, buytrackerv1alpha1.ConditionVolumeExpansion)
	expect(t, "VolumeExpansion once grown", fmt.Sprint(c.Status, " ", c.Reason), "False "+buytrackerv1alpha1.ReasonVolumesAtSize)
	if got := eventsWith(drain(recorder), "VolumesExpanded"); len(got) != 1 {
		t.Errorf("VolumesExpanded events %q, want exactly one", got)
	}
	// The new watermark (--min-free-disk) rolls the pods; then a pass has
	// nothing to do.
	f.settle(t)
	before := f.buyTracker(t).ResourceVersion
	f.pass(t)
	expect(t, "resourceVersion of a pass with nothing to do", f.buyTracker(t).ResourceVersion, before)
	if got := eventsWith(drain(recorder), "VolumeExpansionRequested"); len(got) != 0 {
		t.Errorf("claims patched again: %q", got)
	}
}

func TestGrowingStorageOnAClassThatCannotExpandIsReportedAndChangesNoClaim(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	class := newStorageClass(t, s, ns, false)
	f := newDirectFixtureIn(t, ns, buytrackerv1alpha1.BuyTrackerSpec{Storage: buytrackerv1alpha1.StorageSpec{StorageClassName: ptr.To(class)}})
	f.boundClaims(t, class, 3, "1Gi")
	for range 3 {
		f.pass(t)
	}
	recorder := f.r.Recorder.(*events.FakeRecorder)
	drain(recorder)

	f.growStorage(t, "2Gi")
	f.pass(t)
	expect(t, "claim requests", f.claimRequests(t), map[string]string{"data-promo-0": "1Gi", "data-promo-1": "1Gi", "data-promo-2": "1Gi"})
	c := f.condition(t, buytrackerv1alpha1.ConditionVolumeExpansion)
	expect(t, "VolumeExpansion", fmt.Sprint(c.Status, " ", c.Reason), "False "+buytrackerv1alpha1.ReasonExpansionNotAllowed)
	if !strings.Contains(c.Message, class) || !strings.Contains(c.Message, "allowVolumeExpansion") {
		t.Errorf("message %q names neither the class nor allowVolumeExpansion", c.Message)
	}
	if got := eventsWith(drain(recorder), "VolumeExpansionNotAllowed"); len(got) != 1 {
		t.Errorf("VolumeExpansionNotAllowed events %q, want exactly one", got)
	}
	// The new StatefulSet gives volumes created from now on the new size.
	sts := &appsv1.StatefulSet{}
	f.get(t, "promo", sts)
	expect(t, "claim template size", sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String(), "2Gi")
}

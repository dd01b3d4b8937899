package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

const haltReason = "entry 812: checksum mismatch (computed 9f2c, stored 41aa)"

// newIntegrityFixture is a settled three-member cluster whose pods have
// volume claims, each member reporting its first incarnation.
func newIntegrityFixture(t *testing.T, spec buytrackerv1alpha1.BuyTrackerSpec) (*directFixture, *events.FakeRecorder) {
	t.Helper()
	f := newDirectFixture(t, spec)
	f.standIn.withClaims = true
	for i := range int32(3) {
		inc := fmt.Sprintf("first-%d", i)
		f.cluster.setNodeStatus(testNames.pod(i), func(st *adminapi.Status) { st.Incarnation = inc })
	}
	f.settle(t)
	recorder := f.r.Recorder.(*events.FakeRecorder)
	drain(recorder)
	return f, recorder
}

func (f *directFixture) halt(pod, incarnation string) {
	f.cluster.setNodeStatus(pod, func(st *adminapi.Status) { st.Incarnation, st.Halted = incarnation, haltReason })
}

// uidOf is the UID of a pod or claim, "" when it is gone.
func (f *directFixture) uidOf(t *testing.T, obj client.Object, name string) types.UID {
	t.Helper()
	err := f.s.client.Get(context.Background(), client.ObjectKey{Namespace: f.key.Namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return obj.GetUID()
}

// releaseClaim removes the claim's protection, as the kube-controller-manager
// does once no pod uses it: a claim being deleted is then gone.
func (f *directFixture) releaseClaim(t *testing.T, name string) {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{}
	f.get(t, name, pvc)
	pvc.Finalizers = nil
	if err := f.s.client.Update(context.Background(), pvc); err != nil {
		t.Fatalf("release claim %s: %v", name, err)
	}
}

func (f *directFixture) outOfService(t *testing.T, member string) string {
	t.Helper()
	for _, m := range f.buyTracker(t).Status.Members {
		if m.Name == member {
			if m.OutOfService == nil {
				return "in service"
			}
			return fmt.Sprintf("%s: %s", m.OutOfService.Reason, m.OutOfService.Message)
		}
	}
	return "not a member"
}

func TestAPIServerTurnsReplacementOnByDefault(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	ctx := context.Background()
	for name, spec := range map[string]buytrackerv1alpha1.BuyTrackerSpec{
		"unset": {},
		"off":   {Integrity: buytrackerv1alpha1.IntegritySpec{ReplaceHaltedMembers: ptr.To(false)}},
	} {
		bt := &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
		if err := s.client.Create(ctx, bt); err != nil {
			t.Fatal(err)
		}
		got := &buytrackerv1alpha1.BuyTracker{}
		if err := s.client.Get(ctx, client.ObjectKeyFromObject(bt), got); err != nil {
			t.Fatal(err)
		}
		expect(t, name+": spec.integrity.replaceHaltedMembers", fmt.Sprint(ptr.Deref(got.Spec.Integrity.ReplaceHaltedMembers, true), " ", got.ReplacesHaltedMembers()),
			fmt.Sprint(name == "unset", " ", name == "unset"))
		if name == "unset" && got.Spec.Integrity.ReplaceHaltedMembers == nil {
			t.Error("the API server did not default spec.integrity.replaceHaltedMembers")
		}
	}
}

func TestAHaltedMemberIsReplacedLikeALostVolume(t *testing.T) {
	f, recorder := newIntegrityFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	oldClaim := f.uidOf(t, &corev1.PersistentVolumeClaim{}, "data-promo-1")
	oldPod := f.uidOf(t, &corev1.Pod{}, "promo-1")
	if oldClaim == "" || oldPod == "" {
		t.Fatalf("promo-1 has no claim (%q) or pod (%q)", oldClaim, oldPod)
	}

	// The first pass that sees the halt reports it and deletes nothing: a
	// status blip must not cost a volume.
	f.halt("promo-1", "first-1")
	f.pass(t)
	c := f.condition(t, buytrackerv1alpha1.ConditionDegraded)
	expect(t, "Degraded", fmt.Sprint(c.Status, " ", c.Reason), "True "+buytrackerv1alpha1.ReasonMemberOutOfService)
	if !strings.Contains(c.Message, "promo-1 (halted: "+haltReason+")") {
		t.Errorf("Degraded message %q does not name promo-1 and its halt", c.Message)
	}
	expect(t, "promo-1 in the status", f.outOfService(t, "promo-1"), "Halted: "+haltReason)
	expect(t, "Progressing", f.condition(t, buytrackerv1alpha1.ConditionProgressing).Reason, buytrackerv1alpha1.ReasonReplacingMember)
	expect(t, "claim after one pass", f.uidOf(t, &corev1.PersistentVolumeClaim{}, "data-promo-1"), oldClaim)
	expect(t, "pod after one pass", f.uidOf(t, &corev1.Pod{}, "promo-1"), oldPod)
	recorded := drain(recorder)
	if got := eventsWith(recorded, buytrackerv1alpha1.ReasonMemberOutOfService); len(got) != 1 || !strings.Contains(got[0], "Warning") ||
		!strings.Contains(got[0], "promo-1") || !strings.Contains(got[0], haltReason) {
		t.Fatalf("MemberOutOfService events %q, want one Warning naming promo-1 and its halt; all: %q", got, recorded)
	}

	// The second pass replaces it: claim first, then the pod. The claim
	// stays, being deleted, until nothing uses it.
	f.pass(t)
	recorded = drain(recorder)
	if got := eventsWith(recorded, "MemberReplacementStarted"); len(got) != 1 || !strings.Contains(got[0], "promo-1") ||
		!strings.Contains(got[0], haltReason) || !strings.Contains(got[0], "data-promo-1") {
		t.Fatalf("MemberReplacementStarted events %q, want one naming promo-1, its halt and its claim; all: %q", got, recorded)
	}
	expect(t, "MemberOutOfService events of the second pass", len(eventsWith(recorded, buytrackerv1alpha1.ReasonMemberOutOfService)), 0)
	claim := &corev1.PersistentVolumeClaim{}
	if f.uidOf(t, claim, "data-promo-1") != oldClaim || claim.DeletionTimestamp == nil {
		t.Fatalf("claim data-promo-1 not being deleted: %+v", claim.ObjectMeta)
	}
	// The stand-in made the pod again at once: it waits on the old claim.
	pod := &corev1.Pod{}
	if uid := f.uidOf(t, pod, "promo-1"); uid == oldPod || uid == "" || pod.Status.Phase != corev1.PodPending {
		t.Fatalf("promo-1 after the replacement: uid %s (old %s), phase %s; want a new, pending pod", uid, oldPod, pod.Status.Phase)
	}

	// A pod waiting on a claim being deleted is deleted again, each pass,
	// until the claim is gone; then the StatefulSet gives it a new claim.
	pending := pod.UID
	if _, err := f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: f.key}); err != nil {
		t.Fatal(err)
	}
	expect(t, "pending pod", f.uidOf(t, &corev1.Pod{}, "promo-1"), types.UID(""))
	if got := eventsWith(drain(recorder), "PodRestarted"); len(got) != 1 || !strings.Contains(got[0], "data-promo-1") {
		t.Fatalf("PodRestarted events %q, want one for the pending promo-1", got)
	}
	f.releaseClaim(t, "data-promo-1")
	if err := f.standIn.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	newClaim := f.uidOf(t, &corev1.PersistentVolumeClaim{}, "data-promo-1")
	if newClaim == "" || newClaim == oldClaim || f.uidOf(t, pod, "promo-1") == pending || pod.Status.Phase != corev1.PodRunning {
		t.Fatalf("promo-1 not back on a new claim: claim %s (old %s), pod phase %s", newClaim, oldClaim, pod.Status.Phase)
	}

	// The node starts empty: a new incarnation, rejoining as a non-voter.
	f.cluster.setNodeStatus("promo-1", func(st *adminapi.Status) { st.Incarnation, st.Joining = "second-1", true })
	f.cluster.mu.Lock()
	f.cluster.members[1].Suffrage = adminapi.Nonvoter
	f.cluster.mu.Unlock()
	f.pass(t)
	c = f.condition(t, buytrackerv1alpha1.ConditionDegraded)
	expect(t, "Degraded while rejoining", fmt.Sprint(c.Status, " ", c.Reason), "True "+buytrackerv1alpha1.ReasonMemberReplaced)
	expect(t, "promo-1 in the status", f.outOfService(t, "promo-1"), "in service")
	recorded = drain(recorder)
	expect(t, "MemberReplaced events", len(eventsWith(recorded, buytrackerv1alpha1.ReasonMemberReplaced)), 1)
	expect(t, "replacements started while rejoining", len(eventsWith(recorded, "MemberReplacementStarted")), 0)

	f.cluster.setNodeStatus("promo-1", func(st *adminapi.Status) { st.Incarnation = "second-1" })
	f.settle(t)
	expect(t, "Degraded once promoted", f.condition(t, buytrackerv1alpha1.ConditionDegraded).Reason, buytrackerv1alpha1.ReasonMembersHealthy)
	expect(t, "the claim of the new incarnation", f.uidOf(t, &corev1.PersistentVolumeClaim{}, "data-promo-1"), newClaim)
}

func TestAHaltedMemberStaysForInspectionWhenReplacementIsOff(t *testing.T) {
	f, recorder := newIntegrityFixture(t, buytrackerv1alpha1.BuyTrackerSpec{
		Integrity: buytrackerv1alpha1.IntegritySpec{ReplaceHaltedMembers: ptr.To(false)}})
	oldClaim := f.uidOf(t, &corev1.PersistentVolumeClaim{}, "data-promo-2")
	oldPod := f.uidOf(t, &corev1.Pod{}, "promo-2")

	f.halt("promo-2", "first-2")
	for range 4 {
		f.pass(t)
	}
	expect(t, "claim", f.uidOf(t, &corev1.PersistentVolumeClaim{}, "data-promo-2"), oldClaim)
	expect(t, "pod", f.uidOf(t, &corev1.Pod{}, "promo-2"), oldPod)
	expect(t, "promo-2 in the status", f.outOfService(t, "promo-2"), "Halted: "+haltReason)
	expect(t, "Degraded", f.condition(t, buytrackerv1alpha1.ConditionDegraded).Reason, buytrackerv1alpha1.ReasonMemberOutOfService)
	expect(t, "Progressing", f.condition(t, buytrackerv1alpha1.ConditionProgressing).Reason, buytrackerv1alpha1.ReasonReconciled)
	recorded := drain(recorder)
	if got := eventsWith(recorded, buytrackerv1alpha1.ReasonMemberOutOfService); len(got) != 1 || !strings.Contains(got[0], "replaceHaltedMembers is false") {
		t.Fatalf("MemberOutOfService events %q, want one saying the member is left alone; all: %q", got, recorded)
	}
	expect(t, "replacements started", len(eventsWith(recorded, "MemberReplacementStarted")), 0)

	// Someone deletes the claim to replace the member, and turns
	// replacement on (or an operator stopped between deleting the claim and
	// the pod): the claim being deleted is fine, the pod goes.
	claim := &corev1.PersistentVolumeClaim{}
	f.get(t, "data-promo-2", claim)
	if err := f.s.client.Delete(context.Background(), claim); err != nil {
		t.Fatal(err)
	}
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Integrity.ReplaceHaltedMembers = nil })
	if _, err := f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: f.key}); err != nil {
		t.Fatalf("replacing with the claim already being deleted: %v", err)
	}
	expect(t, "pod", f.uidOf(t, &corev1.Pod{}, "promo-2"), types.UID(""))
	expect(t, "claim, still being deleted", f.uidOf(t, &corev1.PersistentVolumeClaim{}, "data-promo-2"), oldClaim)
	expect(t, "replacements started", len(eventsWith(drain(recorder), "MemberReplacementStarted")), 1)
}

func TestADivergedMemberIsReportedButNotReplaced(t *testing.T) {
	f, recorder := newIntegrityFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	oldClaim := f.uidOf(t, &corev1.PersistentVolumeClaim{}, "data-promo-2")
	f.cluster.setNodeStatus("promo-2", func(st *adminapi.Status) {
		st.Incarnation, st.Diverged = "first-2", "digest differs from promo-0's at index 990"
	})
	for range 3 {
		f.pass(t)
	}
	expect(t, "promo-2 in the status", f.outOfService(t, "promo-2"), "Diverged: digest differs from promo-0's at index 990")
	expect(t, "Degraded", f.condition(t, buytrackerv1alpha1.ConditionDegraded).Reason, buytrackerv1alpha1.ReasonMemberOutOfService)
	expect(t, "claim", f.uidOf(t, &corev1.PersistentVolumeClaim{}, "data-promo-2"), oldClaim)

	// It halts: one more Event, for the new reason, then a replacement.
	f.halt("promo-2", "first-2")
	f.pass(t)
	f.pass(t)
	recorded := drain(recorder)
	got := eventsWith(recorded, buytrackerv1alpha1.ReasonMemberOutOfService)
	if len(got) != 2 || !strings.Contains(got[0], "diverged") || !strings.Contains(got[1], "halted") {
		t.Fatalf("MemberOutOfService events %q, want one diverged then one halted", got)
	}
	expect(t, "replacements started", len(eventsWith(recorded, "MemberReplacementStarted")), 1)

	// A diverged member that agrees again serves again.
	f2, recorder2 := newIntegrityFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	f2.cluster.setNodeStatus("promo-1", func(st *adminapi.Status) { st.Incarnation, st.Diverged = "first-1", "digest differs" })
	f2.pass(t)
	f2.cluster.setNodeStatus("promo-1", func(st *adminapi.Status) { st.Incarnation = "first-1" })
	f2.pass(t)
	expect(t, "promo-1 in the status", f2.outOfService(t, "promo-1"), "in service")
	expect(t, "Degraded", f2.condition(t, buytrackerv1alpha1.ConditionDegraded).Reason, buytrackerv1alpha1.ReasonMembersHealthy)
	recorded = drain(recorder2)
	expect(t, "out-of-service events", len(eventsWith(recorded, buytrackerv1alpha1.ReasonMemberOutOfService)), 1)
	expect(t, "Recovered events", len(eventsWith(recorded, "Recovered")), 1)
}

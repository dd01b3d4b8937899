package controllers

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// staleCache answers Gets of the BuyTracker with an old copy, the way the
// manager's cache does for a moment after the controller's own write.
type staleCache struct {
	client.Client
	stale *buytrackerv1alpha1.BuyTracker
}

func (c staleCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if bt, ok := obj.(*buytrackerv1alpha1.BuyTracker); ok && key.Name == c.stale.Name {
		c.stale.DeepCopyInto(bt)
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// drain returns the Events recorded so far.
func drain(r *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-r.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestAStatusWriteFromAStaleCopyIsRetriedAndRecordsNoEvent(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	for range 4 {
		f.pass(t)
	}
	settled := f.buyTracker(t)
	if c := meta.FindStatusCondition(settled.Status.Conditions, buytrackerv1alpha1.ConditionDegraded); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("cluster not settled: Degraded %+v", c)
	}
	recorder := f.r.Recorder.(*events.FakeRecorder)
	drain(recorder)

	// promo-2 goes down; a pass from the latest copy reports it once.
	f.cluster.setDown("promo-2", true)
	f.pass(t)
	degraded := f.buyTracker(t)
	if got := drain(recorder); len(got) != 1 || !strings.Contains(got[0], "Degraded") {
		t.Fatalf("events after promo-2 went down: %q, want one Degraded", got)
	}

	// A pass that reads the copy from before that write must not patch the
	// status over it, nor record the Degraded event again.
	stale := *f.r
	stale.Client = staleCache{Client: f.s.client, stale: settled}
	result, err := stale.Reconcile(context.Background(), ctrl.Request{NamespacedName: f.key})
	if err != nil {
		t.Fatalf("reconcile from a stale copy: %v", err)
	}
	if result.RequeueAfter <= 0 || result.RequeueAfter > f.r.intervals().Progress {
		t.Errorf("requeue after %v, want a look again within %v", result.RequeueAfter, f.r.intervals().Progress)
	}
	if got := drain(recorder); len(got) != 0 {
		t.Errorf("events from the stale pass: %q, want none", got)
	}
	expect(t, "resourceVersion after the stale pass", f.buyTracker(t).ResourceVersion, degraded.ResourceVersion)

	// The next pass, from the latest copy, has nothing to change.
	f.pass(t)
	expect(t, "resourceVersion after a fresh pass", f.buyTracker(t).ResourceVersion, degraded.ResourceVersion)
	if got := drain(recorder); len(got) != 0 {
		t.Errorf("events from the fresh pass: %q, want none", got)
	}
}

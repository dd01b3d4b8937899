package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

const waitLong = 30 * time.Second

// managerFixture runs the operator in a manager, as in a cluster, against
// the envtest API server, the scripted admin API and the StatefulSet
// stand-in.
type managerFixture struct {
	s       *apiServer
	ns      string
	cluster *scriptedCluster
	standIn *statefulSetStandIn
}

func newManagerFixture(t *testing.T, size, leader int32) *managerFixture {
	t.Helper()
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	f := &managerFixture{s: s, ns: ns,
		cluster: newScriptedCluster(clusterNames{name: "promo", namespace: ns, clusterDomain: "cluster.local"}, size, leader),
		standIn: &statefulSetStandIn{c: s.client, ns: ns}}
	f.standIn.run(t)
	return f
}

// startOperator starts a manager; the returned function stops it and
// waits until it has.
func (f *managerFixture) startOperator(t *testing.T) (stop func()) {
	t.Helper()
	return f.startOperatorWith(t, func(*BuyTrackerReconciler) {})
}

// startOperatorWith starts a manager as startOperator does, after edit
// changed the reconciler.
func (f *managerFixture) startOperatorWith(t *testing.T, edit func(*BuyTrackerReconciler)) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(f.s.cfg, ctrl.Options{
		Scheme:                 f.s.scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		// Other tests' BuyTrackers live on in their namespaces (envtest
		// deletes nothing): this operator sees only its own.
		Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{f.ns: {}}},
	})
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	r := &BuyTrackerReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("buytracker-operator"), AdminClients: f.cluster.factory(),
		NodeImage: "buytracker/node:test", ClusterDomain: "cluster.local",
		Intervals: Intervals{Progress: 50 * time.Millisecond, Wait: 100 * time.Millisecond, Steady: 300 * time.Millisecond}}
	edit(r)
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatalf("setup: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (f *managerFixture) create(t *testing.T, replicas int32) {
	t.Helper()
	bt := &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "promo", Namespace: f.ns},
		Spec: buytrackerv1alpha1.BuyTrackerSpec{Replicas: ptr.To(replicas)}}
	if err := f.s.client.Create(context.Background(), bt); err != nil {
		t.Fatalf("create buytracker: %v", err)
	}
}

func (f *managerFixture) update(t *testing.T, mutate func(*buytrackerv1alpha1.BuyTracker)) {
	t.Helper()
	bt := f.get(t)
	patch := client.MergeFrom(bt.DeepCopy())
	mutate(bt)
	if err := f.s.client.Patch(context.Background(), bt, patch); err != nil {
		t.Fatalf("update buytracker: %v", err)
	}
}

func (f *managerFixture) get(t *testing.T) *buytrackerv1alpha1.BuyTracker {
	t.Helper()
	var bt buytrackerv1alpha1.BuyTracker
	if err := f.s.client.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: "promo"}, &bt); err != nil {
		t.Fatalf("get buytracker: %v", err)
	}
	return &bt
}

func (f *managerFixture) statefulSetReplicas(ctx context.Context) (int32, error) {
	var sts appsv1.StatefulSet
	if err := f.s.client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "promo"}, &sts); err != nil {
		return 0, err
	}
	return ptr.Deref(sts.Spec.Replicas, 0), nil
}

// waitCondition waits until the condition has the status and reason, for
// the BuyTracker's current generation.
func (f *managerFixture) waitCondition(t *testing.T, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	eventually(t, waitLong, fmt.Sprintf("%s=%s (%s)", typ, status, reason), func() error {
		bt := f.get(t)
		c := meta.FindStatusCondition(bt.Status.Conditions, typ)
		switch {
		case c == nil:
			return errors.New("no condition yet")
		case c.Status != status || c.Reason != reason || c.ObservedGeneration != bt.Generation:
			return fmt.Errorf("%s=%s (%s) %q at generation %d of %d", typ, c.Status, c.Reason, c.Message, c.ObservedGeneration, bt.Generation)
		}
		return nil
	})
}

// waitSettled waits until the operator reports a healthy cluster with
// nothing left to do.
func (f *managerFixture) waitSettled(t *testing.T) {
	t.Helper()
	f.waitCondition(t, buytrackerv1alpha1.ConditionProgressing, metav1.ConditionFalse, buytrackerv1alpha1.ReasonReconciled)
	f.waitCondition(t, buytrackerv1alpha1.ConditionAvailable, metav1.ConditionTrue, buytrackerv1alpha1.ReasonQuorum)
	f.waitCondition(t, buytrackerv1alpha1.ConditionDegraded, metav1.ConditionFalse, buytrackerv1alpha1.ReasonMembersHealthy)
}

// waitEvents waits until Events with every reason were recorded for the
// BuyTracker.
func (f *managerFixture) waitEvents(t *testing.T, reasons ...string) {
	t.Helper()
	eventually(t, waitLong, fmt.Sprintf("events %v", reasons), func() error {
		var list eventsv1.EventList
		if err := f.s.client.List(context.Background(), &list, client.InNamespace(f.ns)); err != nil {
			return err
		}
		var seen, described []string
		for _, e := range list.Items {
			if e.Regarding.Kind == "BuyTracker" && e.Regarding.Name == "promo" {
				seen = append(seen, e.Reason)
				described = append(described, fmt.Sprintf("%s rv=%s %q series=%v", e.Reason, e.Regarding.ResourceVersion, e.Note, e.Series))
			}
		}
		for _, r := range reasons {
			if !slices.Contains(seen, r) {
				return fmt.Errorf("no %s event among %q", r, described)
			}
		}
		return nil
	})
}

func TestStatusFollowsTheCluster(t *testing.T) {
	f := newManagerFixture(t, 3, 0)
	f.startOperator(t)
	f.create(t, 3)
	f.waitSettled(t)
	bt := f.get(t)
	expect(t, "leader", bt.Status.Leader, "promo-0")
	expect(t, "readyReplicas", bt.Status.ReadyReplicas, int32(3))
	expect(t, "observedGeneration", bt.Status.ObservedGeneration, bt.Generation)
	expect(t, "members", len(bt.Status.Members), 3)
	for _, m := range bt.Status.Members {
		if m.Suffrage != buytrackerv1alpha1.SuffrageVoter || !m.Ready {
			t.Errorf("member %+v is not a ready voter", m)
		}
	}
	f.waitEvents(t, "AdminTokenCreated", "StatefulSetCreated")

	f.cluster.setDown("promo-2", true)
	f.waitCondition(t, buytrackerv1alpha1.ConditionDegraded, metav1.ConditionTrue, buytrackerv1alpha1.ReasonMemberUnavailable)
	f.waitCondition(t, buytrackerv1alpha1.ConditionAvailable, metav1.ConditionTrue, buytrackerv1alpha1.ReasonQuorum)
	f.cluster.setDown("promo-1", true)
	f.waitCondition(t, buytrackerv1alpha1.ConditionAvailable, metav1.ConditionFalse, buytrackerv1alpha1.ReasonNoQuorum)
	f.cluster.setDown("promo-1", false)
	f.cluster.setDown("promo-2", false)
	f.waitSettled(t)
	f.waitEvents(t, "Degraded", "Unavailable", "Available", "Recovered")
	expect(t, "membership calls", f.cluster.callLog(), []string(nil))
}

func TestScaleUpAddsEachNewPodAsANonVoter(t *testing.T) {
	f := newManagerFixture(t, 3, 0)
	f.startOperator(t)
	f.create(t, 3)
	f.waitSettled(t)

	f.cluster.setHook(func(ctx context.Context, call string) error {
		// The StatefulSet grows before any member is added.
		if n, err := f.statefulSetReplicas(ctx); err != nil || n != 5 {
			t.Errorf("%s while the StatefulSet has %d pods (%v)", call, n, err)
		}
		return nil
	})
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Replicas = ptr.To[int32](5) })
	f.waitSettled(t)
	expect(t, "membership calls", f.cluster.callLog(), []string{"add promo-3", "add promo-4"})
	expect(t, "members", f.cluster.memberIDs(), []string{"promo-0:voter", "promo-1:voter", "promo-2:voter", "promo-3:voter", "promo-4:voter"})
	f.waitEvents(t, "Scaled", "MemberAdded")
}

func TestScaleDownSurvivesAnOperatorRestart(t *testing.T) {
	f := newManagerFixture(t, 5, 4)
	stopFirst := f.startOperator(t)
	f.create(t, 5)
	f.waitSettled(t)

	// The first operator is stopped in the middle of removing promo-4:
	// the node has made the change but the operator never hears back.
	interrupted := make(chan struct{})
	f.cluster.setHook(func(ctx context.Context, call string) error {
		if n, err := f.statefulSetReplicas(ctx); err != nil || n != 5 {
			t.Errorf("%s while the StatefulSet has %d pods (%v)", call, n, err)
		}
		if call == "remove promo-4" {
			close(interrupted)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Replicas = ptr.To[int32](3) })
	select {
	case <-interrupted:
	case <-time.After(waitLong):
		t.Fatalf("the operator never removed promo-4; calls: %v", f.cluster.callLog())
	}
	stopFirst()
	if n, _ := f.statefulSetReplicas(context.Background()); n != 5 {
		t.Fatalf("the StatefulSet shrank to %d before the removals finished", n)
	}

	f.startOperator(t)
	f.waitSettled(t)
	expect(t, "membership calls", f.cluster.callLog(), []string{"transfer promo-0", "remove promo-4", "remove promo-3"})
	expect(t, "members", f.cluster.memberIDs(), []string{"promo-0:voter", "promo-1:voter", "promo-2:voter"})
	eventually(t, waitLong, "StatefulSet at 3 pods", func() error {
		if n, err := f.statefulSetReplicas(context.Background()); err != nil || n != 3 {
			return fmt.Errorf("%d pods (%v)", n, err)
		}
		return nil
	})
	f.waitEvents(t, "LeadershipTransferred", "MemberRemoved", "Scaled")
	expect(t, "leader", f.get(t).Status.Leader, "promo-0")
}

func TestRollingUpdateRestartsTheLeaderLast(t *testing.T) {
	f := newManagerFixture(t, 3, 0)
	f.startOperator(t)
	f.create(t, 3)
	f.waitSettled(t)
	initial := f.standIn.createdPods()

	// Each membership call is logged with the pods restarted before it.
	var mu sync.Mutex
	var order []string
	f.cluster.setHook(func(_ context.Context, call string) error {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, fmt.Sprintf("%s after restarting %v", call, f.standIn.createdPods()[len(initial):]))
		return nil
	})
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Image = "buytracker/node:v2" })
	eventually(t, waitLong, "every pod restarted", func() error {
		if n := len(f.standIn.createdPods()) - len(initial); n < 3 {
			return fmt.Errorf("%d pods restarted", n)
		}
		return nil
	})
	f.waitSettled(t)
	restarted := f.standIn.createdPods()[len(initial):]
	expect(t, "restart order", restarted, []string{"promo-2", "promo-1", "promo-0"})
	mu.Lock()
	expect(t, "leadership moved once, off the last old pod", order, []string{"transfer promo-1 after restarting [promo-2 promo-1]"})
	mu.Unlock()
	f.waitEvents(t, "PodRestarted", "LeadershipTransferred")
	expect(t, "leader", f.get(t).Status.Leader, "promo-1")
}

package controllers

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// TestDeadBuyTrackerDoesNotDelayAHealthyOne runs two BuyTrackers in one
// operator: "dead", whose members' admin APIs never answer, and "promo", a
// healthy one. While a pass of the dead one is blocked on its admin calls,
// a change of the healthy one's spec must reach its children: a slow or
// dead cluster never holds up the others.
func TestDeadBuyTrackerDoesNotDelayAHealthyOne(t *testing.T) {
	f := newManagerFixture(t, 3, 0)
	dead := newBlackholeCluster()
	live := f.cluster.factory()
	factory := func(target AdminTarget) (AdminClient, error) {
		u, err := url.Parse(target.URL)
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(u.Hostname(), "dead-") {
			return blackholeNode{cluster: dead}, nil
		}
		return live(target)
	}
	f.startOperatorWith(t, func(r *BuyTrackerReconciler) {
		r.AdminClients = factory
		// Budgets longer than the wait below: the dead one's pass stays
		// blocked for the whole of it, so the healthy one can only make
		// progress beside it, never after it.
		r.AdminBudget = AdminBudget{Observe: 2 * waitLong, Read: 2 * waitLong}
	})
	ctx := context.Background()

	f.create(t, 3)
	f.waitSettled(t)
	deadBT := &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "dead", Namespace: f.ns},
		Spec: buytrackerv1alpha1.BuyTrackerSpec{Replicas: ptr.To(int32(3))}}
	if err := f.s.client.Create(ctx, deadBT); err != nil {
		t.Fatalf("create buytracker dead: %v", err)
	}
	var blocked []int
	eventually(t, waitLong, "a pass of dead blocked on an admin call", func() error {
		if blocked = dead.inFlight(); len(blocked) == 0 {
			return fmt.Errorf("no admin call of dead in flight")
		}
		return nil
	})

	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Service.Port = 9090 })
	eventually(t, waitLong, "promo's client Service on port 9090", func() error {
		var svc corev1.Service
		if err := f.s.client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "promo"}, &svc); err != nil {
			return err
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9090 {
			return fmt.Errorf("ports %v", svc.Spec.Ports)
		}
		return nil
	})
	if !dead.anyOpen(blocked) {
		t.Fatalf("promo's change was reflected only once the admin calls %v of dead had returned: one blocked pass held up every other BuyTracker", blocked)
	}
	for i, b := range dead.callBudgets() {
		if b == 0 || b > 2*waitLong {
			t.Errorf("admin call %d of dead had %s left, want a deadline within the budget %s", i, b, 2*waitLong)
		}
	}
}

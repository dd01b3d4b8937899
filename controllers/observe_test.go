package controllers

import (
	"context"
	"slices"
	"testing"
	"time"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// runningView is a view of size running, ready pods of testNames.
func runningView(size, desired int32) clusterView {
	v := clusterView{names: testNames, desired: desired, stsReplicas: size, pods: map[string]podView{}}
	for i := range size {
		v.pods[testNames.pod(i)] = podView{running: true, ready: true}
	}
	return v
}

func TestAskNodesBoundsEveryCallOfADeadCluster(t *testing.T) {
	dead := newBlackholeCluster()
	budget := AdminBudget{Observe: 200 * time.Millisecond, Read: 50 * time.Millisecond}
	r := &BuyTrackerReconciler{AdminBudget: budget,
		AdminClients: func(AdminTarget) (AdminClient, error) { return blackholeNode{cluster: dead}, nil }}
	bt := &buytrackerv1alpha1.BuyTracker{Status: buytrackerv1alpha1.BuyTrackerStatus{Leader: testNames.pod(0)}}

	nodes, cluster, _ := r.askNodes(context.Background(), bt, testNames, adminCredentials{}, runningView(3, 3))

	if len(nodes) != 0 || cluster != nil {
		t.Fatalf("a dead cluster answered: nodes %v, cluster %v", nodes, cluster)
	}
	// No node answered its status: asking them for the configuration too
	// would only wait out more deadlines.
	if calls := dead.callLog(); !slices.Equal(calls, []string{"GET /status", "GET /status", "GET /status"}) {
		t.Errorf("calls %v, want one GET /status per member and nothing else", calls)
	}
	for i, b := range dead.callBudgets() {
		if b == 0 || b > budget.Read {
			t.Errorf("call %d had %s left, want a deadline within the read budget %s", i, b, budget.Read)
		}
	}
	if open := dead.inFlight(); len(open) != 0 {
		t.Errorf("calls %v still in flight after the pass", open)
	}
}

func TestAskNodesAsksForTheConfigurationOnce(t *testing.T) {
	for _, tc := range []struct {
		name             string
		size, desired    int32
		wantLeaderLastIx uint64
	}{
		{name: "steady", size: 3, desired: 3},
		// Shrinking needs the leader's last index read before the
		// configuration: its status of this pass is.
		{name: "shrinking", size: 3, desired: 2, wantLeaderLastIx: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The leader is pod 1, the last known one pod 0: the pod that
			// says it leads is asked.
			sc := newScriptedCluster(testNames, tc.size, 1)
			r := &BuyTrackerReconciler{AdminClients: sc.factory()}
			bt := &buytrackerv1alpha1.BuyTracker{Status: buytrackerv1alpha1.BuyTrackerStatus{Leader: testNames.pod(0)}}
			creds := adminCredentials{token: "t", caBundle: newTestCA(t, time.Now().Add(time.Hour)).certPEM}

			nodes, cluster, leaderLastIndex := r.askNodes(context.Background(), bt, testNames, creds, runningView(tc.size, tc.desired))

			if len(nodes) != int(tc.size) || cluster == nil || cluster.Leader != testNames.pod(1) {
				t.Fatalf("nodes %d, cluster %+v: want every status and the leader's configuration", len(nodes), cluster)
			}
			if sc.clusterCalls != 1 {
				t.Errorf("%d GET /cluster calls in one pass, want 1", sc.clusterCalls)
			}
			if leaderLastIndex != tc.wantLeaderLastIx {
				t.Errorf("leader's last index %d, want %d", leaderLastIndex, tc.wantLeaderLastIx)
			}
		})
	}
}

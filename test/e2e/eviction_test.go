//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// leaderEvicted drains the leader's pod the way `kubectl drain` does, through
// the Eviction API, while a client writes. A follower is evicted first, which
// spends the PodDisruptionBudget's one disruption; the leader's eviction is
// then refused (429) until the follower is back and ready, and allowed after.
// The leader hands over, the StatefulSet brings the pod back on its own
// volume, and the count is exactly what was acknowledged.
func (e *env) leaderEvicted(ctx context.Context, t *testing.T) {
	token, url, before, c := e.snapshotCluster(ctx, t)
	leader, term := c.Leader, c.Term
	var follower string
	for _, m := range c.Members {
		if !m.Leader {
			follower = m.ID
			break
		}
	}
	pods, err := e.pods(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	leaderUID, followerUID := pods[leader].UID, pods[follower].UID
	pvc, err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, "data-"+leader, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Three voters may lose one: the budget must say so before the drain.
	e.awaitDisruptionsAllowed(ctx, t, 3, 1)

	w := startWriter(url, "evict", 8)
	defer w.Stop()
	w.awaitAcks(ctx, t, 50, "the writer's first 50 acknowledgements")

	t.Logf("evicting the follower %s (leader %s, term %d)", follower, leader, term)
	if err := e.evict(ctx, follower); err != nil {
		t.Fatalf("evict %s with one disruption allowed: %v", follower, err)
	}
	// The eviction spent the budget in the same request, so a second
	// member's eviction is refused at once and the leader stays.
	err = e.evict(ctx, leader)
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("evict the leader %s while %s is being evicted: %v, want 429 TooManyRequests", leader, follower, err)
	}
	t.Logf("the leader's eviction was refused: %v", err)
	pdb, err := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).Get(ctx, btName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pdb.Status.DisruptionsAllowed != 0 {
		t.Errorf("PDB after one eviction: %s, want 0 disruptions allowed", describeBudget(pdb))
	}
	if p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, leader, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if p.UID != leaderUID || p.DeletionTimestamp != nil {
		t.Fatalf("the leader's pod %s was deleted although its eviction was refused", leader)
	}

	// Retry as a drain does, until the budget allows it: that is only once
	// the follower is back and ready.
	refused := 1
	eventually(ctx, t, 4*time.Minute, "the budget to allow the leader's eviction", func(ctx context.Context) (bool, string, error) {
		bt, err := e.getBuyTracker(ctx, btName)
		if err != nil {
			return false, err.Error(), nil
		}
		if l := bt.Status.Leader; l != "" && l != leader {
			return false, "", fmt.Errorf("leadership moved from %s to %s before the eviction", leader, l)
		}
		err = e.evict(ctx, leader)
		if apierrors.IsTooManyRequests(err) {
			refused++
			return false, fmt.Sprintf("refused %d times, last: %v; writer: %s", refused, err, w.progress()), nil
		}
		if err != nil {
			return false, "", fmt.Errorf("evict %s: %w", leader, err)
		}
		return true, "", nil
	})
	if p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, follower, metav1.GetOptions{}); err != nil {
		t.Errorf("%s when the leader's eviction was allowed: %v", follower, err)
	} else if p.UID == followerUID || !podReady(*p) {
		t.Errorf("the leader's eviction was allowed before %s was back (same pod %v, ready %v)", follower, p.UID == followerUID, podReady(*p))
	}
	t.Logf("the leader %s evicted after %d refusals; writer: %s", leader, refused, w.progress())

	newLeader := e.awaitNewLeader(ctx, t, token, leader, term)
	w.awaitAcks(ctx, t, w.acked.Load()+200, "200 more acknowledged writes under the new leader")
	t.Logf("new leader %s; writer: %s", newLeader, w.progress())
	e.awaitPodReplaced(ctx, t, leader, leaderUID, 3*time.Minute)
	e.checkRestartedOnOwnVolume(ctx, t, leader, pvc)

	acked := e.stopAndCheckCount(ctx, t, w, url, before, "after the leader's pod was evicted")
	c = e.waitSettled(ctx, t, btName, 3, 2*time.Minute)
	e.awaitDisruptionsAllowed(ctx, t, 3, 1)
	t.Logf("after: %s, %d purchases acknowledged during the test (retried attempts %d)", describeMembers(c), acked, w.retries.Load())
}

// evict asks the API server to evict a pod of the test namespace: the
// PodDisruptionBudget decides, and a refusal is 429 TooManyRequests.
func (e *env) evict(ctx context.Context, pod string) error {
	return e.kube.PolicyV1().Evictions(e.ns).Evict(ctx, &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: e.ns},
	})
}

// awaitDisruptionsAllowed waits until the BuyTracker's PodDisruptionBudget,
// as the disruption controller last computed it, counts healthy pods all
// healthy and allows exactly allowed disruptions.
func (e *env) awaitDisruptionsAllowed(ctx context.Context, t *testing.T, healthy, allowed int32) {
	t.Helper()
	what := fmt.Sprintf("the PDB to count %d healthy pods and allow %d disruptions", healthy, allowed)
	eventually(ctx, t, 2*time.Minute, what, func(ctx context.Context) (bool, string, error) {
		pdb, err := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).Get(ctx, btName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		st := pdb.Status
		done := st.ObservedGeneration == pdb.Generation && st.ExpectedPods == healthy &&
			st.CurrentHealthy == healthy && st.DisruptionsAllowed == allowed
		return done, describeBudget(pdb), nil
	})
}

func describeBudget(pdb *policyv1.PodDisruptionBudget) string {
	st := pdb.Status
	return fmt.Sprintf("generation %d observed %d, maxUnavailable %v, expected %d, healthy %d, desired %d, disruptions allowed %d, disrupted %v",
		pdb.Generation, st.ObservedGeneration, pdb.Spec.MaxUnavailable, st.ExpectedPods, st.CurrentHealthy, st.DesiredHealthy,
		st.DisruptionsAllowed, st.DisruptedPods)
}

//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const singleBT = "single"

// drainOneMember drains the node of a one-member BuyTracker's pod as
// `kubectl drain` does (cordon, then the Eviction API, which honours
// disruption budgets): a one-member BuyTracker has no budget that allows
// nothing, so the eviction is granted at once rather than hanging the drain;
// the pod comes back on its volume once the node is uncordoned, with every
// purchase.
func (e *env) drainOneMember(ctx context.Context, t *testing.T) {
	bt := e.newBuyTracker(singleBT, 1)
	if err := e.k8s.Create(ctx, bt); err != nil {
		t.Fatal(err)
	}
	e.waitSettled(ctx, t, singleBT, 1, 4*time.Minute)
	url := e.waitServiceReady(ctx, t, singleBT, 1)
	w := startWriter(url, "single", 2)
	w.awaitAcks(ctx, t, 100, "100 purchases on the one-member BuyTracker")
	acked, failures := w.Stop()
	for _, f := range failures {
		t.Error(f)
	}
	if _, err := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).Get(ctx, singleBT, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a one-member BuyTracker has a disruption budget (err %v): a drain would hang on it", err)
	}

	pod := singleBT + "-0"
	p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node := p.Spec.NodeName
	setUnschedulable := func(ctx context.Context, v bool) error {
		patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, v)
		_, err := e.kube.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}
	if err := setUnschedulable(ctx, true); err != nil {
		t.Fatal(err)
	}
	uncordoned := false
	uncordon := func() {
		if !uncordoned {
			uncordoned = true
			if err := setUnschedulable(context.Background(), false); err != nil {
				t.Errorf("uncordon %s: %v", node, err)
			}
		}
	}
	defer uncordon()
	t.Logf("cordoned %s; evicting %s", node, pod)
	if err := e.evict(ctx, pod); err != nil {
		t.Fatalf("the eviction of %s, the drain's step, was refused: %v", pod, err)
	}
	eventually(ctx, t, 2*time.Minute, pod+" to be gone or replaced", func(ctx context.Context) (bool, string, error) {
		q, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, pod, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		return q.UID != p.UID, fmt.Sprintf("pod %s phase %s", q.UID, q.Status.Phase), nil
	})
	uncordon()
	e.waitSettled(ctx, t, singleBT, 1, 4*time.Minute)
	url = e.waitServiceReady(ctx, t, singleBT, 1)
	if got := linearizableTotal(ctx, t, url); got != uint64(acked) {
		t.Fatalf("after the drain the one-member BuyTracker counts %d purchases, %d were acknowledged", got, acked)
	}
	q, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range q.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName != "data-"+pod {
			t.Errorf("%s came back on claim %s, want data-%s", pod, v.PersistentVolumeClaim.ClaimName, pod)
		}
	}
	if err := e.k8s.Delete(ctx, bt); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, 2*time.Minute, "the one-member BuyTracker's pod to go", func(ctx context.Context) (bool, string, error) {
		_, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, pod, metav1.GetOptions{})
		return apierrors.IsNotFound(err), "still there", nil
	})
}

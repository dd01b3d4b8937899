//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// lostVolume deletes a follower's pod together with its PersistentVolumeClaim
// under writes (a lost volume): the StatefulSet gives the pod a new, empty
// volume, the node learns from its peers that the cluster exists, comes back
// as a new incarnation (a non-voter first, so it votes with none of its
// forgotten votes), and ends a voter. Every acknowledged purchase is kept,
// exactly once.
func (e *env) lostVolume(ctx context.Context, t *testing.T) {
	token, url, before, c := e.snapshotCluster(ctx, t)
	var victim string
	for _, m := range c.Members {
		if !m.Leader {
			victim = m.ID
			break
		}
	}
	claim := "data-" + victim
	oldPVC, err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	w := startWriter(url, "lostvolume", 8)
	defer w.Stop()
	w.awaitAcks(ctx, t, 50, "the writer's first 50 acknowledgements")
	t.Logf("deleting %s with its claim %s (volume %s)", victim, claim, oldPVC.Spec.VolumeName)
	if err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).Delete(ctx, claim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.kube.CoreV1().Pods(e.ns).Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// The claim is protected while the old pod uses it; a pod the
	// StatefulSet recreates before the claim is gone waits on the dying
	// claim, and is deleted again so that it gets a new one.
	eventually(ctx, t, 4*time.Minute, victim+" back ready on a new volume", func(ctx context.Context) (bool, string, error) {
		pvc, err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, claim, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, "no claim yet", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, victim, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		if pvc.UID == oldPVC.UID {
			if p.Status.Phase == corev1.PodPending && p.DeletionTimestamp == nil {
				_ = e.kube.CoreV1().Pods(e.ns).Delete(ctx, victim, metav1.DeleteOptions{})
			}
			return false, "the old claim is still there (deleting)", nil
		}
		return podReady(*p), fmt.Sprintf("pod phase %s ready %v, claim %s", p.Status.Phase, podReady(*p), pvc.UID), nil
	})
	w.awaitAcks(ctx, t, w.acked.Load()+200, "200 more acknowledged writes with the new incarnation back")

	eventually(ctx, t, 3*time.Minute, victim+" a voter again", func(ctx context.Context) (bool, string, error) {
		c, err := e.raftCluster(ctx, btName, token)
		if err != nil {
			return false, err.Error(), nil
		}
		for _, m := range c.Members {
			if m.ID == victim {
				return m.Suffrage == "voter", describeMembers(c), nil
			}
		}
		return false, describeMembers(c), nil
	})
	logs, err := e.podLogs(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	// It knows the cluster exists from its peers, or (under the operator,
	// once the cluster was Available) from the cluster-state ConfigMap.
	knows := strings.Contains(logs, "The cluster exists") || strings.Contains(logs, "The cluster was created")
	if !knows || !strings.Contains(logs, "Rejoined the cluster as a new incarnation") ||
		strings.Contains(logs, "Bootstrapping the cluster") {
		t.Errorf("%s did not come back as a new incarnation; its log:\n%s", victim, tail(logs, 30))
	}
	acked := e.stopAndCheckCount(ctx, t, w, url, before, "after "+victim+" lost its volume")
	c = e.waitSettled(ctx, t, btName, 3, 2*time.Minute)
	t.Logf("after: %s, %d purchases acknowledged during the test", describeMembers(c), acked)
}

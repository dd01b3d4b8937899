//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// rotateCAUnderWrites asks the operator for a new CA while a client
// writes: it publishes the new CA next to the old, re-issues every member
// certificate, and drops the old CA, each step waiting for the pods to
// read the last (about two minutes each). The members reload their files
// without a restart; no write fails beyond the client's retries, and the
// count is exactly what was acknowledged.
func (e *env) rotateCAUnderWrites(ctx context.Context, t *testing.T) {
	_, url, before, _ := e.snapshotCluster(ctx, t)
	secretData := func(name, key string) []byte {
		t.Helper()
		s, err := e.kube.CoreV1().Secrets(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Data[key]
	}
	oldCA := secretData(btName+"-ca", "tls.crt")
	oldCerts := map[string][]byte{}
	for _, pod := range podNames(btName, 3) {
		oldCerts[pod] = secretData(pod+"-tls", "tls.crt")
	}
	restarts := e.restartCounts(ctx, t)

	w := startWriter(url, "rotate", 4)
	defer w.Stop()
	w.awaitAcks(ctx, t, 50, "the writer's first 50 acknowledgements")

	bt, err := e.getBuyTracker(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	request := fmt.Sprintf("e2e-%d", time.Now().Unix())
	patch := client.MergeFrom(bt.DeepCopy())
	if bt.Annotations == nil {
		bt.Annotations = map[string]string{}
	}
	bt.Annotations[buytrackerv1alpha1.AnnotationRotateCA] = request
	if err := e.k8s.Patch(ctx, bt, patch); err != nil {
		t.Fatalf("annotate %s: %v", buytrackerv1alpha1.AnnotationRotateCA, err)
	}
	var steps []string
	eventually(ctx, t, 12*time.Minute, "the CA rotation to finish", func(ctx context.Context) (bool, string, error) {
		bt, err := e.getBuyTracker(ctx, btName)
		if err != nil {
			return false, err.Error(), nil
		}
		st := bt.Status.TLS
		if st == nil {
			return false, "no status.tls", nil
		}
		if len(steps) == 0 || steps[len(steps)-1] != st.CARotation {
			steps = append(steps, st.CARotation)
		}
		done := st.LastCARotation == request && st.CARotation == ""
		return done, fmt.Sprintf("rotation %q at step %q; writer: %s", st.LastCARotation, st.CARotation, w.progress()), nil
	})
	t.Logf("rotation steps seen: %q; writer: %s", steps, w.progress())

	newCA := secretData(btName+"-ca", "tls.crt")
	if bytes.Equal(newCA, oldCA) || !bytes.Equal(secretData(btName+"-ca", "ca.crt"), newCA) {
		t.Fatal("the CA Secret does not hold a new CA alone")
	}
	for pod, old := range oldCerts {
		if bytes.Equal(secretData(pod+"-tls", "tls.crt"), old) {
			t.Errorf("%s: certificate not re-issued", pod)
		}
		if !bytes.Equal(secretData(pod+"-tls", "ca.crt"), newCA) {
			t.Errorf("%s: trusts more or other than the new CA", pod)
		}
	}
	w.awaitAcks(ctx, t, w.acked.Load()+200, "200 more acknowledged writes on the new certificates")
	for pod, n := range e.restartCounts(ctx, t) {
		if n != restarts[pod] {
			t.Errorf("%s restarted during the rotation (%d restarts, %d before): certificates must reload in place", pod, n, restarts[pod])
		}
	}
	acked := e.stopAndCheckCount(ctx, t, w, url, before, "after the CA rotation")
	c := e.waitSettled(ctx, t, btName, 3, 2*time.Minute)
	t.Logf("after: %s, %d purchases acknowledged during the rotation", describeMembers(c), acked)
}

// restartCounts is the node container's restart count, by pod.
func (e *env) restartCounts(ctx context.Context, t *testing.T) map[string]int32 {
	t.Helper()
	pods, err := e.pods(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int32{}
	for name, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			out[name] += cs.RestartCount
		}
	}
	return out
}

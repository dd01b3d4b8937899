//go:build e2e

// Package e2e tests buytracker on a real Kubernetes cluster: the chart
// installs the operator, the operator runs real node pods with real
// volumes, and the suite talks to them through the client Service and
// through port-forwards to each pod. It runs against whatever cluster
// KUBECONFIG names; `make test-e2e` makes a kind cluster for it.
package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }

const btName = "promo"

// TestEndToEnd runs the scenarios in order on one BuyTracker; each step
// starts from the state the one before left, so the first failure stops
// the run (and the pods' logs are written to the artifacts directory).
func TestEndToEnd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	t.Cleanup(func() {
		if !t.Failed() {
			e.deleteNamespace(t)
		}
	})
	t.Cleanup(func() { e.dumpOnFailure(t, e.ns, e.opts.operatorNamespace) })

	var backup *backupRecord // from the scheduled backup, for the restore
	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"InstallWithChart", func(t *testing.T) { e.installChart(ctx, t) }},
		{"InvalidBuyTrackerRejected", func(t *testing.T) { e.invalidRejected(ctx, t) }},
		{"ThreeReplicasAvailable", func(t *testing.T) { e.threeReplicas(ctx, t) }},
		{"ThousandConcurrentBuys", func(t *testing.T) { e.thousandBuys(ctx, t) }},
		{"KubectlPlugin", func(t *testing.T) { e.pluginCommands(ctx, t) }},
		{"LeaderPodDeleted", func(t *testing.T) { e.leaderPodDeleted(ctx, t) }},
		{"PodDeletedWithItsVolume", func(t *testing.T) { e.lostVolume(ctx, t) }},
		{"LeaderEvictedWithinBudget", func(t *testing.T) { e.leaderEvicted(ctx, t) }},
		{"OneMemberDrained", func(t *testing.T) { e.drainOneMember(ctx, t) }},
		{"ScaleThreeToFiveToThree", func(t *testing.T) { e.scale(ctx, t) }},
		{"RollingImageChange", func(t *testing.T) { e.rollingImageChange(ctx, t) }},
		{"RotateCAUnderWrites", func(t *testing.T) { e.rotateCAUnderWrites(ctx, t) }},
		{"ScheduledBackupToObjectStore", func(t *testing.T) { backup = e.scheduledBackup(ctx, t) }},
		{"DeleteRemovesChildren", func(t *testing.T) { e.deleteRemovesChildren(ctx, t) }},
		{"RestoreFromBackup", func(t *testing.T) { e.restoreFromBackup(ctx, t, backup) }},
		{"QuorumLostAndRecovered", func(t *testing.T) { e.quorumLostAndRecovered(ctx, t) }},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			t.Fatalf("step %s failed; later steps depend on it", s.name)
		}
	}
}

// installChart installs the operator with the Helm chart and waits for it.
func (e *env) installChart(ctx context.Context, t *testing.T) {
	repo, tag, ok := strings.Cut(e.opts.operatorImage, ":")
	if !ok {
		t.Fatalf("operator image %q has no tag", e.opts.operatorImage)
	}
	out, err := run(ctx, 5*time.Minute, e.opts.helm, "upgrade", "--install", "buytracker", e.opts.chart,
		"--namespace", e.opts.operatorNamespace, "--create-namespace",
		"--set", "image.repository="+repo, "--set", "image.tag="+tag, "--set", "image.pullPolicy=IfNotPresent",
		"--set", "nodeImage="+e.opts.nodeImage,
		"--wait", "--timeout", "4m")
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	t.Logf("helm: %s", firstLine(out))

	eventually(ctx, t, time.Minute, "the BuyTracker CRD to be established", func(ctx context.Context) (bool, string, error) {
		var list buytrackerv1alpha1.BuyTrackerList
		if err := e.k8s.List(ctx, &list, client.InNamespace(e.ns)); err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	eventually(ctx, t, 2*time.Minute, "the operator Deployment to be available", func(ctx context.Context) (bool, string, error) {
		deps, err := e.kube.AppsV1().Deployments(e.opts.operatorNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		if len(deps.Items) != 1 {
			return false, fmt.Sprintf("%d deployments in %s, want 1", len(deps.Items), e.opts.operatorNamespace), nil
		}
		d := deps.Items[0]
		if d.Status.AvailableReplicas < 1 {
			return false, fmt.Sprintf("%s: %d available", d.Name, d.Status.AvailableReplicas), nil
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Image != e.opts.operatorImage {
				t.Errorf("operator container %s runs %s, want %s", c.Name, c.Image, e.opts.operatorImage)
			}
		}
		return true, "", nil
	})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// invalidRejected: the API server refuses a BuyTracker whose size Raft
// cannot use, and nothing is created.
func (e *env) invalidRejected(ctx context.Context, t *testing.T) {
	for _, replicas := range []int32{2, 0, 11} {
		bt := e.newBuyTracker(fmt.Sprintf("invalid-%d", replicas), replicas)
		err := e.k8s.Create(ctx, bt)
		if err == nil {
			t.Errorf("replicas=%d: created, want rejected", replicas)
			continue
		}
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "replicas") {
			t.Errorf("replicas=%d: error %v, want Invalid naming spec.replicas", replicas, err)
		}
		if _, err := e.getBuyTracker(ctx, bt.Name); !apierrors.IsNotFound(err) {
			t.Errorf("replicas=%d: after the rejection, get = %v, want NotFound", replicas, err)
		}
	}
	bad := e.newBuyTracker("invalid-service", 3)
	bad.Spec.Service.Type = "Magic"
	if err := e.k8s.Create(ctx, bad); !apierrors.IsInvalid(err) {
		t.Errorf("service type Magic: error %v, want Invalid", err)
	}
	sts, err := e.kube.AppsV1().StatefulSets(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sts.Items) != 0 {
		t.Errorf("%d StatefulSets exist after rejected BuyTrackers, want 0", len(sts.Items))
	}
}

// threeReplicas applies a 3-replica BuyTracker and waits for it.
func (e *env) threeReplicas(ctx context.Context, t *testing.T) {
	if err := e.k8s.Create(ctx, e.newBuyTracker(btName, 3)); err != nil {
		t.Fatalf("create BuyTracker: %v", err)
	}
	c := e.waitSettled(ctx, t, btName, 3, 4*time.Minute)
	t.Logf("available: %s", describeMembers(c))

	sts, err := e.kube.AppsV1().StatefulSets(e.ns).Get(ctx, btName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range sts.Spec.Template.Spec.Containers {
		if ct.Image != e.opts.nodeImage {
			t.Errorf("node container %s runs %s, want the operator's default %s (from the chart's nodeImage)", ct.Name, ct.Image, e.opts.nodeImage)
		}
	}
}

// thousandBuys sends 1,000 purchases concurrently through the client
// Service; every one is acknowledged with its own dense purchase id, and
// every pod then reads 1,000.
func (e *env) thousandBuys(ctx context.Context, t *testing.T) {
	url := e.waitServiceReady(ctx, t, btName, 3)
	const n, workers = 1000, 50
	hc := newHTTPClient(workers)
	var (
		mu   sync.Mutex
		ids  = map[uint64]bool{}
		errs []string
		wg   sync.WaitGroup
	)
	jobs := make(chan int)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				res, err := buy(rctx, hc, url, fmt.Sprintf("thousand-%d", i), w+1)
				cancel()
				mu.Lock()
				if err != nil {
					errs = append(errs, err.Error())
				} else {
					ids[res.PurchaseID] = true
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d purchases failed; first: %s", len(errs), n, errs[0])
	}
	for id := uint64(1); id <= n; id++ {
		if !ids[id] {
			t.Fatalf("purchase ids are not 1..%d: %d missing (%d distinct ids)", n, id, len(ids))
		}
	}
	e.readFromEveryPod(ctx, t, btName, 3, n)
}

// leaderPodDeleted deletes the leader's pod while a client writes: another
// member takes over, writes go on, and the pod comes back on its own
// volume with its data and its place in the configuration.
func (e *env) leaderPodDeleted(ctx context.Context, t *testing.T) {
	token, url, before, c := e.snapshotCluster(ctx, t)
	oldLeader, oldTerm := c.Leader, c.Term
	pvc, err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, "data-"+oldLeader, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldPod, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, oldLeader, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	w := startWriter(url, "leaderdel", 8)
	defer w.Stop()
	w.awaitAcks(ctx, t, 50, "the writer's first 50 acknowledgements")
	t.Logf("deleting the leader's pod %s (term %d)", oldLeader, oldTerm)
	if err := e.kube.CoreV1().Pods(e.ns).Delete(ctx, oldLeader, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	newLeader := e.awaitNewLeader(ctx, t, token, oldLeader, oldTerm)
	w.awaitAcks(ctx, t, w.acked.Load()+200, "200 more acknowledged writes under the new leader")
	t.Logf("new leader %s; writer: %s", newLeader, w.progress())

	e.awaitPodReplaced(ctx, t, oldLeader, oldPod.UID, 3*time.Minute)
	e.checkRestartedOnOwnVolume(ctx, t, oldLeader, pvc)

	acked := e.stopAndCheckCount(ctx, t, w, url, before, "after the leader's pod was deleted")
	c = e.waitSettled(ctx, t, btName, 3, 2*time.Minute)
	t.Logf("after: %s, %d purchases acknowledged during the test", describeMembers(c), acked)
}

// awaitNewLeader waits until a pod other than oldLeader leads in a term
// after oldTerm, asking only the other pods, and returns it.
func (e *env) awaitNewLeader(ctx context.Context, t *testing.T, token, oldLeader string, oldTerm uint64) string {
	t.Helper()
	var newLeader string
	eventually(ctx, t, 2*time.Minute, "a new leader among the other pods", func(ctx context.Context) (bool, string, error) {
		c, err := e.raftCluster(ctx, btName, token, oldLeader)
		if err != nil {
			return false, err.Error(), nil
		}
		if c.Leader == "" || c.Leader == oldLeader || c.Term <= oldTerm {
			return false, describeMembers(c), nil
		}
		newLeader = c.Leader
		return true, "", nil
	})
	return newLeader
}

// awaitPodReplaced waits until the StatefulSet has replaced the pod whose
// UID was oldUID with a new one that is ready.
func (e *env) awaitPodReplaced(ctx context.Context, t *testing.T, pod string, oldUID types.UID, timeout time.Duration) {
	t.Helper()
	eventually(ctx, t, timeout, pod+" to come back ready", func(ctx context.Context) (bool, string, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		if p.UID == oldUID {
			return false, "the old pod is still there", nil
		}
		return podReady(*p), fmt.Sprintf("new pod %s phase %s ready %v", p.UID, p.Status.Phase, podReady(*p)), nil
	})
}

// checkRestartedOnOwnVolume checks that a replaced pod runs on the claim it
// had (so the same volume) and that its node found its Raft state there
// instead of bootstrapping or waiting to be added again.
func (e *env) checkRestartedOnOwnVolume(ctx context.Context, t *testing.T, pod string, pvc *corev1.PersistentVolumeClaim) {
	t.Helper()
	pvcNow, err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, pvc.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pvcNow.UID != pvc.UID || pvcNow.Spec.VolumeName != pvc.Spec.VolumeName {
		t.Errorf("PVC %s is %s/%s now, was %s/%s", pvc.Name, pvcNow.UID, pvcNow.Spec.VolumeName, pvc.UID, pvc.Spec.VolumeName)
	}
	logs, err := e.podLogs(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "Existing Raft state found") || strings.Contains(logs, "Bootstrapping the cluster") ||
		strings.Contains(logs, "waiting to be added") {
		t.Errorf("%s did not restart from its own Raft state; its log:\n%s", pod, tail(logs, 20))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (e *env) setReplicas(ctx context.Context, t *testing.T, replicas int32) {
	t.Helper()
	bt, err := e.getBuyTracker(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(bt.DeepCopy())
	bt.Spec.Replicas = &replicas
	if err := e.k8s.Patch(ctx, bt, patch); err != nil {
		t.Fatalf("set replicas %d: %v", replicas, err)
	}
}

// scale grows the cluster to five voters and shrinks it back to three,
// while a client writes; the claims of the removed pods stay, as the
// default policy (Retain) says.
func (e *env) scale(ctx context.Context, t *testing.T) {
	url, err := e.serviceURL(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	before := linearizableTotal(ctx, t, url)
	w := startWriter(url, "scale", 4)
	defer w.Stop()

	e.setReplicas(ctx, t, 5)
	c := e.waitSettled(ctx, t, btName, 5, 5*time.Minute)
	t.Logf("scaled up: %s; writer: %s", describeMembers(c), w.progress())

	e.setReplicas(ctx, t, 3)
	c = e.waitSettled(ctx, t, btName, 3, 5*time.Minute)
	t.Logf("scaled down: %s; writer: %s", describeMembers(c), w.progress())

	eventually(ctx, t, 2*time.Minute, "pods 3 and 4 to be gone", func(ctx context.Context) (bool, string, error) {
		pods, err := e.pods(ctx, btName)
		if err != nil {
			return false, err.Error(), nil
		}
		names := make([]string, 0, len(pods))
		for n := range pods {
			names = append(names, n)
		}
		sort.Strings(names)
		return len(pods) == 3, fmt.Sprintf("pods %v", names), nil
	})
	for _, pod := range []string{btName + "-3", btName + "-4"} {
		if _, err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, "data-"+pod, metav1.GetOptions{}); err != nil {
			t.Errorf("PVC data-%s after scaling down: %v, want it retained", pod, err)
		}
	}
	e.stopAndCheckCount(ctx, t, w, url, before, "after 3 -> 5 -> 3")
}

// rollingImageChange changes the node image while a client with retries
// and Idempotency-Keys writes all the time: the pods restart one at a
// time, the leader last, and the count is exactly the acknowledged writes.
func (e *env) rollingImageChange(ctx context.Context, t *testing.T) {
	_, url, before, c := e.snapshotCluster(ctx, t)
	leader := c.Leader
	pods, err := e.pods(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	oldUIDs := map[string]types.UID{}
	for n, p := range pods {
		oldUIDs[n] = p.UID
	}

	// Record the order in which the pods are replaced.
	var (
		mu      sync.Mutex
		order   []string
		watchWG sync.WaitGroup
	)
	wctx, stopWatch := context.WithCancel(ctx)
	watchWG.Add(1)
	go func() {
		defer watchWG.Done()
		seen := map[string]bool{}
		for wctx.Err() == nil {
			pods, err := e.pods(wctx, btName)
			if err == nil {
				for n, p := range pods {
					if old, ok := oldUIDs[n]; ok && (p.UID != old || p.DeletionTimestamp != nil) && !seen[n] {
						seen[n] = true
						mu.Lock()
						order = append(order, n)
						mu.Unlock()
					}
				}
				for n := range oldUIDs {
					if _, ok := pods[n]; !ok && !seen[n] {
						seen[n] = true
						mu.Lock()
						order = append(order, n)
						mu.Unlock()
					}
				}
			}
			select {
			case <-wctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	w := startWriter(url, "rolling", 8)
	defer w.Stop()
	w.awaitAcks(ctx, t, 50, "the writer's first 50 acknowledgements")

	bt, err := e.getBuyTracker(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(bt.DeepCopy())
	bt.Spec.Image = e.opts.nodeImageRolled
	if err := e.k8s.Patch(ctx, bt, patch); err != nil {
		t.Fatalf("set image: %v", err)
	}
	t.Logf("image -> %s; leader %s", e.opts.nodeImageRolled, leader)

	eventually(ctx, t, 8*time.Minute, "every pod to run "+e.opts.nodeImageRolled, func(ctx context.Context) (bool, string, error) {
		pods, err := e.pods(ctx, btName)
		if err != nil {
			return false, err.Error(), nil
		}
		var state []string
		done := len(pods) == 3
		for n, p := range pods {
			img := p.Spec.Containers[0].Image
			state = append(state, fmt.Sprintf("%s:%s ready=%v", n, img, podReady(p)))
			if img != e.opts.nodeImageRolled || !podReady(p) || p.UID == oldUIDs[n] {
				done = false
			}
		}
		sort.Strings(state)
		return done, strings.Join(state, " ") + "; writer: " + w.progress(), nil
	})
	c = e.waitSettled(ctx, t, btName, 3, 3*time.Minute)
	stopWatch()
	watchWG.Wait()
	acked := e.stopAndCheckCount(ctx, t, w, url, before, "after the rolling update")
	mu.Lock()
	defer mu.Unlock()
	t.Logf("replaced in order %v; now %s; writer acknowledged %d (retried attempts %d)", order, describeMembers(c), acked, w.retries.Load())
	if len(order) != 3 {
		t.Errorf("pods replaced: %v, want all three", order)
	} else if order[2] != leader {
		t.Errorf("pods replaced in order %v: the leader %s was not last", order, leader)
	}
}

// snapshotCluster is where a disturbing step starts from: the admin token,
// the Service's URL, the purchases recorded so far and the Raft configuration.
func (e *env) snapshotCluster(ctx context.Context, t *testing.T) (token, url string, before uint64, c *adminapi.Cluster) {
	t.Helper()
	token, err := e.adminToken(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	url, err = e.serviceURL(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	before = linearizableTotal(ctx, t, url)
	c, err = e.raftCluster(ctx, btName, token)
	if err != nil {
		t.Fatal(err)
	}
	return token, url, before, c
}

// stopAndCheckCount stops the writer and checks that the cluster holds
// exactly the purchases it had before plus those the writer had
// acknowledged, read linearizably through the Service and on every pod.
func (e *env) stopAndCheckCount(ctx context.Context, t *testing.T, w *writer, url string, before uint64, when string) int64 {
	t.Helper()
	return e.stopAndCheckCountOf(ctx, t, btName, w, url, before, when)
}

// deleteRemovesChildren deletes the BuyTracker: every child goes with it,
// except the data claims, which the default policy retains.
func (e *env) deleteRemovesChildren(ctx context.Context, t *testing.T) {
	bt, err := e.getBuyTracker(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	claimsBefore, err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.k8s.Delete(ctx, bt); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: e.ns}
	children := []struct {
		name string
		obj  client.Object
	}{
		{btName, &appsv1.StatefulSet{}},
		{btName, &corev1.Service{}},
		{btName + "-peers", &corev1.Service{}},
		{btName, &policyv1.PodDisruptionBudget{}},
		{btName + "-admin-token", &corev1.Secret{}},
		{btName + "-ca", &corev1.Secret{}},
		{btName + "-0-tls", &corev1.Secret{}},
		{btName, &networkingv1.NetworkPolicy{}},
		{btName, &buytrackerv1alpha1.BuyTracker{}},
	}
	for _, ch := range children {
		key.Name = ch.name
		what := fmt.Sprintf("%T %s", ch.obj, ch.name)
		eventually(ctx, t, 2*time.Minute, what+" to be deleted", func(ctx context.Context) (bool, string, error) {
			return mustNotExist(e.k8s.Get(ctx, key, ch.obj), what)
		})
	}
	eventually(ctx, t, 2*time.Minute, "the pods to be deleted", func(ctx context.Context) (bool, string, error) {
		pods, err := e.pods(ctx, btName)
		if err != nil {
			return false, err.Error(), nil
		}
		return len(pods) == 0, fmt.Sprintf("%d pods left", len(pods)), nil
	})
	pvcs, err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var before, after []string
	for _, c := range claimsBefore.Items {
		before = append(before, c.Name+"/"+string(c.UID))
	}
	for _, c := range pvcs.Items {
		after = append(after, c.Name+"/"+string(c.UID))
	}
	sort.Strings(before)
	sort.Strings(after)
	if strings.Join(before, " ") != strings.Join(after, " ") || len(before) < 3 {
		t.Errorf("claims after deleting the BuyTracker: %v; before: %v; want every data claim retained", after, before)
	}
}

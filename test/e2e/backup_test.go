//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// The in-cluster object store: SeaweedFS's S3 gateway, one pod, built here
// (hack/build-seaweedfs.sh, hack/image/build.sh seaweedfs) like every image.
const (
	s3Name      = "seaweedfs"
	s3Port      = 8333
	s3Bucket    = "buytracker-backups"
	s3AccessKey = "e2e-access-key"
	s3SecretKey = "e2e-secret-key-0123456789"
	restoredBT  = "restored"
)

// backupRecord is what the backup step leaves for the restore step: the
// backup and the source's export of every purchase the backup holds.
type backupRecord struct {
	name      string
	index     int64
	purchases int64
	writer    *writer // the writer that ran while it was taken: its purchases up to the backup's are replayed
}

// deploySeaweedFS runs the object store in the test namespace and creates
// its bucket; it answers the endpoint the members reach it at.
func (e *env) deploySeaweedFS(ctx context.Context, t *testing.T) string {
	t.Helper()
	identities := fmt.Sprintf(`{"identities":[{"name":"e2e","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","List","Tagging","Write"]}]}`, s3AccessKey, s3SecretKey)
	objs := []client.Object{
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s3Name + "-config", Namespace: e.ns},
			StringData: map[string]string{"s3.json": identities},
		},
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "s3-credentials", Namespace: e.ns},
			StringData: map[string]string{"accessKeyID": s3AccessKey, "secretAccessKey": s3SecretKey},
		},
	}
	labels := map[string]string{"app.kubernetes.io/name": s3Name}
	one := int32(1)
	nonRoot := true
	objs = append(objs, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: s3Name, Namespace: e.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &nonRoot, RunAsUser: ptrTo(int64(65532)), FSGroup: ptrTo(int64(65532))},
					Containers: []corev1.Container{{
						Name:            s3Name,
						Image:           e.opts.seaweedfsImage,
						ImagePullPolicy: corev1.PullNever,
						Args: []string{"-logtostderr", "server", "-dir=/data", "-ip=127.0.0.1", "-ip.bind=0.0.0.0",
							"-master.volumeSizeLimitMB=64", "-volume.max=8", "-master.telemetry=false",
							"-s3", fmt.Sprintf("-s3.port=%d", s3Port), "-s3.config=/config/s3.json",
							"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false"},
						WorkingDir: "/tmp", // weed reads *.toml from its working directory
						Ports:      []corev1.ContainerPort{{Name: "s3", ContainerPort: s3Port}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
							TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(s3Port)}}},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "data", MountPath: "/data"},
							{Name: "tmp", MountPath: "/tmp"},
							{Name: "config", MountPath: "/config", ReadOnly: true},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: "config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: s3Name + "-config"}}},
					},
				},
			},
		},
	}, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: s3Name, Namespace: e.ns},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "s3", Port: s3Port, TargetPort: intstr.FromInt32(s3Port)}},
		},
	})
	for _, o := range objs {
		if err := e.k8s.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
	var pod string
	eventually(ctx, t, 3*time.Minute, "the object store's pod to be ready", func(ctx context.Context) (bool, string, error) {
		list, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + s3Name})
		if err != nil {
			return false, err.Error(), nil
		}
		for _, p := range list.Items {
			if podReady(p) {
				pod = p.Name
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d pods, none ready", len(list.Items)), nil
	})
	e.s3Pod = pod
	eventually(ctx, t, 2*time.Minute, "the bucket "+s3Bucket+" to be created", func(ctx context.Context) (bool, string, error) {
		err := e.withS3(ctx, func(s3 *minio.Client) error {
			exists, err := s3.BucketExists(ctx, s3Bucket)
			if err != nil || exists {
				return err
			}
			return s3.MakeBucket(ctx, s3Bucket, minio.MakeBucketOptions{})
		})
		if err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	return fmt.Sprintf("http://%s.%s.svc:%d", s3Name, e.ns, s3Port)
}

// withS3 runs fn with an S3 client that reaches the object store through a
// port-forward to its pod.
func (e *env) withS3(ctx context.Context, fn func(*minio.Client) error) error {
	local, closeFwd, err := e.forwardPort(ctx, e.s3Pod, s3Port)
	if err != nil {
		return err
	}
	defer closeFwd()
	s3, err := minio.New(fmt.Sprintf("127.0.0.1:%d", local), &minio.Options{
		Creds:        credentials.NewStaticV4(s3AccessKey, s3SecretKey, ""),
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return err
	}
	return fn(s3)
}

// scheduledBackup deploys the object store, points the BuyTracker's
// backups at it with a schedule of every minute, and waits, while writes go
// on, for a scheduled backup to complete: its status (index, purchases,
// checksum, size) matches the object and manifest in the bucket, and the
// BuyTracker reports it as its last backup.
func (e *env) scheduledBackup(ctx context.Context, t *testing.T) *backupRecord {
	endpoint := e.deploySeaweedFS(ctx, t)
	_, url, before, _ := e.snapshotCluster(ctx, t)
	w := startWriter(url, "backup", 4)
	defer w.Stop()
	w.awaitAcks(ctx, t, 50, "50 acknowledged writes before the schedule")

	bt, err := e.getBuyTracker(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(bt.DeepCopy())
	bt.Spec.Backup = &buytrackerv1alpha1.BackupSpec{
		Destination: &buytrackerv1alpha1.BackupDestination{S3: &buytrackerv1alpha1.S3Destination{
			Endpoint: endpoint, Bucket: s3Bucket, Prefix: "e2e/",
			CredentialsSecret: corev1.LocalObjectReference{Name: "s3-credentials"},
		}},
		Schedule:  "* * * * *",
		Retention: &buytrackerv1alpha1.BackupRetention{Count: ptrTo(int32(2))},
	}
	if err := e.k8s.Patch(ctx, bt, patch); err != nil {
		t.Fatal(err)
	}

	var done buytrackerv1alpha1.BuyTrackerBackup
	eventually(ctx, t, 4*time.Minute, "a scheduled backup to complete", func(ctx context.Context) (bool, string, error) {
		var list buytrackerv1alpha1.BuyTrackerBackupList
		if err := e.k8s.List(ctx, &list, client.InNamespace(e.ns), client.MatchingLabels{buytrackerv1alpha1.LabelScheduledBackup: btName}); err != nil {
			return false, err.Error(), nil
		}
		var states []string
		for _, b := range list.Items {
			states = append(states, fmt.Sprintf("%s %s", b.Name, b.Status.Phase))
			if b.Status.Phase == buytrackerv1alpha1.BackupFailed {
				return false, "", fmt.Errorf("backup %s failed: %+v", b.Name, b.Status.Conditions)
			}
			if b.Status.Phase == buytrackerv1alpha1.BackupCompleted {
				done = b
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("backups: %v; writer: %s", states, w.progress()), nil
	})
	st := done.Status
	t.Logf("backup %s: index %d, %d purchases, %d bytes, sha256 %s, by %s, at %v", done.Name, st.Index, st.Purchases, st.SizeBytes, st.Checksum, st.Member, st.Location)
	if st.Index <= 0 || st.Purchases < int64(before)+50 || st.SizeBytes <= 0 || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(st.Checksum) ||
		st.Location == nil || st.Location.S3 == nil || st.BackupTime == nil || st.CompletedAt == nil {
		t.Fatalf("backup %s: incomplete status %+v (wanted at least %d purchases)", done.Name, st, before+50)
	}
	if err := e.withS3(ctx, func(s3 *minio.Client) error {
		info, err := s3.StatObject(ctx, s3Bucket, st.Location.Path, minio.StatObjectOptions{})
		if err != nil {
			return fmt.Errorf("the backup object %s: %w", st.Location.Path, err)
		}
		if info.Size != st.SizeBytes {
			return fmt.Errorf("the backup object has %d bytes, the status says %d", info.Size, st.SizeBytes)
		}
		obj, err := s3.GetObject(ctx, s3Bucket, st.Location.Path+".manifest.json", minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer obj.Close()
		data, err := io.ReadAll(io.LimitReader(obj, 64<<10))
		if err != nil {
			return fmt.Errorf("the manifest beside the backup: %w", err)
		}
		var m struct {
			Index     int64  `json:"index"`
			Purchases int64  `json:"purchases"`
			Checksum  string `json:"checksum"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("the manifest %s: %w", data, err)
		}
		if m.Index != st.Index || m.Purchases != st.Purchases || m.Checksum != st.Checksum {
			return fmt.Errorf("the manifest %s disagrees with the status %+v", data, st)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, time.Minute, "the BuyTracker to report its last backup", func(ctx context.Context) (bool, string, error) {
		bt, err := e.getBuyTracker(ctx, btName)
		if err != nil {
			return false, err.Error(), nil
		}
		lb := bt.Status.LastBackup
		return lb != nil && lb.Index >= st.Index, fmt.Sprintf("lastBackup %+v", lb), nil
	})

	// No more scheduled backups: the restore below uses this one.
	bt, err = e.getBuyTracker(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	patch = client.MergeFrom(bt.DeepCopy())
	bt.Spec.Backup.Schedule = ""
	if err := e.k8s.Patch(ctx, bt, patch); err != nil {
		t.Fatal(err)
	}
	e.stopAndCheckCount(ctx, t, w, url, before, "after the scheduled backup")
	return &backupRecord{name: done.Name, index: st.Index, purchases: st.Purchases, writer: w}
}

// restoreFromBackup deletes what is left of the backed-up BuyTracker (its
// claims), then creates a new BuyTracker from the backup: it holds exactly
// the backup's purchases (the same export, record for record), reports the
// restore, and accepts new purchases after them.
func (e *env) restoreFromBackup(ctx context.Context, t *testing.T, b *backupRecord) {
	if b == nil {
		t.Fatal("no backup from the step before")
	}
	claimsOf := func(ctx context.Context) ([]string, error) {
		list, err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		var names []string
		for _, c := range list.Items {
			if strings.HasPrefix(c.Name, "data-"+btName+"-") {
				names = append(names, c.Name)
			}
		}
		return names, nil
	}
	claims, err := claimsOf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range claims {
		if err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).Delete(ctx, c, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(ctx, t, 2*time.Minute, "the old BuyTracker's claims to be deleted", func(ctx context.Context) (bool, string, error) {
		left, err := claimsOf(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		return len(left) == 0, fmt.Sprintf("claims left: %v", left), nil
	})

	bt := e.newBuyTracker(restoredBT, 3)
	bt.Spec.Bootstrap = &buytrackerv1alpha1.BootstrapSpec{FromBackup: &buytrackerv1alpha1.BackupSource{Name: b.name}}
	if err := e.k8s.Create(ctx, bt); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, 5*time.Minute, restoredBT+" restored and available", func(ctx context.Context) (bool, string, error) {
		bt, err := e.getBuyTracker(ctx, restoredBT)
		if err != nil {
			return false, err.Error(), nil
		}
		restored := meta.FindStatusCondition(bt.Status.Conditions, buytrackerv1alpha1.ConditionRestored)
		available := meta.FindStatusCondition(bt.Status.Conditions, buytrackerv1alpha1.ConditionAvailable)
		if restored != nil && restored.Status == metav1.ConditionFalse && (restored.Reason == buytrackerv1alpha1.ReasonBackupNotFound ||
			restored.Reason == buytrackerv1alpha1.ReasonBackupUnreadable || restored.Reason == buytrackerv1alpha1.ReasonBackupInvalid) {
			return false, "", fmt.Errorf("restore failed: %s", condString(restored))
		}
		return restored != nil && restored.Status == metav1.ConditionTrue && available != nil && available.Status == metav1.ConditionTrue,
			fmt.Sprintf("Restored %s, Available %s", condString(restored), condString(available)), nil
	})
	got, err := e.getBuyTracker(ctx, restoredBT)
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Status.Restore; r == nil || r.Index != b.index || r.Purchases != b.purchases || r.Source != b.name {
		t.Errorf("status.restore = %+v, want source %s, index %d, %d purchases", r, b.name, b.index, b.purchases)
	}
	url := e.waitServiceReady(ctx, t, restoredBT, 3)
	if total := linearizableTotal(ctx, t, url); total != uint64(b.purchases) {
		t.Fatalf("the restored cluster counts %d purchases, the backup %d", total, b.purchases)
	}
	// Every purchase acknowledged with an id the backup holds answers its
	// first id on the restored cluster, and is not counted again.
	n, err := b.writer.replayAcknowledged(ctx, url, uint64(b.purchases))
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the backup holds none of the writer's purchases")
	}
	if total := linearizableTotal(ctx, t, url); total != uint64(b.purchases) {
		t.Fatalf("after %d replays the restored cluster counts %d purchases, want still %d", n, total, b.purchases)
	}
	t.Logf("%d acknowledged purchases replayed on the restored cluster: each answered its first id", n)
	w := startWriter(url, "after-restore", 4)
	defer w.Stop()
	w.awaitAcks(ctx, t, 100, "100 purchases on the restored cluster")
	acked, failures := w.Stop()
	for _, f := range failures {
		t.Error(f)
	}
	ids := make([]uint64, 0, len(w.ids))
	for id := range w.ids {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if len(ids) == 0 || ids[0] != uint64(b.purchases)+1 {
		t.Errorf("the first new purchase got id %v, want %d (after the backup's)", ids[:min(1, len(ids))], b.purchases+1)
	}
	if total := linearizableTotal(ctx, t, url); total != uint64(b.purchases+acked) {
		t.Errorf("after new purchases the restored cluster counts %d, want %d + %d", total, b.purchases, acked)
	}
}

// quorumLostAndRecovered deletes two of the three members' pods with their
// claims: the empty members cannot make a quorum with the survivor, the
// operator reports QuorumLost naming the survivor and its last index, and
// the recover-quorum annotation brings the cluster back to three voters
// from the survivor, with every purchase it held.
func (e *env) quorumLostAndRecovered(ctx context.Context, t *testing.T) {
	url, err := e.serviceURL(ctx, restoredBT)
	if err != nil {
		t.Fatal(err)
	}
	before := startWriter(url, "before-loss", 4)
	defer before.Stop()
	before.awaitAcks(ctx, t, 200, "200 purchases before the volumes are lost")
	if _, failures := before.Stop(); len(failures) > 0 {
		t.Fatal(failures)
	}
	total := linearizableTotal(ctx, t, url)
	c := e.waitSettled(ctx, t, restoredBT, 3, 2*time.Minute)
	// The leader and one follower go; the other follower survives.
	var lost []string
	survivor := ""
	for _, m := range c.Members {
		if survivor == "" && !m.Leader {
			survivor = m.ID
		} else {
			lost = append(lost, m.ID)
		}
	}
	if len(lost) != 2 || survivor == "" {
		t.Fatalf("could not choose: lost %v, survivor %q from %s", lost, survivor, describeMembers(c))
	}
	t.Logf("deleting %v with their claims; %s survives with %d purchases", lost, survivor, total)
	e.loseVolumes(ctx, t, lost...)

	var cond *metav1.Condition
	eventually(ctx, t, 4*time.Minute, "QuorumLost to be reported", func(ctx context.Context) (bool, string, error) {
		bt, err := e.getBuyTracker(ctx, restoredBT)
		if err != nil {
			return false, err.Error(), nil
		}
		cond = meta.FindStatusCondition(bt.Status.Conditions, buytrackerv1alpha1.ConditionQuorumLost)
		return cond != nil && cond.Status == metav1.ConditionTrue, condString(cond), nil
	})
	if cond.Reason != buytrackerv1alpha1.ReasonMajorityVolumesLost || !strings.Contains(cond.Message, survivor) {
		t.Errorf("QuorumLost %s: want reason %s and the survivor %s named", condString(cond), buytrackerv1alpha1.ReasonMajorityVolumesLost, survivor)
	}
	t.Logf("QuorumLost: %s", cond.Message)

	// The operator refuses a request it cannot act on safely at that moment
	// (a member it cannot tell about yet); a person then asks again with a
	// new value, as the test does, at most three times.
	recovered := false
	for attempt := 1; attempt <= 3 && !recovered; attempt++ {
		request := fmt.Sprintf("e2e-%d", attempt)
		bt, err := e.getBuyTracker(ctx, restoredBT)
		if err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(bt.DeepCopy())
		if bt.Annotations == nil {
			bt.Annotations = map[string]string{}
		}
		bt.Annotations[buytrackerv1alpha1.AnnotationRecoverQuorum] = request
		if err := e.k8s.Patch(ctx, bt, patch); err != nil {
			t.Fatal(err)
		}
		refused := ""
		eventually(ctx, t, 5*time.Minute, "the recovery from "+survivor+" ("+request+")", func(ctx context.Context) (bool, string, error) {
			bt, err := e.getBuyTracker(ctx, restoredBT)
			if err != nil {
				return false, err.Error(), nil
			}
			r := bt.Status.QuorumRecovery
			if r != nil && r.Request == request && r.Phase == "Refused" {
				refused = r.Message
				return true, "", nil
			}
			ql := meta.FindStatusCondition(bt.Status.Conditions, buytrackerv1alpha1.ConditionQuorumLost)
			return r != nil && r.Request == request && r.Phase == "Recovered" && ql != nil && ql.Status == metav1.ConditionFalse,
				fmt.Sprintf("quorumRecovery %+v, QuorumLost %s", r, condString(ql)), nil
		})
		if refused != "" {
			t.Logf("request %s refused (%s); asking again", request, refused)
			continue
		}
		recovered = true
	}
	if !recovered {
		t.Fatal("three recovery requests were refused")
	}
	bt, err := e.getBuyTracker(ctx, restoredBT)
	if err != nil {
		t.Fatal(err)
	}
	if r := bt.Status.QuorumRecovery; r.From != survivor {
		t.Errorf("recovered from %s, want the survivor %s", r.From, survivor)
	}
	c = e.waitSettled(ctx, t, restoredBT, 3, 5*time.Minute)
	t.Logf("after the recovery: %s", describeMembers(c))
	url = e.waitServiceReady(ctx, t, restoredBT, 3)
	if got := linearizableTotal(ctx, t, url); got != total {
		t.Fatalf("after the recovery the cluster counts %d purchases, the survivor held %d", got, total)
	}
	n, err := before.replayAcknowledged(ctx, url, total)
	if err != nil {
		t.Fatal(err)
	}
	if got := linearizableTotal(ctx, t, url); got != total || n == 0 {
		t.Fatalf("after %d replays the cluster counts %d purchases, want still %d", n, got, total)
	}
	w := startWriter(url, "after-recovery", 4)
	defer w.Stop()
	w.awaitAcks(ctx, t, 50, "50 purchases after the recovery")
	e.stopAndCheckCountOf(ctx, t, restoredBT, w, url, total, "after the recovery")
}

// loseVolumes deletes pods together with their claims and waits until each
// runs again on a new, empty claim (not until it is ready: a member that
// lost its volume may wait for a person).
func (e *env) loseVolumes(ctx context.Context, t *testing.T, pods ...string) {
	t.Helper()
	old := map[string]types.UID{}
	for _, p := range pods {
		claim := "data-" + p
		pvc, err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, claim, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		old[p] = pvc.UID
		if err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).Delete(ctx, claim, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pods {
		if err := e.kube.CoreV1().Pods(e.ns).Delete(ctx, p, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	for _, p := range pods {
		claim := "data-" + p
		eventually(ctx, t, 4*time.Minute, p+" running on a new claim", func(ctx context.Context) (bool, string, error) {
			pvc, err := e.kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, claim, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			pod, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, p, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			if pvc.UID == old[p] {
				// The claim is protected while the old pod uses it; a pod
				// recreated before it is gone waits on it, and goes again.
				if pod.Status.Phase == corev1.PodPending && pod.DeletionTimestamp == nil {
					_ = e.kube.CoreV1().Pods(e.ns).Delete(ctx, p, metav1.DeleteOptions{})
				}
				return false, "the old claim is still there (deleting)", nil
			}
			return pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp == nil,
				fmt.Sprintf("pod phase %s on claim %s", pod.Status.Phase, pvc.UID), nil
		})
	}
}

// stopAndCheckCountOf stops the writer and checks that the BuyTracker bt
// holds exactly the purchases it had before plus those the writer had
// acknowledged, read linearizably through the Service and on every pod.
func (e *env) stopAndCheckCountOf(ctx context.Context, t *testing.T, bt string, w *writer, url string, before uint64, when string) int64 {
	t.Helper()
	acked, failures := w.Stop()
	for _, f := range failures {
		t.Error(f)
	}
	want := before + uint64(acked)
	if got := linearizableTotal(ctx, t, url); got != want {
		t.Fatalf("%s: total_buys = %d, want exactly %d (%d before + %d acknowledged)", when, got, want, before, acked)
	}
	e.readFromEveryPod(ctx, t, bt, 3, want)
	return acked
}

func ptrTo[T any](v T) *T { return &v }

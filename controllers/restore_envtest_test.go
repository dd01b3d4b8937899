package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// completedBackupOfOld makes BuyTrackerBackup nightly, completed, of a
// BuyTracker "old" that is gone, on the claim old-backups.
func completedBackupOfOld(t *testing.T, s *apiServer, ns string) {
	t.Helper()
	ctx := context.Background()
	b := &buytrackerv1alpha1.BuyTrackerBackup{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns},
		Spec: buytrackerv1alpha1.BuyTrackerBackupSpec{BuyTracker: "old"}}
	if err := s.client.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	b.Status = buytrackerv1alpha1.BuyTrackerBackupStatus{
		Phase: buytrackerv1alpha1.BackupCompleted, Index: 1207, Purchases: 1200, Checksum: testChecksum, CompletedAt: &now,
		Location: &buytrackerv1alpha1.BackupLocation{
			BackupDestination: buytrackerv1alpha1.BackupDestination{Volume: &buytrackerv1alpha1.BackupVolume{ClaimName: "old-backups"}},
			Path:              ns + "/old/nightly.btbackup",
		},
	}
	if err := s.client.Status().Update(ctx, b); err != nil {
		t.Fatal(err)
	}
}

func restoreSpec(name string) buytrackerv1alpha1.BuyTrackerSpec {
	return buytrackerv1alpha1.BuyTrackerSpec{Bootstrap: &buytrackerv1alpha1.BootstrapSpec{FromBackup: &buytrackerv1alpha1.BackupSource{Name: name}}}
}

// nothingMade fails the test when any of the cluster's children exists.
func (f *directFixture) nothingMade(t *testing.T, when string) {
	t.Helper()
	ctx := context.Background()
	for _, l := range []client.ObjectList{&appsv1.StatefulSetList{}, &corev1.PersistentVolumeClaimList{}, &corev1.ServiceList{}, &corev1.SecretList{}} {
		if err := f.s.client.List(ctx, l, client.InNamespace(f.key.Namespace)); err != nil {
			t.Fatal(err)
		}
		if n := meta.LenList(l); n != 0 {
			t.Errorf("%s: %d %T made", when, n, l)
		}
	}
}

func (f *directFixture) restored(t *testing.T) *metav1.Condition {
	t.Helper()
	return meta.FindStatusCondition(f.buyTracker(t).Status.Conditions, buytrackerv1alpha1.ConditionRestored)
}

func TestARestoreThatCannotVerifyItsBackupCreatesNothing(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	completedBackupOfOld(t, s, ns)
	f := newDirectFixtureIn(t, ns, restoreSpec("nightly"))

	f.pass(t)
	job := getJob(t, s.client, ns, "promo-restore-verify")
	expect(t, "verify args", job.Spec.Template.Spec.Containers[0].Args, []string{"backup", "verify",
		"--from=/backups/" + ns + "/old/nightly.btbackup", "--checksum=" + testChecksum, "--result-file=/dev/termination-log"})
	if !metav1.IsControlledBy(job, f.buyTracker(t)) {
		t.Errorf("the verify Job is not owned by the BuyTracker: %v", job.OwnerReferences)
	}
	var claim *corev1.PersistentVolumeClaimVolumeSource
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim
		}
	}
	if claim == nil || claim.ClaimName != "old-backups" || !claim.ReadOnly {
		t.Errorf("the backup's claim is not mounted read-only: %+v", job.Spec.Template.Spec.Volumes)
	}
	if c := f.restored(t); c == nil || c.Status != metav1.ConditionFalse || c.Reason != buytrackerv1alpha1.ReasonVerifyingBackup {
		t.Fatalf("Restored %+v while verifying", c)
	}
	f.nothingMade(t, "while verifying")

	finishJob(t, s.client, ns, "promo-restore-verify", false, agentResult{
		Error: "invalid backup: SHA-256 9f2c does not match the trailer's 41aa: the backup is corrupted", Reason: "invalid"})
	f.pass(t)
	f.pass(t)
	c := f.restored(t)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != buytrackerv1alpha1.ReasonBackupInvalid || !strings.Contains(c.Message, "does not match the trailer") {
		t.Fatalf("Restored %+v: want False BackupInvalid with the agent's error", c)
	}
	if f.buyTracker(t).Status.Restore != nil {
		t.Errorf("status.restore %+v for a backup that failed verification", f.buyTracker(t).Status.Restore)
	}
	f.nothingMade(t, "after the verification failed")
	if ev := eventsWith(drain(f.r.Recorder.(*events.FakeRecorder)), "RestoreFailed"); len(ev) != 1 || !strings.HasPrefix(ev[0], corev1.EventTypeWarning) {
		t.Errorf("want one Warning RestoreFailed Event over two passes, got %q", ev)
	}
}

func TestARestoreFromAnUnreadableOrMissingBackupSaysSo(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	completedBackupOfOld(t, s, ns)
	f := newDirectFixtureIn(t, ns, restoreSpec("nightly"))
	f.pass(t)
	finishJob(t, s.client, ns, "promo-restore-verify", false, agentResult{Error: "open /backups/x: no such file or directory", Reason: "unreadable"})
	f.pass(t)
	if c := f.restored(t); c == nil || c.Reason != buytrackerv1alpha1.ReasonBackupUnreadable || !strings.Contains(c.Message, "no such file") {
		t.Fatalf("Restored %+v: want BackupUnreadable", c)
	}

	g := newDirectFixtureIn(t, s.newNamespace(t), restoreSpec("never-taken"))
	g.pass(t)
	if c := g.restored(t); c == nil || c.Reason != buytrackerv1alpha1.ReasonBackupNotFound || !strings.Contains(c.Message, "never-taken") {
		t.Fatalf("Restored %+v: want BackupNotFound naming the backup", c)
	}
	if jobExists(t, s.client, g.key.Namespace, "promo-restore-verify") {
		t.Error("a verify Job was made for a backup that does not exist")
	}
	g.nothingMade(t, "with a missing backup")
}

func TestARestoredClusterStartsEveryMemberFromTheVerifiedBackup(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	completedBackupOfOld(t, s, ns)
	f := newDirectFixtureIn(t, ns, restoreSpec("nightly"))
	f.pass(t)
	finishJob(t, s.client, ns, "promo-restore-verify", true, agentResult{
		Location: "/backups/" + ns + "/old/nightly.btbackup", Index: 1207, Purchases: 1200, Checksum: testChecksum, SizeBytes: 4096})
	f.pass(t)

	rs := f.buyTracker(t).Status.Restore
	if rs == nil || rs.Source != "nightly" || rs.Index != 1207 || rs.Purchases != 1200 || rs.Checksum != testChecksum || rs.Job != "promo-restore-verify" ||
		rs.Location == nil || rs.Location.Volume.ClaimName != "old-backups" {
		t.Fatalf("status.restore %+v", rs)
	}
	if c := f.restored(t); c == nil || c.Status != metav1.ConditionFalse || c.Reason != buytrackerv1alpha1.ReasonRestoringBackup {
		t.Fatalf("Restored %+v once verified", c)
	}

	f.settle(t)
	var sts appsv1.StatefulSet
	f.get(t, "promo", &sts)
	pod := sts.Spec.Template.Spec
	if len(pod.InitContainers) != 1 {
		t.Fatalf("init containers %+v", pod.InitContainers)
	}
	fetch := pod.InitContainers[0]
	expect(t, "fetch args", fetch.Args, []string{"backup", "fetch", "--from=/backups/" + ns + "/old/nightly.btbackup",
		"--to=/restore/backup.btbackup", "--checksum=" + testChecksum, "--skip-if-data-dir=/data"})
	expect(t, "fetch image", fetch.Image, pod.Containers[0].Image)
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range fetch.VolumeMounts {
		mounts[m.MountPath] = m
	}
	if !mounts["/backups"].ReadOnly || mounts["/restore"].ReadOnly || mounts["/data"].Name != dataVolume {
		t.Errorf("fetch mounts %+v", fetch.VolumeMounts)
	}
	if !slices.Contains(pod.Containers[0].Args, "--restore-from=/restore/backup.btbackup") {
		t.Errorf("node args %q lack --restore-from", pod.Containers[0].Args)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	if volumes["restore"].EmptyDir == nil || volumes["backups"].PersistentVolumeClaim == nil || !volumes["backups"].PersistentVolumeClaim.ReadOnly {
		t.Errorf("volumes %+v", pod.Volumes)
	}

	if c := f.restored(t); c == nil || c.Status != metav1.ConditionTrue || c.Reason != buytrackerv1alpha1.ReasonBackupRestored {
		t.Fatalf("Restored %+v once the cluster is Available", c)
	}
	recorded := drain(f.r.Recorder.(*events.FakeRecorder))
	for _, reason := range []string{"VerifyingBackup", "BackupVerified", "Restored"} {
		if len(eventsWith(recorded, reason)) != 1 {
			t.Errorf("want one %s Event, got %q", reason, recorded)
		}
	}
	// Once restored, the pods no longer fetch the backup (a member that
	// loses its volume rejoins from its peers), so the backup may go.
	f.settle(t)
	f.get(t, "promo", &sts)
	pod = sts.Spec.Template.Spec
	if len(pod.InitContainers) != 0 || slices.ContainsFunc(pod.Containers[0].Args, func(a string) bool { return strings.HasPrefix(a, "--restore-from") }) {
		t.Errorf("the template still restores once the cluster is restored: %+v", pod)
	}
	if err := s.client.Delete(context.Background(), &buytrackerv1alpha1.BuyTrackerBackup{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	rv := sts.ResourceVersion
	f.pass(t)
	f.get(t, "promo", &sts)
	expect(t, "StatefulSet resourceVersion after the backup was deleted", sts.ResourceVersion, rv)
	if c := f.restored(t); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Restored %+v after the backup was deleted", c)
	}
}

func TestARestoreFromAnS3LocationFetchesWithTheBucketsSettings(t *testing.T) {
	bt := &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "promo", Namespace: "shop"}, Spec: buytrackerv1alpha1.BuyTrackerSpec{
		Bootstrap: &buytrackerv1alpha1.BootstrapSpec{FromBackup: &buytrackerv1alpha1.BackupSource{Location: &buytrackerv1alpha1.BackupLocation{Path: "x"}}},
	}}
	loc := buytrackerv1alpha1.BackupLocation{Path: "prod/shop/promo/nightly.btbackup", BackupDestination: buytrackerv1alpha1.BackupDestination{S3: &buytrackerv1alpha1.S3Destination{
		Endpoint: "http://store:8333", Bucket: "backups", CredentialsSecret: corev1.LocalObjectReference{Name: "keys"}}}}
	bt.Status.Restore = &buytrackerv1alpha1.RestoreStatus{Source: loc.Path, Checksum: testChecksum, Location: &loc}

	pod := desiredStatefulSet(bt, testNames, statefulSetInputs{nodeImage: "img", initialReplicas: 3, replicas: 3}).Spec.Template.Spec
	fetch := pod.InitContainers[0]
	if !slices.Contains(fetch.Args, "--from=s3://backups/prod/shop/promo/nightly.btbackup") {
		t.Errorf("fetch args %q", fetch.Args)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range fetch.Env {
		env[e.Name] = e
	}
	if env["BUYTRACKER_S3_ENDPOINT"].Value != "http://store:8333" || env["AWS_ACCESS_KEY_ID"].ValueFrom.SecretKeyRef.Name != "keys" {
		t.Errorf("fetch env %+v", fetch.Env)
	}
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil {
			t.Errorf("an S3 restore mounts claim %s", v.PersistentVolumeClaim.ClaimName)
		}
	}

	// Without a verified backup in the status, the template is the plain one.
	bt.Status.Restore = nil
	plain := desiredStatefulSet(bt, testNames, statefulSetInputs{nodeImage: "img", initialReplicas: 3, replicas: 3}).Spec.Template.Spec
	if len(plain.InitContainers) != 0 || slices.ContainsFunc(plain.Containers[0].Args, func(a string) bool { return strings.HasPrefix(a, "--restore-from") }) {
		t.Errorf("a template without a verified backup restores: %+v", plain)
	}
}

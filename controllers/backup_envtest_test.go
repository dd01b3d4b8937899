package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

const testChecksum = "5d41402abc4b2a76b9719d911017c592aaaabbbbccccddddeeeeffff00001111"

func TestBackupAPIRejectsInvalidBackupsAndDestinations(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	ctx := context.Background()
	s3 := func() *buytrackerv1alpha1.S3Destination {
		return &buytrackerv1alpha1.S3Destination{Endpoint: "http://store:8333", Bucket: "backups",
			CredentialsSecret: corev1.LocalObjectReference{Name: "s3"}}
	}
	for _, tt := range []struct {
		name string
		obj  client.Object
		want string
	}{
		{"backup without buyTracker", &buytrackerv1alpha1.BuyTrackerBackup{ObjectMeta: metav1.ObjectMeta{Name: "b1", Namespace: ns}}, "spec.buyTracker"},
		{"both destinations", &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "both", Namespace: ns}, Spec: buytrackerv1alpha1.BuyTrackerSpec{
			Backup: &buytrackerv1alpha1.BackupSpec{Destination: &buytrackerv1alpha1.BackupDestination{Volume: &buytrackerv1alpha1.BackupVolume{}, S3: s3()}}}}, "set exactly one of volume and s3"},
		{"no destination", &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "neither", Namespace: ns}, Spec: buytrackerv1alpha1.BuyTrackerSpec{
			Backup: &buytrackerv1alpha1.BackupSpec{Destination: &buytrackerv1alpha1.BackupDestination{}}}}, "set exactly one of volume and s3"},
		{"endpoint with a path", &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "path", Namespace: ns}, Spec: buytrackerv1alpha1.BuyTrackerSpec{
			Backup: &buytrackerv1alpha1.BackupSpec{Destination: &buytrackerv1alpha1.BackupDestination{S3: func() *buytrackerv1alpha1.S3Destination {
				d := s3()
				d.Endpoint = "https://store:8333/bucket"
				return d
			}()}}}}, "spec.backup.destination.s3.endpoint"},
		{"retention of none", &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "none", Namespace: ns}, Spec: buytrackerv1alpha1.BuyTrackerSpec{
			Backup: &buytrackerv1alpha1.BackupSpec{Retention: &buytrackerv1alpha1.BackupRetention{Count: ptr.To[int32](0)}}}}, "spec.backup.retention.count"},
		{"restore from a name and a location", &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "src", Namespace: ns}, Spec: buytrackerv1alpha1.BuyTrackerSpec{
			Bootstrap: &buytrackerv1alpha1.BootstrapSpec{FromBackup: &buytrackerv1alpha1.BackupSource{Name: "nightly",
				Location: &buytrackerv1alpha1.BackupLocation{BackupDestination: buytrackerv1alpha1.BackupDestination{S3: s3()}, Path: "x"}}}}}, "set exactly one of name and location"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := s.client.Create(ctx, tt.obj)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("create: got %v, want an error naming %q", err, tt.want)
			}
		})
	}

	b := &buytrackerv1alpha1.BuyTrackerBackup{ObjectMeta: metav1.ObjectMeta{Name: "ok", Namespace: ns}, Spec: buytrackerv1alpha1.BuyTrackerBackupSpec{BuyTracker: "promo"}}
	if err := s.client.Create(ctx, b); err != nil {
		t.Fatalf("create a valid backup: %v", err)
	}
	b.Spec.BuyTracker = "other"
	if err := s.client.Update(ctx, b); err == nil || !strings.Contains(err.Error(), "buyTracker is immutable") {
		t.Fatalf("changing buyTracker: got %v, want it refused as immutable", err)
	}
}

func TestABackupRunsOneJobAgainstTheLeaderAndRecordsItsResult(t *testing.T) {
	f := newBackupFixture(t)
	f.readyBuyTracker(t, buytrackerv1alpha1.BuyTrackerSpec{})
	f.createBackup(t, "first", "promo", nil)

	f.passBackup(t, "first")
	b := f.backup(t, "first")
	expect(t, "phase", b.Status.Phase, buytrackerv1alpha1.BackupRunning)
	expect(t, "job", b.Status.Job, "first-backup")
	expect(t, "member", b.Status.Member, "promo-1")
	wantPath := f.ns + "/promo/first.btbackup"
	if l := b.Status.Location; l.Volume == nil || l.Volume.ClaimName != "promo-backups" || l.S3 != nil || l.Path != wantPath {
		t.Errorf("location %+v: want %s on claim promo-backups", l, wantPath)
	}
	if c := meta.FindStatusCondition(b.Status.Conditions, buytrackerv1alpha1.BackupConditionCompleted); c == nil || c.Reason != buytrackerv1alpha1.ReasonBackupRunning {
		t.Fatalf("Completed condition while running: %+v", c)
	}

	job := f.job(t, "first-backup")
	if !metav1.IsControlledBy(job, b) {
		t.Errorf("job owners %v: want the backup as controller", job.OwnerReferences)
	}
	pod := job.Spec.Template.Spec
	agent := pod.Containers[0]
	expect(t, "image", agent.Image, "buytracker/node:test")
	expect(t, "command", agent.Command, []string{"/buytracker-node"})
	expect(t, "args", agent.Args, []string{"backup", "take",
		"--admin-url=https://promo-1.promo-peers." + f.ns + ".svc:8081",
		"--admin-token-file=/etc/buytracker/admin-token",
		"--ca-file=/etc/buytracker/admin-ca.crt",
		"--to=/backups/" + wantPath,
		"--result-file=/dev/termination-log"})
	expect(t, "backoffLimit", *job.Spec.BackoffLimit, int32(1))
	if job.Spec.ActiveDeadlineSeconds == nil || job.Spec.TTLSecondsAfterFinished == nil {
		t.Errorf("job without deadline or TTL: %+v", job.Spec)
	}
	expect(t, "restartPolicy", pod.RestartPolicy, corev1.RestartPolicyNever)
	sc := agent.SecurityContext
	if !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !*sc.RunAsNonRoot || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("agent security context %+v", sc)
	}
	if !*pod.SecurityContext.RunAsNonRoot || *pod.AutomountServiceAccountToken {
		t.Errorf("pod security: %+v, automount %v", pod.SecurityContext, *pod.AutomountServiceAccountToken)
	}
	if agent.Resources.Requests.Memory().IsZero() || agent.Resources.Limits.Memory().IsZero() {
		t.Errorf("agent resources %+v", agent.Resources)
	}
	if l := pod.Containers[0].Resources.Limits; l == nil {
		t.Error("no limits")
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range agent.VolumeMounts {
		mounts[m.MountPath] = m
	}
	if m, ok := mounts["/backups"]; !ok || m.ReadOnly {
		t.Errorf("the backups volume is not mounted writable at /backups: %+v", agent.VolumeMounts)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	expect(t, "backups claim", volumes["backups"].PersistentVolumeClaim.ClaimName, "promo-backups")
	creds := volumes["admin-credentials"].Projected
	if creds == nil || len(creds.Sources) != 2 ||
		creds.Sources[0].Secret.Name != "promo-admin-token" || creds.Sources[0].Secret.Items[0] != (corev1.KeyToPath{Key: "token", Path: "admin-token"}) ||
		creds.Sources[1].Secret.Name != "promo-1-tls" || creds.Sources[1].Secret.Items[0] != (corev1.KeyToPath{Key: "ca.crt", Path: "admin-ca.crt"}) {
		t.Errorf("admin credentials volume %+v", volumes["admin-credentials"])
	}
	if labels := job.Spec.Template.Labels; labels[labelInstance] != "" || labels[labelName] != "buytracker" {
		t.Errorf("pod labels %v: the agent's pods must be the operator's but never look like members", labels)
	}

	var claim corev1.PersistentVolumeClaim
	if err := f.s.client.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: "promo-backups"}, &claim); err != nil {
		t.Fatalf("the default backup volume was not created: %v", err)
	}
	if len(claim.OwnerReferences) != 0 {
		t.Errorf("promo-backups has owners %v: it must outlive the BuyTracker", claim.OwnerReferences)
	}
	expect(t, "claim size", claim.Spec.Resources.Requests[corev1.ResourceStorage], resource.MustParse("1Gi"))

	// Running: nothing changes, no second Job.
	f.passBackup(t, "first")
	expect(t, "phase while the job runs", f.backup(t, "first").Status.Phase, buytrackerv1alpha1.BackupRunning)

	finishJob(t, f.s.client, f.ns, "first-backup", true, agentResult{
		Location: "/backups/" + wantPath, ClusterID: "uid-of-promo", NodeID: "promo-1", Index: 1207, Purchases: 1200,
		CreatedAt: "2026-12-01T03:04:05.123456789Z", Checksum: testChecksum, SizeBytes: 98765,
	})
	f.passBackup(t, "first")
	b = f.backup(t, "first")
	expect(t, "phase", b.Status.Phase, buytrackerv1alpha1.BackupCompleted)
	expect(t, "index", b.Status.Index, int64(1207))
	expect(t, "purchases", b.Status.Purchases, int64(1200))
	expect(t, "checksum", b.Status.Checksum, testChecksum)
	expect(t, "size", b.Status.SizeBytes, int64(98765))
	expect(t, "cluster", b.Status.ClusterID, "uid-of-promo")
	expect(t, "member", b.Status.Member, "promo-1")
	if b.Status.BackupTime == nil || b.Status.BackupTime.UTC().Format("15:04:05") != "03:04:05" || b.Status.CompletedAt == nil {
		t.Errorf("times: backupTime %v completedAt %v", b.Status.BackupTime, b.Status.CompletedAt)
	}
	if !meta.IsStatusConditionTrue(b.Status.Conditions, buytrackerv1alpha1.BackupConditionCompleted) {
		t.Errorf("conditions %+v", b.Status.Conditions)
	}
	recorded := drain(f.recorder)
	for _, reason := range []string{"BackupVolumeCreated", "Started", "Completed"} {
		if len(eventsWith(recorded, reason)) != 1 {
			t.Errorf("want one %s Event, got %q", reason, recorded)
		}
	}

	// A finished backup is never run again, even when its Job is gone.
	if err := f.s.client.Delete(context.Background(), f.job(t, "first-backup"), client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	rv := f.backup(t, "first").ResourceVersion
	f.passBackup(t, "first")
	expect(t, "resourceVersion after a pass over a completed backup", f.backup(t, "first").ResourceVersion, rv)
	if jobExists(t, f.s.client, f.ns, "first-backup") {
		t.Error("a completed backup's Job was made again")
	}
}

func TestAFailedBackupJobFailsTheBackupWithTheAgentsError(t *testing.T) {
	f := newBackupFixture(t)
	f.readyBuyTracker(t, buytrackerv1alpha1.BuyTrackerSpec{})
	f.createBackup(t, "broken", "promo", nil)
	f.passBackup(t, "broken")
	finishJob(t, f.s.client, f.ns, "broken-backup", false, agentResult{Error: "GET /backup: 401 Unauthorized", Reason: "failed"})
	f.passBackup(t, "broken")
	b := f.backup(t, "broken")
	expect(t, "phase", b.Status.Phase, buytrackerv1alpha1.BackupFailed)
	c := meta.FindStatusCondition(b.Status.Conditions, buytrackerv1alpha1.BackupConditionCompleted)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != buytrackerv1alpha1.ReasonBackupJobFailed || !strings.Contains(c.Message, "401 Unauthorized") {
		t.Fatalf("Completed condition %+v: want False JobFailed with the agent's error", c)
	}
	if ev := eventsWith(drain(f.recorder), "Failed"); len(ev) != 1 || !strings.Contains(ev[0], "401 Unauthorized") || !strings.HasPrefix(ev[0], corev1.EventTypeWarning) {
		t.Errorf("want one Warning Failed Event with the error, got %q", ev)
	}
	// Failed is final: deleting the Job does not start another.
	if err := f.s.client.Delete(context.Background(), f.job(t, "broken-backup"), client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	f.passBackup(t, "broken")
	if jobExists(t, f.s.client, f.ns, "broken-backup") {
		t.Error("a failed backup was run again")
	}
}

func TestABackupOfAMissingBuyTrackerFails(t *testing.T) {
	f := newBackupFixture(t)
	f.createBackup(t, "orphan", "ghost", nil)
	f.passBackup(t, "orphan")
	b := f.backup(t, "orphan")
	expect(t, "phase", b.Status.Phase, buytrackerv1alpha1.BackupFailed)
	c := meta.FindStatusCondition(b.Status.Conditions, buytrackerv1alpha1.BackupConditionCompleted)
	if c == nil || c.Reason != buytrackerv1alpha1.ReasonBuyTrackerNotFound || !strings.Contains(c.Message, "ghost") {
		t.Fatalf("condition %+v: want BuyTrackerNotFound naming ghost", c)
	}
	if jobExists(t, f.s.client, f.ns, "orphan-backup") {
		t.Error("a Job was made for a missing BuyTracker")
	}
	if ev := eventsWith(drain(f.recorder), "Failed"); len(ev) != 1 || !strings.Contains(ev[0], buytrackerv1alpha1.ReasonBuyTrackerNotFound) {
		t.Errorf("events %q", ev)
	}
}

func TestABackupWaitsForAReadyMember(t *testing.T) {
	f := newBackupFixture(t)
	bt := f.readyBuyTracker(t, buytrackerv1alpha1.BuyTrackerSpec{})
	bt.Status.Leader = ""
	for i := range bt.Status.Members {
		bt.Status.Members[i].Ready = false
	}
	if err := f.s.client.Status().Update(context.Background(), bt); err != nil {
		t.Fatal(err)
	}
	f.createBackup(t, "early", "promo", nil)
	if res := f.passBackup(t, "early"); res.RequeueAfter == 0 {
		t.Error("a pending backup is not looked at again")
	}
	expect(t, "phase", f.backup(t, "early").Status.Phase, buytrackerv1alpha1.BackupPending)
	if jobExists(t, f.s.client, f.ns, "early-backup") {
		t.Fatal("a Job was made with no ready member")
	}
	bt = f.buyTracker(t)
	bt.Status.Members[2].Ready = true
	if err := f.s.client.Status().Update(context.Background(), bt); err != nil {
		t.Fatal(err)
	}
	f.passBackup(t, "early")
	expect(t, "member without a ready leader", f.backup(t, "early").Status.Member, "promo-2")
}

func TestABackupToS3GetsTheBucketFromTheEnvironmentAndCredentialsFromTheSecret(t *testing.T) {
	f := newBackupFixture(t)
	f.readyBuyTracker(t, buytrackerv1alpha1.BuyTrackerSpec{Backup: &buytrackerv1alpha1.BackupSpec{
		Destination: &buytrackerv1alpha1.BackupDestination{S3: &buytrackerv1alpha1.S3Destination{
			Endpoint: "https://store.storage:8333/", Bucket: "backups", Prefix: "shop/",
			CredentialsSecret: corev1.LocalObjectReference{Name: "store-keys"},
			CASecret:          &corev1.LocalObjectReference{Name: "store-ca"},
		}},
	}})
	f.createBackup(t, "nightly", "promo", nil)
	f.passBackup(t, "nightly")
	b := f.backup(t, "nightly")
	wantKey := "shop/" + f.ns + "/promo/nightly.btbackup"
	if b.Status.Location.S3 == nil || b.Status.Location.Path != wantKey {
		t.Fatalf("location %+v: want the bucket's key %s", b.Status.Location, wantKey)
	}
	job := f.job(t, "nightly-backup")
	agent := job.Spec.Template.Spec.Containers[0]
	if !slices.Contains(agent.Args, "--to=s3://backups/"+wantKey) {
		t.Errorf("args %q", agent.Args)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range agent.Env {
		env[e.Name] = e
	}
	expect(t, "endpoint", env["BUYTRACKER_S3_ENDPOINT"].Value, "https://store.storage:8333")
	expect(t, "region", env["BUYTRACKER_S3_REGION"].Value, "us-east-1")
	expect(t, "access key", *env["AWS_ACCESS_KEY_ID"].ValueFrom.SecretKeyRef, corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "store-keys"}, Key: "accessKeyID"})
	expect(t, "secret key", *env["AWS_SECRET_ACCESS_KEY"].ValueFrom.SecretKeyRef, corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "store-keys"}, Key: "secretAccessKey"})
	expect(t, "CA file", env["BUYTRACKER_S3_CA_FILE"].Value, "/etc/buytracker-s3/ca.crt")
	var caVolume *corev1.Volume
	for i, v := range job.Spec.Template.Spec.Volumes {
		if v.Name == "s3-ca" {
			caVolume = &job.Spec.Template.Spec.Volumes[i]
		}
		if v.PersistentVolumeClaim != nil {
			t.Errorf("an S3 backup mounts claim %s", v.PersistentVolumeClaim.ClaimName)
		}
	}
	if caVolume == nil || caVolume.Secret.SecretName != "store-ca" {
		t.Errorf("no volume of the CA Secret: %+v", job.Spec.Template.Spec.Volumes)
	}
	var claims corev1.PersistentVolumeClaimList
	if err := f.s.client.List(context.Background(), &claims, client.InNamespace(f.ns)); err != nil {
		t.Fatal(err)
	}
	if len(claims.Items) != 0 {
		t.Errorf("an S3 destination made claims %v", claims.Items)
	}
}

func TestBackupJobNamesStayWithinALabelValue(t *testing.T) {
	long := strings.Repeat("a", 70)
	for _, name := range []string{backupJobName(long), verifyJobName(strings.Repeat("b", 63)), deleteJobName(long + "x")} {
		if len(name) > 63 {
			t.Errorf("%s: %d characters", name, len(name))
		}
	}
	expect(t, "short name", backupJobName("nightly"), "nightly-backup")
	if backupJobName(long) == backupJobName(long+"x") {
		t.Error("two long names share a Job")
	}
	if !strings.HasSuffix(backupJobName(long), "-backup") {
		t.Errorf("%s lost its suffix", backupJobName(long))
	}
}

func TestABackupNeverTakesTheResultOfAnEarlierBackupsJob(t *testing.T) {
	f := newBackupFixture(t)
	bt := f.readyBuyTracker(t, buytrackerv1alpha1.BuyTrackerSpec{})
	// A backup "again" was deleted; the garbage collector has not removed
	// its Job yet, and it completed.
	earlier := &buytrackerv1alpha1.BuyTrackerBackup{ObjectMeta: metav1.ObjectMeta{Name: "again", Namespace: f.ns, UID: "earlier-uid"}}
	stale := desiredBackupJob(earlier, bt, namesOf(bt, "cluster.local"), "promo-0", "img", backupLocationFor(bt, "again"))
	stale.OwnerReferences = nil
	if err := f.s.client.Create(context.Background(), stale); err != nil {
		t.Fatal(err)
	}
	finishJob(t, f.s.client, f.ns, "again-backup", true, agentResult{Index: 1, Checksum: testChecksum})

	f.createBackup(t, "again", "promo", nil)
	f.passBackup(t, "again")
	f.passBackup(t, "again")
	b := f.backup(t, "again")
	expect(t, "phase", b.Status.Phase, buytrackerv1alpha1.BackupPending)
	if c := meta.FindStatusCondition(b.Status.Conditions, buytrackerv1alpha1.BackupConditionCompleted); c == nil || !strings.Contains(c.Message, "earlier backup") {
		t.Errorf("condition %+v: want it to say it waits for the earlier Job", c)
	}
}

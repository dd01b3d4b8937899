package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// backupFixture drives the backup and schedule reconcilers by calling
// Reconcile itself, on a clock the test sets, against a BuyTracker whose
// status says promo-1 leads and every member is ready.
type backupFixture struct {
	s        *apiServer
	ns       string
	backups  *BuyTrackerBackupReconciler
	schedule *BackupScheduleReconciler
	recorder *events.FakeRecorder
	metrics  *BackupMetrics
	now      time.Time
}

func newBackupFixture(t *testing.T) *backupFixture {
	t.Helper()
	s := needAPIServer(t)
	f := &backupFixture{s: s, ns: s.newNamespace(t), recorder: events.NewFakeRecorder(1000), now: time.Now().UTC()}
	clock := func() time.Time { return f.now }
	f.metrics = NewBackupMetrics(clock)
	f.backups = &BuyTrackerBackupReconciler{Client: s.client, APIReader: s.client, Recorder: f.recorder,
		NodeImage: "buytracker/node:test", ClusterDomain: "cluster.local", now: clock}
	f.schedule = &BackupScheduleReconciler{Client: s.client, APIReader: s.client, Recorder: f.recorder,
		NodeImage: "buytracker/node:test", Metrics: f.metrics, now: clock}
	return f
}

// readyBuyTracker creates BuyTracker promo with spec and the status of a
// settled three-member cluster led by promo-1.
func (f *backupFixture) readyBuyTracker(t *testing.T, spec buytrackerv1alpha1.BuyTrackerSpec) *buytrackerv1alpha1.BuyTracker {
	t.Helper()
	ctx := context.Background()
	bt := &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "promo", Namespace: f.ns}, Spec: spec}
	if err := f.s.client.Create(ctx, bt); err != nil {
		t.Fatalf("create buytracker: %v", err)
	}
	bt.Status.Leader = "promo-1"
	for i := range 3 {
		bt.Status.Members = append(bt.Status.Members, buytrackerv1alpha1.MemberStatus{
			Name: fmt.Sprintf("promo-%d", i), Address: fmt.Sprintf("promo-%d.promo-peers:7000", i),
			Suffrage: buytrackerv1alpha1.SuffrageVoter, Ready: true,
		})
	}
	if err := f.s.client.Status().Update(ctx, bt); err != nil {
		t.Fatalf("set buytracker status: %v", err)
	}
	return bt
}

func (f *backupFixture) createBackup(t *testing.T, name, bt string, labels map[string]string) {
	t.Helper()
	b := &buytrackerv1alpha1.BuyTrackerBackup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns, Labels: labels},
		Spec:       buytrackerv1alpha1.BuyTrackerBackupSpec{BuyTracker: bt},
	}
	if err := f.s.client.Create(context.Background(), b); err != nil {
		t.Fatalf("create buytrackerbackup %s: %v", name, err)
	}
}

// passBackup runs one pass of the backup reconciler over name.
func (f *backupFixture) passBackup(t *testing.T, name string) ctrl.Result {
	t.Helper()
	res, err := f.backups.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: f.ns, Name: name}})
	if err != nil {
		t.Fatalf("reconcile backup %s: %v", name, err)
	}
	return res
}

// passSchedule runs one pass of the schedule reconciler over promo.
func (f *backupFixture) passSchedule(t *testing.T) ctrl.Result {
	t.Helper()
	res, err := f.schedule.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: f.ns, Name: "promo"}})
	if err != nil {
		t.Fatalf("reconcile schedule: %v", err)
	}
	return res
}

func (f *backupFixture) backup(t *testing.T, name string) *buytrackerv1alpha1.BuyTrackerBackup {
	t.Helper()
	var b buytrackerv1alpha1.BuyTrackerBackup
	if err := f.s.client.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, &b); err != nil {
		t.Fatalf("get buytrackerbackup %s: %v", name, err)
	}
	return &b
}

func (f *backupFixture) job(t *testing.T, name string) *batchv1.Job {
	t.Helper()
	return getJob(t, f.s.client, f.ns, name)
}

func (f *backupFixture) buyTracker(t *testing.T) *buytrackerv1alpha1.BuyTracker {
	t.Helper()
	var bt buytrackerv1alpha1.BuyTracker
	if err := f.s.client.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: "promo"}, &bt); err != nil {
		t.Fatalf("get buytracker: %v", err)
	}
	return &bt
}

func (f *backupFixture) backupNames(t *testing.T) []string {
	t.Helper()
	var list buytrackerv1alpha1.BuyTrackerBackupList
	if err := f.s.client.List(context.Background(), &list, client.InNamespace(f.ns)); err != nil {
		t.Fatalf("list backups: %v", err)
	}
	var out []string
	for _, b := range list.Items {
		out = append(out, b.Name)
	}
	return out
}

// completeBackup gives a backup the status of one that completed at done.
func (f *backupFixture) completeBackup(t *testing.T, name string, done time.Time, index int64) {
	t.Helper()
	b := f.backup(t, name)
	b.Status.Phase = buytrackerv1alpha1.BackupCompleted
	b.Status.CompletedAt = &metav1.Time{Time: done}
	b.Status.Index, b.Status.Purchases, b.Status.Checksum = index, index-2, fmt.Sprintf("%064x", index)
	b.Status.Location = &buytrackerv1alpha1.BackupLocation{
		BackupDestination: buytrackerv1alpha1.BackupDestination{Volume: &buytrackerv1alpha1.BackupVolume{ClaimName: "promo-backups"}},
		Path:              backupPath(f.ns, "promo", name),
	}
	if err := f.s.client.Status().Update(context.Background(), b); err != nil {
		t.Fatalf("complete backup %s: %v", name, err)
	}
}

func getJob(t *testing.T, c client.Client, ns, name string) *batchv1.Job {
	t.Helper()
	var job batchv1.Job
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &job); err != nil {
		t.Fatalf("get job %s: %v", name, err)
	}
	return &job
}

func jobExists(t *testing.T, c client.Client, ns, name string) bool {
	t.Helper()
	err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &batchv1.Job{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("get job %s: %v", name, err)
	}
	return err == nil
}

// finishJob plays the Job controller and the kubelet (envtest runs
// neither): it makes the Job's pod with the termination message the agent
// wrote to /dev/termination-log, then marks the Job Complete or Failed
// with the conditions and counts the Job controller writes.
func finishJob(t *testing.T, c client.Client, ns, name string, ok bool, result any) {
	t.Helper()
	ctx := context.Background()
	job := getJob(t, c, ns, name)
	message, err := json.Marshal(result)
	if err != nil {
		t.Fatal(err)
	}
	if s, isText := result.(string); isText {
		message = []byte(s)
	}
	now := metav1.Now()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-x1", Namespace: ns,
			Labels: map[string]string{labelJobName: name, "job-name": name}},
		Spec: job.Spec.Template.Spec,
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatalf("create pod of job %s: %v", name, err)
	}
	phase, exit := corev1.PodSucceeded, int32(0)
	if !ok {
		phase, exit = corev1.PodFailed, 3
	}
	pod.Status = corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "agent", Image: job.Spec.Template.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: exit, Message: string(message), StartedAt: now, FinishedAt: now,
		}},
	}}}
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatalf("set status of pod of job %s: %v", name, err)
	}
	job.Status.StartTime = &now
	if ok {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &now
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
		}
	} else {
		job.Status.Failed = 2
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now, LastProbeTime: now},
		}
	}
	if err := c.Status().Update(ctx, job); err != nil {
		t.Fatalf("set status of job %s: %v", name, err)
	}
}

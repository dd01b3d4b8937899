package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// BackupScheduleReconciler keeps a BuyTracker's backups: it creates the
// BuyTrackerBackups its spec.backup.schedule asks for, deletes the
// scheduled ones beyond spec.backup.retention (their stored data first,
// through a delete Job), reports status.lastBackup and exports the age of
// the newest successful backup.
type BackupScheduleReconciler struct {
	client.Client
	// APIReader lists backups and reads Jobs around the cache, so that a
	// backup created by the previous pass is never created again.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// NodeImage is the image of BuyTrackers that name none (delete Jobs).
	NodeImage string
	Metrics   *BackupMetrics
	Intervals Intervals
	// now is the schedule's clock; nil means time.Now. Tests drive it.
	now func() time.Time
}

// scheduledNameLayout is the time in a scheduled backup's name,
// <bt>-<yyyymmddhhmmss>, in UTC.
const scheduledNameLayout = "20060102150405"

// defaultRetentionCount applies when spec.backup.retention is unset, as
// when it is set without a count.
const defaultRetentionCount = 7

// maxMissedTimes bounds the search for the latest missed time of a
// schedule after a long outage.
const maxMissedTimes = 100000

// Reconcile makes at most one scheduled backup, prunes what retention
// says, and writes the BuyTracker's lastBackup and BackupSchedule
// condition, once.
func (r *BackupScheduleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var bt buytrackerv1alpha1.BuyTracker
	if err := r.Get(ctx, req.NamespacedName, &bt); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.set(req.NamespacedName, time.Time{})
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !bt.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	var list buytrackerv1alpha1.BuyTrackerBackupList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(bt.Namespace)); err != nil {
		return ctrl.Result{}, fmt.Errorf("list buytrackerbackups: %w", err)
	}
	var backups []buytrackerv1alpha1.BuyTrackerBackup
	for _, b := range list.Items {
		if b.Spec.BuyTracker == bt.Name {
			backups = append(backups, b)
		}
	}
	status := bt.Status.DeepCopy()
	status.LastBackup = lastBackup(backups)
	var completed time.Time
	if status.LastBackup != nil && status.LastBackup.CompletedAt != nil {
		completed = status.LastBackup.CompletedAt.Time
	}
	r.Metrics.set(req.NamespacedName, completed)

	var result ctrl.Result
	if spec := bt.Spec.Backup; spec == nil || spec.Schedule == "" {
		meta.RemoveStatusCondition(&status.Conditions, buytrackerv1alpha1.ConditionBackupSchedule)
	} else if sched, err := parseSchedule(spec.Schedule); err != nil {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: buytrackerv1alpha1.ConditionBackupSchedule, Status: metav1.ConditionFalse, Reason: buytrackerv1alpha1.ReasonInvalidSchedule,
			Message: fmt.Sprintf("spec.backup.schedule %q: %v; no backup is taken on it and none is deleted", spec.Schedule, err), ObservedGeneration: bt.Generation,
		})
	} else {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: buytrackerv1alpha1.ConditionBackupSchedule, Status: metav1.ConditionTrue, Reason: buytrackerv1alpha1.ReasonScheduleValid,
			Message: fmt.Sprintf("backups are taken on %q (UTC)", spec.Schedule), ObservedGeneration: bt.Generation,
		})
		if result, err = r.takeScheduled(ctx, &bt, sched, backups); err != nil {
			return ctrl.Result{}, err
		}
		wait, err := r.prune(ctx, &bt, backups)
		if err != nil {
			return ctrl.Result{}, err
		}
		if wait && (result.RequeueAfter == 0 || result.RequeueAfter > r.intervals().Wait) {
			result.RequeueAfter = r.intervals().Wait
		}
	}
	if equality.Semantic.DeepEqual(*status, bt.Status) {
		return result, nil
	}
	patch := client.MergeFromWithOptions(bt.DeepCopy(), client.MergeFromWithOptimisticLock{})
	before := bt.Status.Conditions
	bt.Status = *status
	if err := r.Status().Patch(ctx, &bt, patch); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: r.intervals().Progress}, nil
		}
		return ctrl.Result{}, fmt.Errorf("write status of buytracker %s: %w", bt.Name, err)
	}
	if c := meta.FindStatusCondition(status.Conditions, buytrackerv1alpha1.ConditionBackupSchedule); c != nil && c.Reason == buytrackerv1alpha1.ReasonInvalidSchedule {
		if old := meta.FindStatusCondition(before, buytrackerv1alpha1.ConditionBackupSchedule); old == nil || old.Message != c.Message {
			r.Recorder.Eventf(&bt, nil, corev1.EventTypeWarning, "InvalidBackupSchedule", "Schedule", "%s", c.Message)
		}
	}
	return result, nil
}

// parseSchedule reads a standard five-field cron schedule (or @hourly and
// the like). Schedules are in UTC: a time zone prefix is refused rather
// than silently obeyed.
func parseSchedule(s string) (cron.Schedule, error) {
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return nil, fmt.Errorf("time zones are not supported: the schedule is in UTC")
	}
	sched, err := cron.ParseStandard(s)
	if err != nil {
		return nil, fmt.Errorf("not a cron schedule: %w", err)
	}
	return sched, nil
}

// scheduledAt is the time a scheduled backup of bt was taken for, from its
// name.
func scheduledAt(bt string, b *buytrackerv1alpha1.BuyTrackerBackup) (time.Time, bool) {
	if b.Labels[buytrackerv1alpha1.LabelScheduledBackup] != bt {
		return time.Time{}, false
	}
	rest, ok := strings.CutPrefix(b.Name, bt+"-")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(scheduledNameLayout, rest, time.UTC)
	return t, err == nil
}

// takeScheduled creates the backup of the latest scheduled time that has
// come, once: after the newest scheduled backup's time (or the
// BuyTracker's creation), times missed while the operator was down make
// one backup, not one each. While a backup of bt is unfinished, none is
// created; its completion wakes this controller.
func (r *BackupScheduleReconciler) takeScheduled(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, sched cron.Schedule, backups []buytrackerv1alpha1.BuyTrackerBackup) (ctrl.Result, error) {
	last := bt.CreationTimestamp.UTC()
	for i := range backups {
		if t, ok := scheduledAt(bt.Name, &backups[i]); ok && t.After(last) {
			last = t
		}
	}
	now := r.clock().UTC()
	due := sched.Next(last)
	if due.IsZero() {
		return ctrl.Result{}, nil
	}
	if due.After(now) {
		return ctrl.Result{RequeueAfter: due.Sub(now)}, nil
	}
	for range maxMissedTimes {
		next := sched.Next(due)
		if next.IsZero() || next.After(now) {
			break
		}
		due = next
	}
	if sched.Next(due).Before(now) {
		// More missed times than are worth walking through: take it now.
		due = now.Truncate(time.Second)
	}
	after := sched.Next(due).Sub(now)
	if slices.ContainsFunc(backups, func(b buytrackerv1alpha1.BuyTrackerBackup) bool { return unfinished(&b) }) {
		return ctrl.Result{RequeueAfter: after}, nil
	}
	b := &buytrackerv1alpha1.BuyTrackerBackup{
		ObjectMeta: metav1.ObjectMeta{
			Name: bt.Name + "-" + due.Format(scheduledNameLayout), Namespace: bt.Namespace,
			Labels: map[string]string{buytrackerv1alpha1.LabelScheduledBackup: bt.Name},
		},
		Spec: buytrackerv1alpha1.BuyTrackerBackupSpec{BuyTracker: bt.Name},
	}
	if err := r.Create(ctx, b); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return ctrl.Result{RequeueAfter: after}, nil
		}
		return ctrl.Result{}, fmt.Errorf("create buytrackerbackup %s: %w", b.Name, err)
	}
	r.Recorder.Eventf(bt, nil, corev1.EventTypeNormal, "BackupScheduled", "Schedule",
		"Created BuyTrackerBackup %s for %s", b.Name, due.Format(time.RFC3339))
	return ctrl.Result{RequeueAfter: after}, nil
}

func unfinished(b *buytrackerv1alpha1.BuyTrackerBackup) bool {
	return b.DeletionTimestamp.IsZero() && b.Status.Phase != buytrackerv1alpha1.BackupCompleted && b.Status.Phase != buytrackerv1alpha1.BackupFailed
}

// lastBackup is the newest completed backup of the list.
func lastBackup(backups []buytrackerv1alpha1.BuyTrackerBackup) *buytrackerv1alpha1.LastBackupStatus {
	var newest *buytrackerv1alpha1.BuyTrackerBackup
	for i := range backups {
		b := &backups[i]
		if b.Status.Phase != buytrackerv1alpha1.BackupCompleted || b.Status.CompletedAt == nil {
			continue
		}
		if newest == nil || newest.Status.CompletedAt.Before(b.Status.CompletedAt) {
			newest = b
		}
	}
	if newest == nil {
		return nil
	}
	return &buytrackerv1alpha1.LastBackupStatus{
		Name: newest.Name, CompletedAt: newest.Status.CompletedAt,
		Index: newest.Status.Index, Purchases: newest.Status.Purchases,
	}
}

// expiredBackups are the scheduled backups retention removes: completed
// ones beyond the count or older than maxAge, never the newest completed
// one; and failed ones older than the newest completed one (they stored
// nothing, and a newer success supersedes them).
func expiredBackups(bt *buytrackerv1alpha1.BuyTracker, backups []buytrackerv1alpha1.BuyTrackerBackup, now time.Time) (data, objects []*buytrackerv1alpha1.BuyTrackerBackup) {
	var completed, failed []*buytrackerv1alpha1.BuyTrackerBackup
	for i := range backups {
		b := &backups[i]
		if _, ok := scheduledAt(bt.Name, b); !ok || !b.DeletionTimestamp.IsZero() || b.Status.CompletedAt == nil {
			continue
		}
		switch b.Status.Phase {
		case buytrackerv1alpha1.BackupCompleted:
			completed = append(completed, b)
		case buytrackerv1alpha1.BackupFailed:
			failed = append(failed, b)
		}
	}
	if len(completed) == 0 {
		return nil, nil
	}
	slices.SortFunc(completed, func(a, b *buytrackerv1alpha1.BuyTrackerBackup) int {
		if c := b.Status.CompletedAt.Compare(a.Status.CompletedAt.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name)
	})
	count := int32(defaultRetentionCount)
	var maxAge time.Duration
	if ret := bt.Spec.Backup.Retention; ret != nil {
		count = ptr.Deref(ret.Count, defaultRetentionCount)
		if ret.MaxAge != nil {
			maxAge = ret.MaxAge.Duration
		}
	}
	for i, b := range completed[1:] {
		if int32(i+1) >= count || (maxAge > 0 && now.Sub(b.Status.CompletedAt.Time) > maxAge) {
			data = append(data, b)
		}
	}
	newest, _ := scheduledAt(bt.Name, completed[0])
	for _, b := range failed {
		if at, _ := scheduledAt(bt.Name, b); at.Before(newest) {
			objects = append(objects, b)
		}
	}
	return data, objects
}

// prune deletes the expired backups: for each with stored data, a delete
// Job removes the file and its manifest first, and the BuyTrackerBackup
// (with its Jobs) goes once that Job succeeded. A delete Job that failed
// keeps its backup, with a Warning Event; delete the Job to try again. It
// reports whether a delete Job is still running.
func (r *BackupScheduleReconciler) prune(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, backups []buytrackerv1alpha1.BuyTrackerBackup) (bool, error) {
	data, objects := expiredBackups(bt, backups, r.clock())
	for _, b := range objects {
		if err := r.deleteBackup(ctx, bt, b, "it failed and a newer scheduled backup completed"); err != nil {
			return false, err
		}
	}
	running := false
	for _, b := range data {
		if b.Status.Location == nil {
			if err := r.deleteBackup(ctx, bt, b, "retention"); err != nil {
				return false, err
			}
			continue
		}
		var job batchv1.Job
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: deleteJobName(b.Name)}, &job)
		if apierrors.IsNotFound(err) {
			job := desiredDeleteJob(b, bt, r.NodeImage)
			if err := r.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
				return false, fmt.Errorf("create job %s: %w", job.Name, err)
			}
			r.Recorder.Eventf(b, nil, corev1.EventTypeNormal, "Pruning", "Retention", "Job %s deletes the stored backup (retention of BuyTracker %s)", job.Name, bt.Name)
			running = true
			continue
		}
		if err != nil {
			return false, fmt.Errorf("get job %s: %w", deleteJobName(b.Name), err)
		}
		out, err := outcomeOf(ctx, r.APIReader, &job)
		if err != nil {
			return false, err
		}
		switch {
		case !out.done:
			running = true
		case !out.ok:
			r.Recorder.Eventf(bt, nil, corev1.EventTypeWarning, "BackupPruneFailed", "Retention",
				"Job %s could not delete the data of backup %s, which is kept: %s; delete the Job to try again", job.Name, b.Name, out.message)
		default:
			if err := r.deleteBackup(ctx, bt, b, "retention, its stored data deleted"); err != nil {
				return false, err
			}
		}
	}
	return running, nil
}

func (r *BackupScheduleReconciler) deleteBackup(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, b *buytrackerv1alpha1.BuyTrackerBackup, why string) error {
	err := r.Delete(ctx, b, client.Preconditions{UID: ptr.To(b.UID)}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete buytrackerbackup %s: %w", b.Name, err)
	}
	r.Recorder.Eventf(bt, nil, corev1.EventTypeNormal, "BackupDeleted", "Retention", "Deleted BuyTrackerBackup %s (%s)", b.Name, why)
	return nil
}

func (r *BackupScheduleReconciler) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

func (r *BackupScheduleReconciler) intervals() Intervals {
	return r.Intervals.orDefault()
}

// SetupWithManager registers the reconciler: it runs on a BuyTracker's
// spec changes, on changes of its backups, and when a delete Job changes.
func (r *BackupScheduleReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&buytrackerv1alpha1.BuyTracker{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&buytrackerv1alpha1.BuyTrackerBackup{}, handler.EnqueueRequestsFromMapFunc(backupOwner)).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(jobBuyTracker)).
		Named("buytracker-backup-schedule").
		Complete(r)
}

// backupOwner maps a backup to its BuyTracker.
func backupOwner(_ context.Context, obj client.Object) []reconcile.Request {
	b, ok := obj.(*buytrackerv1alpha1.BuyTrackerBackup)
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.BuyTracker}}}
}

// jobBuyTracker maps a delete Job to its BuyTracker.
func jobBuyTracker(_ context.Context, obj client.Object) []reconcile.Request {
	l := obj.GetLabels()
	if l[labelComponent] != componentBackupDelete || l[labelBuyTracker] == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: l[labelBuyTracker]}}}
}

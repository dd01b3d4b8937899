package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// BuyTrackerBackupReconciler takes each BuyTrackerBackup once: it runs
// `buytracker-node backup take` in a Job against a ready member of the
// BuyTracker and copies the agent's result into the status. A finished
// backup (Completed or Failed) is never run again.
type BuyTrackerBackupReconciler struct {
	client.Client
	// APIReader reads Jobs and pods around the cache: a Job created by the
	// previous pass must not look missing.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// NodeImage is the image of BuyTrackers that name none: the agent is
	// the node binary.
	NodeImage string
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain string
	Intervals     Intervals
	// now is the clock of the status' times; nil means time.Now.
	now func() time.Time
}

// +kubebuilder:rbac:groups=buytracker.dev,resources=buytrackerbackups,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=buytracker.dev,resources=buytrackerbackups/status,verbs=get;patch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=create

// Reconcile moves one backup along Pending -> Running -> Completed|Failed,
// one step per pass, writing its status once.
func (r *BuyTrackerBackupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var b buytrackerv1alpha1.BuyTrackerBackup
	if err := r.Get(ctx, req.NamespacedName, &b); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !b.DeletionTimestamp.IsZero() || b.Status.Phase == buytrackerv1alpha1.BackupCompleted || b.Status.Phase == buytrackerv1alpha1.BackupFailed {
		return ctrl.Result{}, nil
	}
	before := b.DeepCopy()
	var (
		result ctrl.Result
		err    error
	)
	if b.Status.Phase == buytrackerv1alpha1.BackupRunning {
		result, err = r.observeJob(ctx, &b)
	} else {
		result, err = r.start(ctx, &b)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if equality.Semantic.DeepEqual(before.Status, b.Status) {
		return result, nil
	}
	patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
	if err := r.Status().Patch(ctx, &b, patch); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: r.intervals().Progress}, nil
		}
		return ctrl.Result{}, fmt.Errorf("write status of buytrackerbackup %s: %w", b.Name, err)
	}
	r.recordPhaseChange(&b, before.Status.Phase)
	return result, nil
}

// start creates the backup's Job once the BuyTracker has a ready member.
func (r *BuyTrackerBackupReconciler) start(ctx context.Context, b *buytrackerv1alpha1.BuyTrackerBackup) (ctrl.Result, error) {
	var bt buytrackerv1alpha1.BuyTracker
	err := r.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.BuyTracker}, &bt)
	switch {
	case apierrors.IsNotFound(err):
		r.finish(b, buytrackerv1alpha1.BackupFailed, buytrackerv1alpha1.ReasonBuyTrackerNotFound,
			fmt.Sprintf("BuyTracker %s does not exist in namespace %s", b.Spec.BuyTracker, b.Namespace))
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("get buytracker %s: %w", b.Spec.BuyTracker, err)
	}
	member := backupMember(&bt)
	if member == "" {
		b.Status.Phase = buytrackerv1alpha1.BackupPending
		setBackupCondition(b, metav1.ConditionFalse, buytrackerv1alpha1.ReasonBackupPending,
			fmt.Sprintf("waiting for a ready member of BuyTracker %s", bt.Name))
		return ctrl.Result{RequeueAfter: r.intervals().Wait}, nil
	}
	loc := backupLocationFor(&bt, b.Name)
	if err := r.ensureBackupClaim(ctx, &bt); err != nil {
		return ctrl.Result{}, err
	}
	job := desiredBackupJob(b, &bt, namesOf(&bt, r.ClusterDomain), member, r.NodeImage, loc)
	if err := r.Create(ctx, job); apierrors.IsAlreadyExists(err) {
		var existing batchv1.Job
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(job), &existing); err != nil {
			return ctrl.Result{}, fmt.Errorf("get job %s: %w", job.Name, err)
		}
		if !metav1.IsControlledBy(&existing, b) {
			// The Job of a deleted backup of the same name, not yet
			// collected: its result is not this backup's.
			b.Status.Phase = buytrackerv1alpha1.BackupPending
			setBackupCondition(b, metav1.ConditionFalse, buytrackerv1alpha1.ReasonBackupPending,
				fmt.Sprintf("waiting for job %s of an earlier backup of the same name to be deleted", job.Name))
			return ctrl.Result{RequeueAfter: r.intervals().Wait}, nil
		}
	} else if err != nil {
		return ctrl.Result{}, fmt.Errorf("create job %s: %w", job.Name, err)
	}
	now := metav1.NewTime(r.clock())
	b.Status.Phase = buytrackerv1alpha1.BackupRunning
	b.Status.Location, b.Status.Job, b.Status.Member = &loc, job.Name, member
	b.Status.ClusterID, b.Status.StartedAt = string(bt.UID), &now
	setBackupCondition(b, metav1.ConditionFalse, buytrackerv1alpha1.ReasonBackupRunning,
		fmt.Sprintf("job %s takes the backup from member %s", job.Name, member))
	return ctrl.Result{RequeueAfter: r.intervals().Wait}, nil
}

// ensureBackupClaim creates <bt>-backups when the backups go there: the
// default destination, or a volume destination that names no claim.
func (r *BuyTrackerBackupReconciler) ensureBackupClaim(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker) error {
	var v *buytrackerv1alpha1.BackupVolume
	if s := bt.Spec.Backup; s != nil && s.Destination != nil {
		if s.Destination.S3 != nil || s.Destination.Volume.ClaimName != "" {
			return nil
		}
		v = s.Destination.Volume
	}
	claim := desiredBackupClaim(bt, v)
	var existing corev1.PersistentVolumeClaim
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(claim), &existing)
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get persistentvolumeclaim %s: %w", claim.Name, err)
	}
	if err := r.Create(ctx, claim); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create persistentvolumeclaim %s: %w", claim.Name, err)
	}
	r.Recorder.Eventf(bt, nil, corev1.EventTypeNormal, "BackupVolumeCreated", "Create",
		"Created volume claim %s for backups; it belongs to no one and outlives the BuyTracker", claim.Name)
	return nil
}

// backupMember is the member the backup is taken from: the leader when it
// is ready (its state is the newest), else any ready member; "" when none.
func backupMember(bt *buytrackerv1alpha1.BuyTracker) string {
	ready := func(name string) bool {
		i := slices.IndexFunc(bt.Status.Members, func(m buytrackerv1alpha1.MemberStatus) bool { return m.Name == name })
		return i >= 0 && bt.Status.Members[i].Ready
	}
	if bt.Status.Leader != "" && ready(bt.Status.Leader) {
		return bt.Status.Leader
	}
	for _, m := range bt.Status.Members {
		if m.Ready {
			return m.Name
		}
	}
	return ""
}

// observeJob follows the running Job and, once it finished, records its
// result.
func (r *BuyTrackerBackupReconciler) observeJob(ctx context.Context, b *buytrackerv1alpha1.BuyTrackerBackup) (ctrl.Result, error) {
	var job batchv1.Job
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Status.Job}, &job)
	if apierrors.IsNotFound(err) {
		// Never run again: a second run would be another backup.
		r.finish(b, buytrackerv1alpha1.BackupFailed, buytrackerv1alpha1.ReasonBackupJobFailed,
			fmt.Sprintf("job %s is gone before it reported a result", b.Status.Job))
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get job %s: %w", b.Status.Job, err)
	}
	out, err := outcomeOf(ctx, r.APIReader, &job)
	if err != nil {
		return ctrl.Result{}, err
	}
	switch {
	case !out.done:
		return ctrl.Result{RequeueAfter: r.intervals().Wait}, nil
	case !out.ok:
		msg := out.message
		if msg == "" {
			msg = "the job failed without a result"
		}
		r.finish(b, buytrackerv1alpha1.BackupFailed, buytrackerv1alpha1.ReasonBackupJobFailed, fmt.Sprintf("job %s failed: %s", job.Name, msg))
		return ctrl.Result{}, nil
	}
	if err := applyBackupResult(b, out.result); err != nil {
		r.finish(b, buytrackerv1alpha1.BackupFailed, buytrackerv1alpha1.ReasonBackupJobFailed, fmt.Sprintf("job %s completed, but %v", job.Name, err))
		return ctrl.Result{}, nil
	}
	r.finish(b, buytrackerv1alpha1.BackupCompleted, buytrackerv1alpha1.ReasonBackupSucceeded,
		fmt.Sprintf("backup of %d purchases at index %d, %d bytes, sha256 %s", b.Status.Purchases, b.Status.Index, b.Status.SizeBytes, b.Status.Checksum))
	return ctrl.Result{}, nil
}

// errNoResult: a completed Job without the agent's result, which would
// leave a backup nobody can check.
var errNoResult = errors.New("its pod left no result")

// applyBackupResult copies what the agent reported into the status.
func applyBackupResult(b *buytrackerv1alpha1.BuyTrackerBackup, res *agentResult) error {
	if res == nil || res.Checksum == "" {
		return errNoResult
	}
	b.Status.Index, b.Status.Purchases = res.Index, res.Purchases
	b.Status.Checksum, b.Status.SizeBytes = res.Checksum, res.SizeBytes
	if res.NodeID != "" {
		b.Status.Member = res.NodeID
	}
	if res.ClusterID != "" {
		b.Status.ClusterID = res.ClusterID
	}
	if t, err := time.Parse(time.RFC3339Nano, res.CreatedAt); err == nil {
		b.Status.BackupTime = &metav1.Time{Time: t}
	}
	return nil
}

// finish ends the backup in phase with the Completed condition's reason.
func (r *BuyTrackerBackupReconciler) finish(b *buytrackerv1alpha1.BuyTrackerBackup, phase buytrackerv1alpha1.BackupPhase, reason, message string) {
	now := metav1.NewTime(r.clock())
	b.Status.Phase, b.Status.CompletedAt = phase, &now
	status := metav1.ConditionFalse
	if phase == buytrackerv1alpha1.BackupCompleted {
		status = metav1.ConditionTrue
	}
	setBackupCondition(b, status, reason, message)
}

func setBackupCondition(b *buytrackerv1alpha1.BuyTrackerBackup, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&b.Status.Conditions, metav1.Condition{
		Type: buytrackerv1alpha1.BackupConditionCompleted, Status: status, Reason: reason,
		Message: cut(message, maxReportedMessage), ObservedGeneration: b.Generation,
	})
}

// recordPhaseChange records Started, Completed or Failed, after the status
// saying so was written.
func (r *BuyTrackerBackupReconciler) recordPhaseChange(b *buytrackerv1alpha1.BuyTrackerBackup, was buytrackerv1alpha1.BackupPhase) {
	if b.Status.Phase == was {
		return
	}
	c := meta.FindStatusCondition(b.Status.Conditions, buytrackerv1alpha1.BackupConditionCompleted)
	switch b.Status.Phase {
	case buytrackerv1alpha1.BackupRunning:
		r.Recorder.Eventf(b, nil, corev1.EventTypeNormal, "Started", "Backup", "%s", c.Message)
	case buytrackerv1alpha1.BackupCompleted:
		r.Recorder.Eventf(b, nil, corev1.EventTypeNormal, "Completed", "Backup", "%s", c.Message)
	case buytrackerv1alpha1.BackupFailed:
		r.Recorder.Eventf(b, nil, corev1.EventTypeWarning, "Failed", "Backup", "%s: %s", c.Reason, c.Message)
	}
}

func (r *BuyTrackerBackupReconciler) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

func (r *BuyTrackerBackupReconciler) intervals() Intervals {
	return r.Intervals.orDefault()
}

// SetupWithManager registers the reconciler: it runs when a backup is
// created and when its Job changes.
func (r *BuyTrackerBackupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&buytrackerv1alpha1.BuyTrackerBackup{}).
		Owns(&batchv1.Job{}).
		Named("buytrackerbackup").
		Complete(r)
}

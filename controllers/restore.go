package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// restoreReport is what the restore step of a pass learnt: the Restored
// condition, the verified backup (once), and whether the pass stops there
// (nothing else of the BuyTracker is made while its backup is unverified).
type restoreReport struct {
	condition metav1.Condition
	verified  *buytrackerv1alpha1.RestoreStatus
	hold      bool
}

// requeue is when a held pass looks again: soon while the backup is being
// verified, rarely once it failed (only a person can fix that; deleting the
// verify Job wakes the BuyTracker at once).
func (rep *restoreReport) requeue(iv Intervals) time.Duration {
	switch rep.condition.Reason {
	case buytrackerv1alpha1.ReasonBackupNotFound, buytrackerv1alpha1.ReasonBackupUnreadable, buytrackerv1alpha1.ReasonBackupInvalid:
		return iv.Steady
	}
	return iv.Wait
}

// verifiedRestore is the backup bt starts from once it was verified:
// status.restore holds where it is and its checksum.
func verifiedRestore(bt *buytrackerv1alpha1.BuyTracker) *buytrackerv1alpha1.RestoreStatus {
	if bt.Spec.Bootstrap == nil || bt.Spec.Bootstrap.FromBackup == nil {
		return nil
	}
	if r := bt.Status.Restore; r != nil && r.Location != nil && r.Checksum != "" {
		return r
	}
	return nil
}

// restoring is the verified backup while the members start from it, until
// the cluster is Available (Restored True). Then the pods no longer fetch
// it: every member has its data, and a member that loses its volume later
// rejoins from its peers; had it kept fetching, it would depend for the
// cluster's whole life on a backup that retention or a person may delete.
func restoring(bt *buytrackerv1alpha1.BuyTracker) *buytrackerv1alpha1.RestoreStatus {
	if meta.IsStatusConditionTrue(bt.Status.Conditions, buytrackerv1alpha1.ConditionRestored) {
		return nil
	}
	return verifiedRestore(bt)
}

// reconcileRestore verifies, before anything else of a new BuyTracker is
// made, the backup spec.bootstrap.fromBackup names: a Job reads the whole
// backup and checks it (`buytracker-node backup verify`). It returns nil
// when there is nothing to do: no restore, a backup verified before, or a
// StatefulSet that exists already (the cluster was made).
func (r *BuyTrackerReconciler) reconcileRestore(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames) (*restoreReport, error) {
	if bt.Spec.Bootstrap == nil || bt.Spec.Bootstrap.FromBackup == nil || verifiedRestore(bt) != nil {
		return nil, nil
	}
	var sts appsv1.StatefulSet
	switch err := r.Get(ctx, client.ObjectKey{Namespace: bt.Namespace, Name: n.statefulSet()}, &sts); {
	case err == nil:
		return nil, nil
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("get statefulset %s: %w", n.statefulSet(), err)
	}
	src := bt.Spec.Bootstrap.FromBackup
	report := func(reason, format string, args ...any) *restoreReport {
		return &restoreReport{hold: true, condition: metav1.Condition{
			Type: buytrackerv1alpha1.ConditionRestored, Status: metav1.ConditionFalse, Reason: reason,
			Message: cut(fmt.Sprintf(format, args...), maxReportedMessage), ObservedGeneration: bt.Generation,
		}}
	}
	var (
		loc      buytrackerv1alpha1.BackupLocation
		checksum = src.Checksum
		source   = src.Name
	)
	if src.Name != "" {
		var b buytrackerv1alpha1.BuyTrackerBackup
		err := r.Get(ctx, client.ObjectKey{Namespace: bt.Namespace, Name: src.Name}, &b)
		switch {
		case apierrors.IsNotFound(err):
			return report(buytrackerv1alpha1.ReasonBackupNotFound, "BuyTrackerBackup %s does not exist in namespace %s; nothing was created", src.Name, bt.Namespace), nil
		case err != nil:
			return nil, fmt.Errorf("get buytrackerbackup %s: %w", src.Name, err)
		case b.Status.Phase == buytrackerv1alpha1.BackupFailed:
			return report(buytrackerv1alpha1.ReasonBackupNotFound, "BuyTrackerBackup %s failed, it holds no backup; nothing was created", src.Name), nil
		case b.Status.Phase != buytrackerv1alpha1.BackupCompleted || b.Status.Location == nil:
			return report(buytrackerv1alpha1.ReasonVerifyingBackup, "waiting for BuyTrackerBackup %s to complete", src.Name), nil
		}
		loc = *b.Status.Location
		if checksum == "" {
			checksum = b.Status.Checksum
		}
	} else {
		loc = *src.Location.DeepCopy()
		if loc.Volume != nil && loc.Volume.ClaimName == "" {
			loc.Volume.ClaimName = defaultBackupClaim(bt.Name)
		}
		source = loc.Path
	}
	where := accessTo(loc, true, bt.Name).location

	var job batchv1.Job
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: bt.Namespace, Name: verifyJobName(bt.Name)}, &job)
	if apierrors.IsNotFound(err) {
		desired := desiredVerifyJob(bt, r.NodeImage, loc, checksum)
		if err := r.Create(ctx, desired); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create job %s: %w", desired.Name, err)
		}
		r.event(bt, corev1.EventTypeNormal, "VerifyingBackup", "Restore", "Job %s reads and verifies the backup at %s before the cluster is created from it", desired.Name, where)
		return report(buytrackerv1alpha1.ReasonVerifyingBackup, "job %s verifies the backup at %s", desired.Name, where), nil
	}
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", verifyJobName(bt.Name), err)
	}
	if !metav1.IsControlledBy(&job, bt) {
		// A deleted BuyTracker of the same name left it, not yet collected.
		return report(buytrackerv1alpha1.ReasonVerifyingBackup, "waiting for job %s of an earlier BuyTracker of the same name to be deleted", job.Name), nil
	}
	out, err := outcomeOf(ctx, r.APIReader, &job)
	if err != nil {
		return nil, err
	}
	switch {
	case !out.done:
		return report(buytrackerv1alpha1.ReasonVerifyingBackup, "job %s verifies the backup at %s", job.Name, where), nil
	case !out.ok || out.result == nil || out.result.Checksum == "":
		reason := buytrackerv1alpha1.ReasonBackupUnreadable
		if out.result != nil && out.result.Reason == agentInvalid {
			reason = buytrackerv1alpha1.ReasonBackupInvalid
		}
		msg := out.message
		if msg == "" {
			msg = "the job left no result"
		}
		return report(reason, "the backup at %s cannot be restored: %s; nothing was created (delete job %s to verify again)", where, msg, job.Name), nil
	}
	rep := report(buytrackerv1alpha1.ReasonRestoringBackup, "backup %s verified (index %d, %d purchases): the members start from it", source, out.result.Index, out.result.Purchases)
	rep.verified = &buytrackerv1alpha1.RestoreStatus{
		Source: source, Index: out.result.Index, Purchases: out.result.Purchases,
		Checksum: out.result.Checksum, Job: job.Name, Location: &loc,
	}
	return rep, nil
}

// applyRestore puts the pass's restore report into the status and, once a
// cluster started from a backup is Available, makes Restored True.
func applyRestore(bt *buytrackerv1alpha1.BuyTracker, st *buytrackerv1alpha1.BuyTrackerStatus, rep *restoreReport) {
	if bt.Spec.Bootstrap == nil || bt.Spec.Bootstrap.FromBackup == nil {
		return
	}
	if rep != nil {
		meta.SetStatusCondition(&st.Conditions, rep.condition)
		if rep.verified != nil {
			st.Restore = rep.verified
		}
		return
	}
	if st.Restore == nil || meta.IsStatusConditionTrue(st.Conditions, buytrackerv1alpha1.ConditionRestored) ||
		!meta.IsStatusConditionTrue(st.Conditions, buytrackerv1alpha1.ConditionAvailable) {
		return
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: buytrackerv1alpha1.ConditionRestored, Status: metav1.ConditionTrue, Reason: buytrackerv1alpha1.ReasonBackupRestored,
		Message:            fmt.Sprintf("the cluster started from backup %s (index %d, %d purchases) and is available", st.Restore.Source, st.Restore.Index, st.Restore.Purchases),
		ObservedGeneration: bt.Generation,
	})
}

// restoreArgs is the node's --restore-from when it starts from a backup.
func restoreArgs(bt *buytrackerv1alpha1.BuyTracker) []string {
	if restoring(bt) == nil {
		return nil
	}
	return []string{"--restore-from=" + restoreFile}
}

// withRestore adds to a member's pod what a restore needs: an init
// container that fetches the verified backup into an emptyDir, checking
// its checksum (and does nothing when the data dir already holds a node:
// a restart, or a member that rejoins), and that emptyDir mounted in the
// node. Every initial member restores the same file (docs/node.md).
func withRestore(bt *buytrackerv1alpha1.BuyTracker, spec *corev1.PodSpec) {
	rs := restoring(bt)
	if rs == nil {
		return
	}
	access := accessTo(*rs.Location, true, bt.Name)
	node := &spec.Containers[0]
	mounts := append([]corev1.VolumeMount{
		{Name: dataVolume, MountPath: dataDir, ReadOnly: true},
		{Name: "restore", MountPath: restoreMount},
		{Name: "tmp", MountPath: "/tmp"},
	}, access.mounts...)
	spec.InitContainers = append(spec.InitContainers, corev1.Container{
		Name:            "restore",
		Image:           node.Image,
		ImagePullPolicy: node.ImagePullPolicy,
		Command:         []string{nodeBinary},
		Args: []string{
			"backup", "fetch", "--from=" + access.location, "--to=" + restoreFile,
			"--checksum=" + rs.Checksum, "--skip-if-data-dir=" + dataDir,
		},
		Env:             access.env,
		Resources:       agentResources(),
		SecurityContext: agentSecurityContext(),
		VolumeMounts:    mounts,
	})
	node.VolumeMounts = append(node.VolumeMounts, corev1.VolumeMount{Name: "restore", MountPath: restoreMount, ReadOnly: true})
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "restore", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
		// The backup file: room for a large one, not unbounded.
		SizeLimit: ptr.To(storageSize(bt)),
	}}})
	spec.Volumes = append(spec.Volumes, access.volumes...)
}

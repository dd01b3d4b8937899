package controllers

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// conditionEvent is the Event recorded when a condition enters a state.
type conditionEvent struct {
	typ string
	// enters says whether cur is the state the Event reports, given the
	// condition before (nil when it was not reported yet).
	enters    func(before *metav1.Condition, cur metav1.Condition) bool
	eventType string
	reason    string
}

// becomes matches a condition whose status changed to status; for the
// conditions that are True when something is wrong, a condition reported
// for the first time counts as having been False.
func becomes(status metav1.ConditionStatus, absentMeans metav1.ConditionStatus) func(*metav1.Condition, metav1.Condition) bool {
	return func(before *metav1.Condition, cur metav1.Condition) bool {
		was := absentMeans
		if before != nil {
			was = before.Status
		}
		return was != "" && was != status && cur.Status == status
	}
}

// leaves matches a condition that was from and is now to: the end of a
// trouble, not a first answer after none.
func leaves(from, to metav1.ConditionStatus) func(*metav1.Condition, metav1.Condition) bool {
	return func(before *metav1.Condition, cur metav1.Condition) bool {
		return before != nil && before.Status == from && cur.Status == to
	}
}

// reasonBecomes matches a condition whose reason changed to reason.
func reasonBecomes(reason string) func(*metav1.Condition, metav1.Condition) bool {
	return func(before *metav1.Condition, cur metav1.Condition) bool {
		return cur.Reason == reason && (before == nil || before.Reason != reason)
	}
}

// reasonLeaves matches a condition that had reason from and now has to.
func reasonLeaves(from, to string) func(*metav1.Condition, metav1.Condition) bool {
	return func(before *metav1.Condition, cur metav1.Condition) bool {
		return before != nil && before.Reason == from && cur.Reason == to
	}
}

// conditionEvents: the cluster losing or regaining its quorum, a member
// going down or coming back, disks filling and freeing, the leader's clock
// going off and back, volume expansion that cannot go on or is done, and
// cert-manager's certificates missing, not Ready, or all Ready.
var conditionEvents = []conditionEvent{
	{buytrackerv1alpha1.ConditionAvailable, becomes(metav1.ConditionTrue, ""), corev1.EventTypeNormal, "Available"},
	{buytrackerv1alpha1.ConditionAvailable, becomes(metav1.ConditionFalse, ""), corev1.EventTypeWarning, "Unavailable"},
	{buytrackerv1alpha1.ConditionDegraded, becomes(metav1.ConditionTrue, ""), corev1.EventTypeWarning, "Degraded"},
	{buytrackerv1alpha1.ConditionDegraded, becomes(metav1.ConditionFalse, ""), corev1.EventTypeNormal, "Recovered"},
	{buytrackerv1alpha1.ConditionDiskPressure, becomes(metav1.ConditionTrue, metav1.ConditionFalse), corev1.EventTypeWarning, "DiskPressure"},
	{buytrackerv1alpha1.ConditionDiskPressure, leaves(metav1.ConditionTrue, metav1.ConditionFalse), corev1.EventTypeNormal, "DiskPressureRelieved"},
	{buytrackerv1alpha1.ConditionClockSkew, becomes(metav1.ConditionTrue, metav1.ConditionFalse), corev1.EventTypeWarning, "ClockSkew"},
	{buytrackerv1alpha1.ConditionClockSkew, leaves(metav1.ConditionTrue, metav1.ConditionFalse), corev1.EventTypeNormal, "ClockSkewResolved"},
	{buytrackerv1alpha1.ConditionVolumeExpansion, reasonBecomes(buytrackerv1alpha1.ReasonExpansionNotAllowed), corev1.EventTypeWarning, "VolumeExpansionNotAllowed"},
	{buytrackerv1alpha1.ConditionVolumeExpansion, reasonBecomes(buytrackerv1alpha1.ReasonExpansionFailed), corev1.EventTypeWarning, "VolumeExpansionFailed"},
	{buytrackerv1alpha1.ConditionVolumeExpansion, reasonLeaves(buytrackerv1alpha1.ReasonVolumesExpanding, buytrackerv1alpha1.ReasonVolumesAtSize), corev1.EventTypeNormal, "VolumesExpanded"},
	{buytrackerv1alpha1.ConditionCertificatesReady, reasonBecomes(buytrackerv1alpha1.ReasonCertManagerMissing), corev1.EventTypeWarning, "CertManagerMissing"},
	{buytrackerv1alpha1.ConditionCertificatesReady, reasonBecomes(buytrackerv1alpha1.ReasonCertManagerNotReady), corev1.EventTypeWarning, "CertificatesNotReady"},
	{buytrackerv1alpha1.ConditionCertificatesReady, reasonBecomes(buytrackerv1alpha1.ReasonCertManagerReady), corev1.EventTypeNormal, "CertificatesReady"},
	{buytrackerv1alpha1.ConditionRestored, reasonBecomes(buytrackerv1alpha1.ReasonBackupNotFound), corev1.EventTypeWarning, "RestoreFailed"},
	{buytrackerv1alpha1.ConditionRestored, reasonBecomes(buytrackerv1alpha1.ReasonBackupUnreadable), corev1.EventTypeWarning, "RestoreFailed"},
	{buytrackerv1alpha1.ConditionRestored, reasonBecomes(buytrackerv1alpha1.ReasonBackupInvalid), corev1.EventTypeWarning, "RestoreFailed"},
	{buytrackerv1alpha1.ConditionRestored, reasonBecomes(buytrackerv1alpha1.ReasonRestoringBackup), corev1.EventTypeNormal, "BackupVerified"},
	{buytrackerv1alpha1.ConditionRestored, reasonBecomes(buytrackerv1alpha1.ReasonBackupRestored), corev1.EventTypeNormal, "Restored"},
	{buytrackerv1alpha1.ConditionQuorumLost, reasonBecomes(buytrackerv1alpha1.ReasonMajorityVolumesLost), corev1.EventTypeWarning, "QuorumLost"},
}

// recordHealthChanges records the Event of every condition that entered a
// state worth one, after the status saying so was written.
func (r *BuyTrackerReconciler) recordHealthChanges(bt *buytrackerv1alpha1.BuyTracker, before, after []metav1.Condition) {
	for _, e := range conditionEvents {
		cur := meta.FindStatusCondition(after, e.typ)
		if cur == nil || !e.enters(meta.FindStatusCondition(before, e.typ), *cur) {
			continue
		}
		if e.eventType == corev1.EventTypeWarning {
			r.event(bt, e.eventType, e.reason, "Observe", "%s: %s", cur.Reason, cur.Message)
		} else {
			r.event(bt, e.eventType, e.reason, "Observe", "%s", cur.Message)
		}
	}
}

// recordReplacedMembers records one Event per member whose incarnation
// differs from the one the status recorded: it came back with an empty
// data dir. The new incarnation is in the status just written, so the
// Event is not repeated.
func (r *BuyTrackerReconciler) recordReplacedMembers(bt *buytrackerv1alpha1.BuyTracker, before, after []buytrackerv1alpha1.MemberStatus) {
	for _, m := range after {
		if old, ok := replacedIncarnation(before, m); ok {
			r.event(bt, corev1.EventTypeWarning, buytrackerv1alpha1.ReasonMemberReplaced, "Observe",
				"Member %s came back with an empty data dir (incarnation %s, was %s): it rejoins as a non-voter, copies the log from the leader and is promoted once caught up; the leader demoted its old voter entry, so no quorum counts the lost copy",
				m.Name, m.Incarnation, old)
		}
	}
}

// replacedIncarnation returns the incarnation before recorded for m when m
// now reports another one.
func replacedIncarnation(before []buytrackerv1alpha1.MemberStatus, m buytrackerv1alpha1.MemberStatus) (string, bool) {
	for _, b := range before {
		if b.Name == m.Name {
			return b.Incarnation, b.Incarnation != "" && m.Incarnation != "" && b.Incarnation != m.Incarnation
		}
	}
	return "", false
}

// recordOutOfServiceMembers records one Warning Event per member that went
// out of service, or went from diverged to halted, or did so again as a new
// incarnation, after the status saying so was written: a member that stays
// out of service is not reported again.
func (r *BuyTrackerReconciler) recordOutOfServiceMembers(bt *buytrackerv1alpha1.BuyTracker, before, after []buytrackerv1alpha1.MemberStatus) {
	for _, m := range after {
		if m.OutOfService == nil {
			continue
		}
		i := slices.IndexFunc(before, func(b buytrackerv1alpha1.MemberStatus) bool { return b.Name == m.Name })
		if i >= 0 && before[i].OutOfService != nil && before[i].OutOfService.Reason == m.OutOfService.Reason && before[i].Incarnation == m.Incarnation {
			continue
		}
		var next string
		switch {
		case m.OutOfService.Reason == buytrackerv1alpha1.OutOfServiceDiverged:
			next = "it answers nothing until a majority of the voters agrees with its state (then it serves again) or disagrees (then it halts)"
		case bt.ReplacesHaltedMembers():
			next = fmt.Sprintf("it is out of service for good; the operator replaces it (deletes volume claim %s and the pod) once a second pass sees the halt, the others keep a quorum and no other member is being replaced", claimName(m.Name))
		default:
			next = fmt.Sprintf("it is out of service for good; spec.integrity.replaceHaltedMembers is false, so it is left as it is: inspect its volume, then delete volume claim %s and pod %s to replace it", claimName(m.Name), m.Name)
		}
		r.event(bt, corev1.EventTypeWarning, buytrackerv1alpha1.ReasonMemberOutOfService, "Observe",
			"Member %s is out of service (%s: %s): %s", m.Name, strings.ToLower(string(m.OutOfService.Reason)), m.OutOfService.Message, next)
	}
}

package controllers

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// nextStatus is the status one pass reports: what it observed (v, nil when
// the pass did not get that far), the step it planned and its error.
// observedGeneration only advances when the pass observed the cluster and
// succeeded.
func nextStatus(bt *buytrackerv1alpha1.BuyTracker, v *clusterView, s step, loopErr error) buytrackerv1alpha1.BuyTrackerStatus {
	st := *bt.Status.DeepCopy()
	gen := bt.Generation
	if v != nil {
		st.Replicas, st.ReadyReplicas = 0, 0
		for _, p := range v.pods {
			if p.terminating {
				continue
			}
			st.Replicas++
			if p.ready {
				st.ReadyReplicas++
			}
		}
		st.Selector = v.names.selector().String()
		previous := st.Members
		st.Leader, st.Members = "", memberStatuses(v, previous)
		if v.raft != nil {
			st.Leader = v.raft.Leader
		}
		meta.SetStatusCondition(&st.Conditions, availableCondition(v, gen))
		meta.SetStatusCondition(&st.Conditions, degradedCondition(v, previous, gen))
		meta.SetStatusCondition(&st.Conditions, diskPressureCondition(v, gen))
		meta.SetStatusCondition(&st.Conditions, clockSkewCondition(v, maxClockSkew(bt), gen))
		if loopErr == nil {
			st.ObservedGeneration = gen
		}
	}
	meta.SetStatusCondition(&st.Conditions, progressingCondition(s, loopErr, gen))
	return st
}

// memberStatuses lists the configuration, with what each member said of
// itself in GET /status; when no node answered, the last known members are
// kept and shown as not ready. A member that did not answer keeps its
// recorded incarnation (to tell a later change) and out-of-service state,
// and loses its disk figures.
func memberStatuses(v *clusterView, previous []buytrackerv1alpha1.MemberStatus) []buytrackerv1alpha1.MemberStatus {
	if v.raft == nil {
		out := make([]buytrackerv1alpha1.MemberStatus, len(previous))
		for i, m := range previous {
			m.Ready = false
			out[i] = withNodeStatus(m, nil)
		}
		return out
	}
	var out []buytrackerv1alpha1.MemberStatus
	for _, m := range v.raft.Members {
		suffrage := buytrackerv1alpha1.SuffrageNonvoter
		if m.Suffrage == adminapi.Voter {
			suffrage = buytrackerv1alpha1.SuffrageVoter
		}
		ms := buytrackerv1alpha1.MemberStatus{Name: m.ID, Address: m.Address, Suffrage: suffrage, Ready: v.healthy(m)}
		if i := slices.IndexFunc(previous, func(p buytrackerv1alpha1.MemberStatus) bool { return p.Name == m.ID }); i >= 0 {
			ms.Incarnation, ms.OutOfService = previous[i].Incarnation, previous[i].OutOfService
		}
		out = append(out, withNodeStatus(ms, v.nodes[m.ID]))
	}
	return out
}

// withNodeStatus copies what a member reported of itself into its status;
// st is nil when it did not answer, and then the member keeps its recorded
// incarnation and out-of-service state (a halt is for good: the pass that
// sees it again must know it was seen before, and its Event is not
// repeated).
func withNodeStatus(m buytrackerv1alpha1.MemberStatus, st *adminapi.Status) buytrackerv1alpha1.MemberStatus {
	m.Joining, m.DiskPressure, m.DiskFreeBytes, m.DiskTotalBytes = false, false, nil, nil
	if st == nil {
		return m
	}
	if st.Incarnation != "" {
		m.Incarnation = st.Incarnation
	}
	m.Joining, m.DiskPressure = st.Joining, st.DiskPressure
	m.DiskFreeBytes, m.DiskTotalBytes = ptr.To(wholeMiB(st.DiskFreeBytes)), ptr.To(wholeMiB(st.DiskTotalBytes))
	m.OutOfService = outOfService(st)
	return m
}

// maxOutOfServiceMessage bounds the node's account kept in the status (the
// CRD's limit).
const maxOutOfServiceMessage = 1024

// outOfService is what a member's GET /status says of its service: nil
// while it serves. The digest itself is not kept: it changes with every
// purchase, and the status would be rewritten every pass.
func outOfService(st *adminapi.Status) *buytrackerv1alpha1.OutOfService {
	switch {
	case st.Halted != "":
		return &buytrackerv1alpha1.OutOfService{Reason: buytrackerv1alpha1.OutOfServiceHalted, Message: cut(st.Halted, maxOutOfServiceMessage)}
	case st.Diverged != "":
		return &buytrackerv1alpha1.OutOfService{Reason: buytrackerv1alpha1.OutOfServiceDiverged, Message: cut(st.Diverged, maxOutOfServiceMessage)}
	}
	return nil
}

// cut shortens s to at most n bytes, on a UTF-8 boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// wholeMiB rounds a byte count down to a whole MiB, so that a few
// purchases do not rewrite the status.
func wholeMiB(b uint64) int64 {
	return int64(min(b, math.MaxInt64) &^ (1<<20 - 1))
}

func availableCondition(v *clusterView, gen int64) metav1.Condition {
	c := metav1.Condition{Type: buytrackerv1alpha1.ConditionAvailable, Status: metav1.ConditionFalse, ObservedGeneration: gen}
	switch {
	case v.raft == nil:
		c.Reason, c.Message = buytrackerv1alpha1.ReasonUnreachable, "no node answered the admin API"
	case v.raft.Leader == "":
		c.Reason, c.Message = buytrackerv1alpha1.ReasonNoLeader, "the nodes know no leader"
	default:
		voters, healthy := v.voterCounts()
		if healthy < quorum(voters) {
			c.Reason = buytrackerv1alpha1.ReasonNoQuorum
			c.Message = fmt.Sprintf("%d of %d voters are healthy, %d needed", healthy, voters, quorum(voters))
			break
		}
		c.Status, c.Reason = metav1.ConditionTrue, buytrackerv1alpha1.ReasonQuorum
		c.Message = fmt.Sprintf("leader %s, %d of %d voters healthy", v.raft.Leader, healthy, voters)
	}
	return c
}

// degradedCondition: a member is out of service when it says so (its
// ledger halted, or its digest diverged; it answers nothing); a member is
// down when its pod is gone or not ready
// (for a non-voter still catching up: not running) or it did not report its
// index; a member is replaced while it reports that it is a new incarnation
// still joining, or when its incarnation differs from the one recorded in
// previous; a voter lags when it is more than caughtUpLag entries behind.
func degradedCondition(v *clusterView, previous []buytrackerv1alpha1.MemberStatus, gen int64) metav1.Condition {
	c := metav1.Condition{Type: buytrackerv1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, ObservedGeneration: gen}
	if v.raft == nil {
		c.Reason, c.Message = buytrackerv1alpha1.ReasonMemberUnavailable, "no node answered the admin API"
		return c
	}
	var outOfOrder, down, replaced, lagging []string
	for _, m := range v.raft.Members {
		p, ok := v.pods[m.ID]
		up := ok && !p.terminating && (p.ready || (m.Suffrage != adminapi.Voter && p.running))
		st := v.nodes[m.ID]
		switch {
		case st != nil && outOfService(st) != nil:
			o := outOfService(st)
			outOfOrder = append(outOfOrder, fmt.Sprintf("%s (%s: %s)", m.ID, strings.ToLower(string(o.Reason)), o.Message))
		case !up || m.LastIndex == nil:
			down = append(down, m.ID)
		case st != nil && st.Joining:
			replaced = append(replaced, m.ID)
		case st != nil && isReplaced(previous, m.ID, st.Incarnation):
			replaced = append(replaced, m.ID)
		case m.Suffrage == adminapi.Voter && *m.LastIndex+caughtUpLag < v.raft.CommitIndex:
			lagging = append(lagging, m.ID)
		}
	}
	switch {
	case len(outOfOrder) > 0:
		c.Reason = buytrackerv1alpha1.ReasonMemberOutOfService
		c.Message = "members that answer no reads and no writes, their state may be wrong: " + strings.Join(outOfOrder, ", ")
	case len(down) > 0:
		c.Reason, c.Message = buytrackerv1alpha1.ReasonMemberUnavailable, "members down: "+strings.Join(down, ", ")
	case len(replaced) > 0:
		c.Reason = buytrackerv1alpha1.ReasonMemberReplaced
		c.Message = "members that came back with an empty data dir and rejoin as non-voters until caught up: " + strings.Join(replaced, ", ")
	case len(lagging) > 0:
		c.Reason, c.Message = buytrackerv1alpha1.ReasonMemberLagging, "members lagging behind the leader: "+strings.Join(lagging, ", ")
	default:
		c.Status, c.Reason = metav1.ConditionFalse, buytrackerv1alpha1.ReasonMembersHealthy
		c.Message = fmt.Sprintf("all %d members are healthy", len(v.raft.Members))
	}
	return c
}

func isReplaced(previous []buytrackerv1alpha1.MemberStatus, name, incarnation string) bool {
	_, replaced := replacedIncarnation(previous, buytrackerv1alpha1.MemberStatus{Name: name, Incarnation: incarnation})
	return replaced
}

// diskPressureCondition names the members that report disk pressure; it is
// Unknown when no member answered GET /status.
func diskPressureCondition(v *clusterView, gen int64) metav1.Condition {
	c := metav1.Condition{Type: buytrackerv1alpha1.ConditionDiskPressure, Status: metav1.ConditionFalse, ObservedGeneration: gen}
	if len(v.nodes) == 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, buytrackerv1alpha1.ReasonStatusUnknown, "no member answered GET /status"
		return c
	}
	var pressed []string
	for _, name := range slices.Sorted(maps.Keys(v.nodes)) {
		if v.nodes[name].DiskPressure {
			pressed = append(pressed, name)
		}
	}
	if len(pressed) == 0 {
		c.Reason = buytrackerv1alpha1.ReasonDiskSpaceSufficient
		c.Message = fmt.Sprintf("%d of %d members answered; every one has free disk space above its watermark", len(v.nodes), len(v.pods))
		return c
	}
	c.Status, c.Reason = metav1.ConditionTrue, buytrackerv1alpha1.ReasonLowDiskSpace
	c.Message = "new purchases answer 507 on " + strings.Join(pressed, ", ") +
		": free disk space is below the node's watermark (--min-free-disk); grow spec.storage.size (when the storage class allows expansion) or free space, and the member recovers by itself"
	return c
}

// clockSkewCondition reports what the leader says of the clocks: its own
// against a majority of the voters (it stamps nothing while they disagree),
// and the largest offset it measured to any voter, which would stop that
// voter's writes should it lead.
func clockSkewCondition(v *clusterView, bound time.Duration, gen int64) metav1.Condition {
	c := metav1.Condition{Type: buytrackerv1alpha1.ConditionClockSkew, Status: metav1.ConditionFalse, ObservedGeneration: gen}
	var st *adminapi.Status
	if v.raft != nil && v.raft.Leader != "" {
		st = v.nodes[v.raft.Leader]
	}
	switch {
	case st == nil:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, buytrackerv1alpha1.ReasonStatusUnknown, "no leader answered GET /status"
	case st.ClockSkewed:
		c.Status, c.Reason = metav1.ConditionTrue, buytrackerv1alpha1.ReasonLeaderClockSkewed
		c.Message = fmt.Sprintf("the clock of leader %s differs from a majority of the voters' by more than %s (largest offset %.1fs): it stamps nothing, purchases answer 503, and it hands leadership over; check the time synchronisation (NTP) of its node",
			st.ID, bound, st.MaxClockOffsetSeconds)
	case st.MaxClockOffsetSeconds > bound.Seconds():
		c.Status, c.Reason = metav1.ConditionTrue, buytrackerv1alpha1.ReasonVoterClockOffset
		c.Message = fmt.Sprintf("leader %s's clock agrees with a majority, but a voter's differs from it by %.1fs, more than %s: should that voter lead, it would stamp nothing; check the time synchronisation (NTP) of the members' nodes",
			st.ID, st.MaxClockOffsetSeconds, bound)
	default:
		c.Reason = buytrackerv1alpha1.ReasonClocksAgree
		c.Message = fmt.Sprintf("the voters' clocks agree with leader %s's within %s", st.ID, bound)
	}
	return c
}

func progressingCondition(s step, loopErr error, gen int64) metav1.Condition {
	c := metav1.Condition{Type: buytrackerv1alpha1.ConditionProgressing, Status: metav1.ConditionTrue,
		ObservedGeneration: gen, Reason: s.phase, Message: s.note}
	switch {
	case loopErr != nil:
		c.Reason, c.Message = buytrackerv1alpha1.ReasonReconcileError, loopErr.Error()
	case s.phase == buytrackerv1alpha1.ReasonReconciled:
		c.Status = metav1.ConditionFalse
	}
	return c
}

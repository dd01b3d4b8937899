package controllers

import (
	"fmt"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// isOutOfService says whether the member's node reported this pass that it
// answers nothing (its ledger halted, or its digest diverged).
func (v clusterView) isOutOfService(id string) bool {
	st := v.nodes[id]
	return st != nil && (st.Halted != "" || st.Diverged != "")
}

// planPendingOnDeletedClaim deletes, again, a pod that waits for a volume
// claim being deleted: the StatefulSet recreated it before the old claim
// was gone, and it would wait forever; made again once the claim is gone,
// it gets a new one. Deleting a pod that never ran costs nothing, so this
// needs no leader.
func (v clusterView) planPendingOnDeletedClaim() (step, bool) {
	for i := range max(v.desired, v.stsReplicas) {
		id := v.names.pod(i)
		p, ok := v.pods[id]
		if !ok || !p.pending || p.running || p.terminating || !v.claims[id].terminating {
			continue
		}
		return step{action: actionDeletePod, phase: buytrackerv1alpha1.ReasonReplacingMember, member: id,
			note: fmt.Sprintf("Deleting pod %s again: it waits for volume claim %s, which is being deleted; made again, it gets a new claim", id, v.claims[id].name)}, true
	}
	return step{}, false
}

// planReplacement replaces a member whose ledger halted (out of service for
// good) the way a lost volume is replaced: its claim and pod are deleted,
// and the node the StatefulSet starts on a new, empty volume rejoins as a
// new incarnation. Only a halt seen by two passes counts, never the
// leader's, one member at a time, and only while a quorum of the other
// voters is healthy. A diverged member is not replaced: it may clear.
func (v clusterView) planReplacement() (step, bool) {
	if !v.replaceHalted {
		return step{}, false
	}
	var m adminapi.Member
	for i := range v.desired {
		if c, ok := v.member(v.names.pod(i)); ok && v.nodes[c.ID] != nil && v.nodes[c.ID].Halted != "" {
			m = c
			break
		}
	}
	if m.ID == "" {
		return step{}, false
	}
	st := v.nodes[m.ID]
	if inc, ok := v.haltRecorded[m.ID]; !ok || inc != st.Incarnation {
		return wait(buytrackerv1alpha1.ReasonReplacingMember,
			"%s halted (%s); it is replaced once the next pass sees the halt too", m.ID, st.Halted), true
	}
	if m.ID == v.raft.Leader {
		return wait(buytrackerv1alpha1.ReasonReplacingMember,
			"%s halted but is still reported as the leader; waiting for another leader before replacing it", m.ID), true
	}
	for _, o := range v.raft.Members {
		if o.ID == m.ID {
			continue
		}
		if p, ok := v.pods[o.ID]; !ok || !p.running || p.terminating {
			return wait(buytrackerv1alpha1.ReasonReplacingMember,
				"%s halted; waiting for the pod of %s to run before replacing it (one member at a time)", m.ID, o.ID), true
		}
		if ost := v.nodes[o.ID]; ost != nil && ost.Joining {
			return wait(buytrackerv1alpha1.ReasonReplacingMember,
				"%s halted; waiting for %s to finish rejoining before replacing it (one member at a time)", m.ID, o.ID), true
		}
	}
	voters, healthy := v.voterCounts() // m is not healthy: it is out of service
	if healthy < quorum(voters) {
		return wait(buytrackerv1alpha1.ReasonReplacingMember,
			"%s halted; replacing it needs a quorum of the other voters healthy: %d of %d, %d needed", m.ID, healthy, voters, quorum(voters)), true
	}
	return step{action: actionReplaceMember, phase: buytrackerv1alpha1.ReasonReplacingMember, member: m.ID,
		note: fmt.Sprintf("Replacing member %s, whose ledger halted (%s): deleting its volume claim %s and its pod; it rejoins on a new volume as a new incarnation and copies the log from the leader",
			m.ID, st.Halted, claimName(m.ID))}, true
}

// claimName is the volume claim the StatefulSet makes for a pod.
func claimName(pod string) string { return dataVolume + "-" + pod }

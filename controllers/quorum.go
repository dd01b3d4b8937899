package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// A quorum is lost for good when a majority of the voters lost their
// volumes: they come back as empty new incarnations that refuse to vote until
// a leader takes them back, and the voters that kept their data are too few
// to elect one. Members that merely do not answer are not counted as lost:
// they may come back with their data. The operator reports it (condition
// QuorumLost, naming each survivor with its last index) and waits for a
// person: the annotation buytracker.dev/recover-quorum, set to a new value,
// recovers the cluster from the survivor with the highest last index (lowest
// ordinal on a tie). Two passes: the first records the decision in
// status.quorumRecovery (phase Recovering: who, at which index), the second
// asks that survivor to recover (POST /cluster/recover), and asks again after
// an operator restart until it answers; the node answers a repeated request
// the same. The ordinary membership steps then add the other pods back.

// survivor is a voter that kept its data, with its last Raft index.
type survivor struct {
	id        string
	lastIndex uint64
}

// quorumAssessment is what one pass learnt about the voters' data.
type quorumAssessment struct {
	// lost: fewer than a quorum of the voters can ever vote again.
	lost   bool
	voters int
	// survivors kept their data, most advanced first; empty came back
	// without it; silent did not answer GET /status (they may come back).
	survivors []survivor
	empty     []string
	silent    []string
}

// assessQuorum classifies the configuration's voters by what they answer of
// themselves. Only without a leader can the quorum be lost. The
// configuration is the one a node with data reported this pass, or else the
// members the status last recorded.
func (v clusterView) assessQuorum(previous []buytrackerv1alpha1.MemberStatus) quorumAssessment {
	var q quorumAssessment
	if v.raft != nil && v.raft.Leader != "" {
		return q
	}
	for _, st := range v.nodes {
		if st.Leader != "" {
			return q
		}
	}
	var voters []string
	if v.raft != nil {
		for _, m := range v.raft.Members {
			if m.Suffrage == adminapi.Voter {
				voters = append(voters, m.ID)
			}
		}
	}
	if len(voters) == 0 {
		for _, m := range previous {
			if m.Suffrage == buytrackerv1alpha1.SuffrageVoter {
				voters = append(voters, m.Name)
			}
		}
	}
	q.voters = len(voters)
	for _, id := range voters {
		st := v.nodes[id]
		switch {
		case st == nil:
			q.silent = append(q.silent, id)
		case st.HasData && !st.Joining:
			q.survivors = append(q.survivors, survivor{id: id, lastIndex: st.LastIndex})
		case st.Joining && !st.HasData:
			q.empty = append(q.empty, id)
		default:
			// Neither: it has not decided yet how it takes part.
			q.silent = append(q.silent, id)
		}
	}
	slices.SortFunc(q.survivors, func(a, b survivor) int {
		return cmp.Or(-cmp.Compare(a.lastIndex, b.lastIndex), cmp.Compare(v.ordinalOf(a.id), v.ordinalOf(b.id)))
	})
	slices.Sort(q.empty)
	slices.Sort(q.silent)
	q.lost = q.voters > 0 && len(q.empty) > 0 && len(q.survivors)+len(q.silent) < quorum(q.voters)
	return q
}

func (q quorumAssessment) describeSurvivors() string {
	if len(q.survivors) == 0 {
		return "none"
	}
	parts := make([]string, len(q.survivors))
	for i, s := range q.survivors {
		parts[i] = fmt.Sprintf("%s (last index %d)", s.id, s.lastIndex)
	}
	return strings.Join(parts, ", ")
}

// quorumLostCondition reports the assessment, or the recovery that ended
// the last loss.
func quorumLostCondition(q quorumAssessment, rec *buytrackerv1alpha1.QuorumRecoveryStatus, gen int64) metav1.Condition {
	c := metav1.Condition{Type: buytrackerv1alpha1.ConditionQuorumLost, Status: metav1.ConditionFalse, ObservedGeneration: gen}
	switch {
	case q.lost && rec != nil && rec.Phase == buytrackerv1alpha1.ReasonQuorumRecovering:
		c.Status, c.Reason = metav1.ConditionTrue, buytrackerv1alpha1.ReasonQuorumRecovering
		c.Message = fmt.Sprintf("recovering from %s at index %d: %s", rec.From, rec.Index, rec.Message)
	case q.lost:
		c.Status, c.Reason = metav1.ConditionTrue, buytrackerv1alpha1.ReasonMajorityVolumesLost
		c.Message = fmt.Sprintf("%d of %d voters came back without their data (%s); survivors: %s",
			len(q.empty), q.voters, strings.Join(q.empty, ", "), q.describeSurvivors())
		if len(q.silent) > 0 {
			c.Message += fmt.Sprintf("; not answering, and may hold more: %s", strings.Join(q.silent, ", "))
		}
		if len(q.survivors) == 0 {
			c.Message += ". No survivor answers: there is nothing to recover from; restore a backup into a new BuyTracker"
		} else {
			best := q.survivors[0]
			c.Message += fmt.Sprintf(". The cluster cannot commit. Setting annotation %s to a new value recovers it from %s at index %d; purchases acknowledged after that index are lost (docs/operator.md)",
				buytrackerv1alpha1.AnnotationRecoverQuorum, best.id, best.lastIndex)
		}
	case rec != nil && rec.Phase == buytrackerv1alpha1.ReasonQuorumRecovered:
		c.Reason = buytrackerv1alpha1.ReasonQuorumRecovered
		c.Message = fmt.Sprintf("recovered from %s at index %d; the other members rejoin through the ordinary membership path", rec.From, rec.Index)
	default:
		c.Reason, c.Message = buytrackerv1alpha1.ReasonQuorumIntact, "the voters that lost their data, if any, are not a majority"
	}
	return c
}

// Phases of status.quorumRecovery besides the condition's reasons.
const quorumRecoveryRefused = "Refused"

// quorumReport is what the quorum step reports for the status.
type quorumReport struct {
	condition metav1.Condition
	recovery  *buytrackerv1alpha1.QuorumRecoveryStatus
	// acted: the step changed something; look again soon.
	acted bool
}

// reconcileQuorum assesses the voters and answers the recover-quorum
// annotation: at most one request per value, one call per pass.
func (r *BuyTrackerReconciler) reconcileQuorum(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, v clusterView, creds adminCredentials) quorumReport {
	q := v.assessQuorum(bt.Status.Members)
	rec := bt.Status.QuorumRecovery.DeepCopy()
	request := bt.Annotations[buytrackerv1alpha1.AnnotationRecoverQuorum]
	report := quorumReport{}
	switch {
	case rec != nil && rec.Phase == buytrackerv1alpha1.ReasonQuorumRecovering && rec.Request == request:
		report.acted = true
		rec = r.callRecover(ctx, bt, n, creds, rec)
	case request != "" && (rec == nil || rec.Request != request):
		report.acted = true
		rec = r.decideRecovery(bt, q, request)
	}
	report.recovery = rec
	report.condition = quorumLostCondition(q, rec, bt.Generation)
	logf.FromContext(ctx).V(1).Info("Assessed the quorum", "lost", q.lost, "survivors", q.describeSurvivors(), "empty", q.empty, "silent", q.silent)
	return report
}

// decideRecovery answers a new value of the annotation: it records whom the
// cluster is recovered from, or why nothing is done.
func (r *BuyTrackerReconciler) decideRecovery(bt *buytrackerv1alpha1.BuyTracker, q quorumAssessment, request string) *buytrackerv1alpha1.QuorumRecoveryStatus {
	now := metav1.NewTime(r.clock())
	rec := &buytrackerv1alpha1.QuorumRecoveryStatus{Request: request, Time: &now}
	switch {
	case !q.lost:
		rec.Phase = quorumRecoveryRefused
		rec.Message = "the quorum is not lost: a leader is known, or the voters that lost their data are not a majority (members that do not answer may come back); nothing was done"
	case len(q.survivors) == 0:
		rec.Phase = quorumRecoveryRefused
		rec.Message = "no voter that kept its data answers: there is nothing to recover from; nothing was done"
	default:
		best := q.survivors[0]
		rec.Phase, rec.From, rec.Index = buytrackerv1alpha1.ReasonQuorumRecovering, best.id, int64(best.lastIndex)
		rec.Message = fmt.Sprintf("asking %s to become the only voter; survivors: %s", best.id, q.describeSurvivors())
		r.event(bt, corev1.EventTypeWarning, "QuorumRecoveryStarted", "RecoverQuorum",
			"Recovering the lost quorum from %s at index %d (annotation %s=%s); purchases acknowledged after that index are lost",
			best.id, best.lastIndex, buytrackerv1alpha1.AnnotationRecoverQuorum, request)
		return rec
	}
	r.event(bt, corev1.EventTypeWarning, "QuorumRecoveryRefused", "RecoverQuorum", "Annotation %s=%s: %s",
		buytrackerv1alpha1.AnnotationRecoverQuorum, request, rec.Message)
	return rec
}

// callRecover asks the chosen survivor to recover at the recorded index.
// A refusal ends the request; another failure is tried again next pass.
func (r *BuyTrackerReconciler) callRecover(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, creds adminCredentials, rec *buytrackerv1alpha1.QuorumRecoveryStatus) *buytrackerv1alpha1.QuorumRecoveryStatus {
	res, err := r.recoverOn(ctx, n, creds, rec.From, uint64(rec.Index))
	var refused *adminapi.RecoverRefusedError
	switch {
	case err == nil:
		now := metav1.NewTime(r.clock())
		rec.Phase, rec.Time = buytrackerv1alpha1.ReasonQuorumRecovered, &now
		rec.Message = fmt.Sprintf("%s is the only voter (term %d); the other members are added back as non-voters and promoted once caught up", rec.From, res.Term)
		r.event(bt, corev1.EventTypeNormal, "QuorumRecovered", "RecoverQuorum", "Recovered the lost quorum from %s at index %d", rec.From, rec.Index)
	case errors.As(err, &refused):
		rec.Phase = quorumRecoveryRefused
		rec.Message = fmt.Sprintf("%s refused (its last index %d): %s; nothing was done", rec.From, refused.LastIndex, refused.Message)
		r.event(bt, corev1.EventTypeWarning, "QuorumRecoveryRefused", "RecoverQuorum", "%s", rec.Message)
	default:
		rec.Message = fmt.Sprintf("asking %s failed, trying again: %v", rec.From, err)
		r.event(bt, corev1.EventTypeWarning, "QuorumRecoveryFailed", "RecoverQuorum", "%s", rec.Message)
	}
	return rec
}

func (r *BuyTrackerReconciler) recoverOn(ctx context.Context, n clusterNames, creds adminCredentials, pod string, index uint64) (*adminapi.RecoverResult, error) {
	admin, err := r.adminClient(n, pod, creds)
	if err != nil {
		return nil, err
	}
	// The node replays its log and elects itself before it answers; when
	// that outlasts the call, the next pass asks again and the node answers
	// 503 until it is done, then as the first time.
	ctx, cancel := context.WithTimeout(ctx, r.adminBudget().Change)
	defer cancel()
	return admin.RecoverQuorum(ctx, index)
}

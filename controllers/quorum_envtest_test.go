package controllers

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// annotate sets the recover-quorum annotation.
func (f *directFixture) annotate(t *testing.T, value string) {
	t.Helper()
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) {
		if bt.Annotations == nil {
			bt.Annotations = map[string]string{}
		}
		bt.Annotations[buytrackerv1alpha1.AnnotationRecoverQuorum] = value
	})
}

// recoverCalls are the POST /cluster/recover calls the nodes received.
func (f *directFixture) recoverCalls() []string {
	return slices.DeleteFunc(f.cluster.callLog(), func(c string) bool { return !strings.HasPrefix(c, "recover ") })
}

// loseQuorum makes the scripted cluster leaderless: empty pods come back
// as new incarnations waiting to rejoin, the others keep their data up to
// the given last index.
func (f *directFixture) loseQuorum(empty []string, survivors map[string]uint64) {
	f.cluster.mu.Lock()
	f.cluster.leader = ""
	f.cluster.mu.Unlock()
	for _, pod := range empty {
		f.cluster.setNodeStatus(pod, func(st *adminapi.Status) {
			st.Joining, st.HasData, st.LastIndex, st.Incarnation = true, false, 0, "new-"+pod
		})
	}
	for pod, last := range survivors {
		f.cluster.setNodeStatus(pod, func(st *adminapi.Status) { st.HasData, st.LastIndex = true, last })
	}
}

func (f *directFixture) recovery(t *testing.T) buytrackerv1alpha1.QuorumRecoveryStatus {
	t.Helper()
	rec := f.buyTracker(t).Status.QuorumRecovery
	if rec == nil {
		t.Fatal("no status.quorumRecovery")
	}
	return *rec
}

func TestTheRecoverAnnotationDoesNothingWhileTheQuorumHolds(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	f.settle(t)
	c := f.condition(t, buytrackerv1alpha1.ConditionQuorumLost)
	expect(t, "QuorumLost of a healthy cluster", fmt.Sprint(c.Status, " ", c.Reason), "False "+buytrackerv1alpha1.ReasonQuorumIntact)
	recorder := f.r.Recorder.(*events.FakeRecorder)
	drain(recorder)

	f.annotate(t, "please")
	f.pass(t)
	rec := f.recovery(t)
	expect(t, "answer to the annotation", fmt.Sprint(rec.Request, " ", rec.Phase, " ", rec.From), "please Refused ")
	if !strings.Contains(rec.Message, "the quorum is not lost") {
		t.Errorf("refusal message %q does not say the quorum is not lost", rec.Message)
	}
	expect(t, "recover calls", f.recoverCalls(), []string(nil))
	expect(t, "refusal events", len(eventsWith(drain(recorder), "QuorumRecoveryRefused")), 1)
	f.settle(t)
	expect(t, "events of later passes", drain(recorder), []string(nil))
	expect(t, "members", f.cluster.memberIDs(), []string{"promo-0:voter", "promo-1:voter", "promo-2:voter"})

	// One member's volume lost is not a lost quorum: the others still make
	// one, and a member that does not answer may come back.
	f.loseQuorum([]string{"promo-0"}, map[string]uint64{"promo-1": 120})
	f.cluster.setDown("promo-2", true)
	f.annotate(t, "again")
	f.pass(t)
	expect(t, "answer with one volume lost and one member silent", f.recovery(t).Phase, quorumRecoveryRefused)
	c = f.condition(t, buytrackerv1alpha1.ConditionQuorumLost)
	expect(t, "QuorumLost", fmt.Sprint(c.Status, " ", c.Reason), "False "+buytrackerv1alpha1.ReasonQuorumIntact)
	expect(t, "recover calls", f.recoverCalls(), []string(nil))
}

func TestALostQuorumIsReportedAndRecoveredFromTheMostAdvancedSurvivorOnce(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{Replicas: ptr.To(int32(5))})
	f.settle(t)
	recorder := f.r.Recorder.(*events.FakeRecorder)
	drain(recorder)

	// Three of five volumes lost for good; promo-1 and promo-3 kept theirs,
	// at the same index: the lowest ordinal is chosen.
	f.loseQuorum([]string{"promo-0", "promo-2", "promo-4"}, map[string]uint64{"promo-1": 130, "promo-3": 130})
	f.pass(t)
	c := f.condition(t, buytrackerv1alpha1.ConditionQuorumLost)
	expect(t, "QuorumLost", fmt.Sprint(c.Status, " ", c.Reason), "True "+buytrackerv1alpha1.ReasonMajorityVolumesLost)
	for _, part := range []string{"3 of 5 voters", "promo-0, promo-2, promo-4", "promo-1 (last index 130), promo-3 (last index 130)", "from promo-1 at index 130"} {
		if !strings.Contains(c.Message, part) {
			t.Errorf("QuorumLost message %q lacks %q", c.Message, part)
		}
	}
	expect(t, "QuorumLost events", len(eventsWith(drain(recorder), "QuorumLost")), 1)
	f.pass(t)
	expect(t, "events of a second pass", drain(recorder), []string(nil))
	expect(t, "recover calls without the annotation", f.recoverCalls(), []string(nil))

	// The annotation: the first pass records the choice, the next asks. The
	// survivor's log moved meanwhile (a survivor never does without a
	// leader; here it makes the node refuse): nothing is done.
	f.annotate(t, "1")
	f.pass(t)
	rec := f.recovery(t)
	expect(t, "recorded choice", fmt.Sprint(rec.Request, " ", rec.Phase, " ", rec.From, " ", rec.Index), "1 Recovering promo-1 130")
	expect(t, "recover calls of the first pass", f.recoverCalls(), []string(nil))
	expect(t, "QuorumLost while recovering", f.condition(t, buytrackerv1alpha1.ConditionQuorumLost).Reason, buytrackerv1alpha1.ReasonQuorumRecovering)
	f.cluster.setNodeStatus("promo-1", func(st *adminapi.Status) { st.HasData, st.LastIndex = true, 131 })
	f.pass(t)
	rec = f.recovery(t)
	expect(t, "answer to a refusal", rec.Phase, quorumRecoveryRefused)
	if !strings.Contains(rec.Message, "last index 131") {
		t.Errorf("refusal message %q does not carry the node's last index", rec.Message)
	}
	expect(t, "recover calls", f.recoverCalls(), []string{"recover promo-1 130"})
	recorded := drain(recorder)
	expect(t, "events", len(eventsWith(recorded, "QuorumRecoveryStarted"))+len(eventsWith(recorded, "QuorumRecoveryRefused")), 2)

	// Asked again. The operator restarts between the two passes: what it
	// decided is in the status, and it asks once.
	f.annotate(t, "2")
	f.pass(t)
	expect(t, "recorded choice", fmt.Sprint(f.recovery(t).Phase, " ", f.recovery(t).From, " ", f.recovery(t).Index), "Recovering promo-1 131")
	restarted := *f.r
	restarted.Recorder = events.NewFakeRecorder(1000)
	f.r = &restarted
	recorder = f.r.Recorder.(*events.FakeRecorder)
	f.pass(t)
	rec = f.recovery(t)
	expect(t, "after the call", fmt.Sprint(rec.Request, " ", rec.Phase, " ", rec.From, " ", rec.Index), "2 Recovered promo-1 131")
	expect(t, "members right after", f.cluster.memberIDs(), []string{"promo-1:voter"})
	expect(t, "QuorumRecovered events", len(eventsWith(drain(recorder), "QuorumRecovered")), 1)

	// The ordinary membership path adds the others; they rejoin, catch up
	// and are promoted.
	for range 4 {
		f.pass(t)
	}
	for _, pod := range []string{"promo-0", "promo-2", "promo-4"} {
		f.cluster.setNodeStatus(pod, func(st *adminapi.Status) { st.HasData, st.Incarnation = true, "new-"+pod })
	}
	f.cluster.setNodeStatus("promo-3", nil)
	f.settle(t)
	expect(t, "members at the end", f.cluster.memberIDs(), []string{"promo-1:voter", "promo-0:voter", "promo-2:voter", "promo-3:voter", "promo-4:voter"})
	expect(t, "recover calls at the end", f.recoverCalls(), []string{"recover promo-1 130", "recover promo-1 131"})
	c = f.condition(t, buytrackerv1alpha1.ConditionQuorumLost)
	expect(t, "QuorumLost at the end", fmt.Sprint(c.Status, " ", c.Reason), "False "+buytrackerv1alpha1.ReasonQuorumRecovered)
	expect(t, "Available at the end", f.condition(t, buytrackerv1alpha1.ConditionAvailable).Status, metav1.ConditionTrue)
}

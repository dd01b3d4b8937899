package controllers

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

func TestStatusReportsEachMembersDiskClockAndIncarnation(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	for i := range int32(3) {
		inc := fmt.Sprintf("first-%d", i)
		f.cluster.setNodeStatus(testNames.pod(i), func(st *adminapi.Status) {
			st.Incarnation, st.DiskFreeBytes, st.DiskTotalBytes = inc, 900<<20+77, 1<<30
		})
	}
	f.settle(t)
	f.cluster.takeStatusCalls()
	recorder := f.r.Recorder.(*events.FakeRecorder)
	drain(recorder)

	// One pass asks each member for its status once, however many of the
	// figures it reports.
	settled := f.buyTracker(t)
	f.pass(t)
	expect(t, "GET /status calls of one pass", f.cluster.takeStatusCalls(), map[string]int{"promo-0": 1, "promo-1": 1, "promo-2": 1})
	expect(t, "resourceVersion of a pass with nothing new", f.buyTracker(t).ResourceVersion, settled.ResourceVersion)
	m := settled.Status.Members[1]
	expect(t, "promo-1 as reported", fmt.Sprint(m.Incarnation, " ", m.Joining, " ", *m.DiskFreeBytes, " ", *m.DiskTotalBytes, " ", m.DiskPressure),
		fmt.Sprint("first-1 false ", 900<<20, " ", 1<<30, " false"))
	expect(t, "DiskPressure", f.condition(t, buytrackerv1alpha1.ConditionDiskPressure).Reason, buytrackerv1alpha1.ReasonDiskSpaceSufficient)
	expect(t, "ClockSkew", f.condition(t, buytrackerv1alpha1.ConditionClockSkew).Reason, buytrackerv1alpha1.ReasonClocksAgree)

	// promo-1 comes back with an empty data dir: a new incarnation that
	// rejoins as a non-voter (the leader demoted its old entry).
	f.cluster.setNodeStatus("promo-1", func(st *adminapi.Status) {
		st.Incarnation, st.Joining, st.DiskFreeBytes, st.DiskTotalBytes = "second-1", true, 1000<<20, 1<<30
	})
	f.cluster.mu.Lock()
	f.cluster.members[1].Suffrage = adminapi.Nonvoter
	f.cluster.mu.Unlock()
	f.pass(t)
	c := f.condition(t, buytrackerv1alpha1.ConditionDegraded)
	expect(t, "Degraded", fmt.Sprint(c.Status, " ", c.Reason), "True "+buytrackerv1alpha1.ReasonMemberReplaced)
	bt := f.buyTracker(t)
	expect(t, "recorded incarnation", fmt.Sprint(bt.Status.Members[1].Incarnation, " joining=", bt.Status.Members[1].Joining), "second-1 joining=true")
	recorded := drain(recorder)
	if got := eventsWith(recorded, buytrackerv1alpha1.ReasonMemberReplaced); len(got) != 1 {
		t.Fatalf("MemberReplaced events %q, want one; all: %q", got, recorded)
	}
	f.pass(t)
	if got := eventsWith(drain(recorder), buytrackerv1alpha1.ReasonMemberReplaced); len(got) != 0 {
		t.Errorf("MemberReplaced recorded again for the same incarnation: %q", got)
	}

	// It catches up and votes again: Degraded clears, no new event.
	f.cluster.setNodeStatus("promo-1", func(st *adminapi.Status) {
		st.Incarnation, st.DiskFreeBytes, st.DiskTotalBytes = "second-1", 1000<<20, 1<<30
	})
	f.settle(t)
	c = f.condition(t, buytrackerv1alpha1.ConditionDegraded)
	expect(t, "Degraded once promoted", fmt.Sprint(c.Status, " ", c.Reason), "False "+buytrackerv1alpha1.ReasonMembersHealthy)
	recorded = drain(recorder)
	expect(t, "MemberReplaced events after the rejoin", len(eventsWith(recorded, buytrackerv1alpha1.ReasonMemberReplaced)), 0)
	expect(t, "Recovered events", len(eventsWith(recorded, "Recovered")), 1)

	// promo-2 fills its disk and the leader's clock jumps.
	f.cluster.setNodeStatus("promo-2", func(st *adminapi.Status) {
		st.Incarnation, st.DiskFreeBytes, st.DiskTotalBytes, st.DiskPressure = "first-2", 10<<20, 1<<30, true
	})
	f.cluster.setNodeStatus("promo-0", func(st *adminapi.Status) {
		st.Incarnation, st.DiskFreeBytes, st.DiskTotalBytes = "first-0", 900<<20, 1<<30
		st.ClockSkewed, st.MaxClockOffsetSeconds = true, 90000
	})
	f.pass(t)
	c = f.condition(t, buytrackerv1alpha1.ConditionDiskPressure)
	expect(t, "DiskPressure", fmt.Sprint(c.Status, " ", c.Reason), "True "+buytrackerv1alpha1.ReasonLowDiskSpace)
	c = f.condition(t, buytrackerv1alpha1.ConditionClockSkew)
	expect(t, "ClockSkew", fmt.Sprint(c.Status, " ", c.Reason), "True "+buytrackerv1alpha1.ReasonLeaderClockSkewed)
	expect(t, "promo-2 under pressure", f.buyTracker(t).Status.Members[2].DiskPressure, true)
	recorded = drain(recorder)
	for _, reason := range []string{"DiskPressure", "ClockSkew"} {
		if got := eventsWith(recorded, reason); len(got) != 1 {
			t.Errorf("%s events %q, want one; all: %q", reason, got, recorded)
		}
	}
	f.pass(t)
	expect(t, "events of a second pass under pressure", drain(recorder), []string(nil))

	f.cluster.setNodeStatus("promo-2", nil)
	f.cluster.setNodeStatus("promo-0", nil)
	f.pass(t)
	expect(t, "DiskPressure after", f.condition(t, buytrackerv1alpha1.ConditionDiskPressure).Status, metav1.ConditionFalse)
	expect(t, "ClockSkew after", f.condition(t, buytrackerv1alpha1.ConditionClockSkew).Status, metav1.ConditionFalse)
	recorded = drain(recorder)
	for _, reason := range []string{"DiskPressureRelieved", "ClockSkewResolved"} {
		if got := eventsWith(recorded, reason); len(got) != 1 {
			t.Errorf("%s events %q, want one; all: %q", reason, got, recorded)
		}
	}
}

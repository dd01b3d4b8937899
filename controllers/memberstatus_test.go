package controllers

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// withNodes gives every pod of v a GET /status answer, changed by edit.
func withNodes(v clusterView, edit map[string]func(*adminapi.Status)) clusterView {
	v.nodes = map[string]*adminapi.Status{}
	for name := range v.pods {
		st := &adminapi.Status{ID: name, State: "Follower", Incarnation: "inc-" + name,
			DiskFreeBytes: 700<<20 + 12345, DiskTotalBytes: 1 << 30}
		if v.raft != nil && v.raft.Leader == name {
			st.State = nodeStateLeader
		}
		if e := edit[name]; e != nil {
			e(st)
		}
		v.nodes[name] = st
	}
	return v
}

func TestMemberStatusesCarryWhatEachNodeSaysOfItself(t *testing.T) {
	v := withNodes(viewOf(3, 3, "0L 1 2"), map[string]func(*adminapi.Status){
		"promo-2": func(st *adminapi.Status) { st.DiskPressure, st.DiskFreeBytes = true, 3<<20+5 },
	})
	delete(v.nodes, "promo-1") // did not answer
	previous := []buytrackerv1alpha1.MemberStatus{{Name: "promo-1", Incarnation: "recorded-1", DiskFreeBytes: ptr.To[int64](1)}}
	got := memberStatuses(&v, previous)
	expect(t, "promo-0", fmt.Sprint(got[0].Incarnation, " ", *got[0].DiskFreeBytes, " ", *got[0].DiskTotalBytes, " ", got[0].DiskPressure),
		fmt.Sprint("inc-promo-0 ", 700<<20, " ", 1<<30, " false"))
	expect(t, "promo-1 keeps its recorded incarnation and drops its disk figures",
		fmt.Sprint(got[1].Incarnation, " ", got[1].DiskFreeBytes, " ", got[1].DiskTotalBytes), "recorded-1 <nil> <nil>")
	expect(t, "promo-2", fmt.Sprint(*got[2].DiskFreeBytes, " ", got[2].DiskPressure), fmt.Sprint(3<<20, " true"))
}

func TestMemberStatusesSayWhichMembersAreOutOfService(t *testing.T) {
	long := strings.Repeat("x", 5000)
	v := withNodes(viewOf(5, 5, "0L 1x 2 3x 4"), map[string]func(*adminapi.Status){
		"promo-1": func(st *adminapi.Status) { st.Halted = "entry 812: checksum mismatch" },
		"promo-2": func(st *adminapi.Status) { st.Diverged = "digest differs from promo-0's" },
		"promo-4": func(st *adminapi.Status) { st.Halted = long },
	})
	delete(v.nodes, "promo-3") // did not answer
	previous := []buytrackerv1alpha1.MemberStatus{
		{Name: "promo-0", OutOfService: &buytrackerv1alpha1.OutOfService{Reason: buytrackerv1alpha1.OutOfServiceDiverged, Message: "cleared since"}},
		{Name: "promo-3", Incarnation: "recorded-3", OutOfService: &buytrackerv1alpha1.OutOfService{Reason: buytrackerv1alpha1.OutOfServiceHalted, Message: "recorded"}},
	}
	got := memberStatuses(&v, previous)
	describe := func(m buytrackerv1alpha1.MemberStatus) string {
		if m.OutOfService == nil {
			return "in service"
		}
		return fmt.Sprintf("%s: %.40s", m.OutOfService.Reason, m.OutOfService.Message)
	}
	expect(t, "promo-0, which answered in service", describe(got[0]), "in service")
	expect(t, "promo-1", describe(got[1]), "Halted: entry 812: checksum mismatch")
	expect(t, "promo-2", describe(got[2]), "Diverged: digest differs from promo-0's")
	expect(t, "promo-3 keeps what was recorded while it does not answer", describe(got[3]), "Halted: recorded")
	expect(t, "promo-4's message is cut", len(got[4].OutOfService.Message), maxOutOfServiceMessage)
}

func TestNodeReportedConditions(t *testing.T) {
	type cond struct {
		status metav1.ConditionStatus
		reason string
	}
	leaderSkewed := func(st *adminapi.Status) { st.ClockSkewed, st.MaxClockOffsetSeconds = true, 90000 }
	tests := []struct {
		name                     string
		view                     clusterView
		previous                 []buytrackerv1alpha1.MemberStatus
		degraded, disk, clock    cond
		degradedNames, diskNames string
	}{{
		name: "healthy", view: withNodes(viewOf(3, 3, "0L 1 2"), nil),
		degraded: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonMembersHealthy},
		disk:     cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonDiskSpaceSufficient},
		clock:    cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonClocksAgree},
	}, {
		name: "no member answered GET /status", view: viewOf(3, 3, "0L 1 2"),
		degraded: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonMembersHealthy},
		disk:     cond{metav1.ConditionUnknown, buytrackerv1alpha1.ReasonStatusUnknown},
		clock:    cond{metav1.ConditionUnknown, buytrackerv1alpha1.ReasonStatusUnknown},
	}, {
		name:     "a member under disk pressure is named",
		view:     withNodes(viewOf(3, 3, "0L 1 2"), map[string]func(*adminapi.Status){"promo-1": func(st *adminapi.Status) { st.DiskPressure = true }}),
		degraded: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonMembersHealthy},
		disk:     cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonLowDiskSpace}, diskNames: "promo-1",
		clock: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonClocksAgree},
	}, {
		name:     "the leader's clock is off",
		view:     withNodes(viewOf(3, 3, "0L 1 2"), map[string]func(*adminapi.Status){"promo-0": leaderSkewed}),
		degraded: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonMembersHealthy},
		disk:     cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonDiskSpaceSufficient},
		clock:    cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonLeaderClockSkewed},
	}, {
		name:     "a follower says it is skewed: only the leader's word counts",
		view:     withNodes(viewOf(3, 3, "0L 1 2"), map[string]func(*adminapi.Status){"promo-1": leaderSkewed}),
		degraded: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonMembersHealthy},
		disk:     cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonDiskSpaceSufficient},
		clock:    cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonClocksAgree},
	}, {
		name:     "the leader measured a voter's clock off by more than the bound",
		view:     withNodes(viewOf(3, 3, "0L 1 2"), map[string]func(*adminapi.Status){"promo-0": func(st *adminapi.Status) { st.MaxClockOffsetSeconds = 2.5 }}),
		degraded: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonMembersHealthy},
		disk:     cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonDiskSpaceSufficient},
		clock:    cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonVoterClockOffset},
	}, {
		name:     "a member that came back empty and is joining",
		view:     withNodes(viewOf(3, 3, "0L 1n 2"), map[string]func(*adminapi.Status){"promo-1": func(st *adminapi.Status) { st.Joining = true }}),
		degraded: cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonMemberReplaced}, degradedNames: "promo-1",
		disk:  cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonDiskSpaceSufficient},
		clock: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonClocksAgree},
	}, {
		name:     "a new incarnation seen for the first time, already caught up",
		view:     withNodes(viewOf(3, 3, "0L 1 2"), nil),
		previous: []buytrackerv1alpha1.MemberStatus{{Name: "promo-0", Incarnation: "inc-promo-0"}, {Name: "promo-2", Incarnation: "lost"}},
		degraded: cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonMemberReplaced}, degradedNames: "promo-2",
		disk:  cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonDiskSpaceSufficient},
		clock: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonClocksAgree},
	}, {
		name:     "a halted member is out of service",
		view:     withNodes(viewOf(3, 3, "0L 1x 2"), map[string]func(*adminapi.Status){"promo-1": func(st *adminapi.Status) { st.Halted = "entry 812: checksum mismatch" }}),
		degraded: cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonMemberOutOfService}, degradedNames: "promo-1 (halted: entry 812: checksum mismatch)",
		disk:  cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonDiskSpaceSufficient},
		clock: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonClocksAgree},
	}, {
		name:     "a diverged member whose pod is still ready is out of service",
		view:     withNodes(viewOf(3, 3, "0L 1 2"), map[string]func(*adminapi.Status){"promo-2": func(st *adminapi.Status) { st.Diverged = "digest differs" }}),
		degraded: cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonMemberOutOfService}, degradedNames: "promo-2 (diverged: digest differs)",
		disk:  cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonDiskSpaceSufficient},
		clock: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonClocksAgree},
	}, {
		name: "a member out of service is reported before one down",
		view: withNodes(viewOf(5, 5, "0L 1x 2 3x 4"), map[string]func(*adminapi.Status){
			"promo-3": func(st *adminapi.Status) { st.Halted = "digest disagrees with a majority" },
			"promo-4": func(st *adminapi.Status) { st.Joining = true },
		}),
		degraded: cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonMemberOutOfService}, degradedNames: "promo-3 (halted: digest disagrees with a majority)",
		disk:  cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonDiskSpaceSufficient},
		clock: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonClocksAgree},
	}, {
		name:     "a member down is reported before a replaced one",
		view:     withNodes(viewOf(3, 3, "0L 1x 2"), map[string]func(*adminapi.Status){"promo-2": func(st *adminapi.Status) { st.Joining = true }}),
		degraded: cond{metav1.ConditionTrue, buytrackerv1alpha1.ReasonMemberUnavailable}, degradedNames: "promo-1",
		disk:  cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonDiskSpaceSufficient},
		clock: cond{metav1.ConditionFalse, buytrackerv1alpha1.ReasonClocksAgree},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bt := testBuyTracker()
			bt.Status.Members = tt.previous
			st := nextStatus(bt, &tt.view, planNext(tt.view), nil)
			check := func(typ string, want cond, names string) {
				c := meta.FindStatusCondition(st.Conditions, typ)
				if c == nil {
					t.Fatalf("no %s condition", typ)
				}
				expect(t, typ, cond{c.Status, c.Reason}, want)
				if names != "" && !strings.HasSuffix(c.Message, names) && !strings.Contains(c.Message, names+":") {
					t.Errorf("%s message %q does not name %s", typ, c.Message, names)
				}
			}
			check(buytrackerv1alpha1.ConditionDegraded, tt.degraded, tt.degradedNames)
			check(buytrackerv1alpha1.ConditionDiskPressure, tt.disk, tt.diskNames)
			check(buytrackerv1alpha1.ConditionClockSkew, tt.clock, "")
		})
	}
}

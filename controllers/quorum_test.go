package controllers

import (
	"fmt"
	"testing"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

func TestAssessQuorum(t *testing.T) {
	config := func(leader string, voters ...string) *adminapi.Cluster {
		c := &adminapi.Cluster{Leader: leader}
		for _, id := range voters {
			c.Members = append(c.Members, adminapi.Member{ID: id, Suffrage: adminapi.Voter})
		}
		return c
	}
	kept := func(last uint64) *adminapi.Status { return &adminapi.Status{HasData: true, LastIndex: last} }
	empty := &adminapi.Status{Joining: true}
	undecided := &adminapi.Status{}
	three := []string{"promo-0", "promo-1", "promo-2"}
	for _, tc := range []struct {
		name     string
		raft     *adminapi.Cluster
		previous []buytrackerv1alpha1.MemberStatus
		nodes    map[string]*adminapi.Status
		want     string
	}{
		{"a leader is known", config("promo-1", three...),
			nil, map[string]*adminapi.Status{"promo-0": empty, "promo-2": empty, "promo-1": kept(9)}, "false []"},
		{"a node follows a leader", config("", three...),
			nil, map[string]*adminapi.Status{"promo-0": empty, "promo-2": empty, "promo-1": {HasData: true, Leader: "promo-1"}}, "false []"},
		{"one volume lost", config("", three...),
			nil, map[string]*adminapi.Status{"promo-0": empty, "promo-1": kept(9), "promo-2": kept(8)}, "false [{promo-1 9} {promo-2 8}]"},
		{"two volumes lost", config("", three...),
			nil, map[string]*adminapi.Status{"promo-0": empty, "promo-2": empty, "promo-1": kept(9)}, "true [{promo-1 9}]"},
		{"one lost, one silent: it may come back", config("", three...),
			nil, map[string]*adminapi.Status{"promo-0": empty, "promo-1": kept(9)}, "false [{promo-1 9}]"},
		{"one lost, one undecided", config("", three...),
			nil, map[string]*adminapi.Status{"promo-0": empty, "promo-1": kept(9), "promo-2": undecided}, "false [{promo-1 9}]"},
		{"nobody answers", config("", three...), nil, nil, "false []"},
		{"every volume lost", config("", three...),
			nil, map[string]*adminapi.Status{"promo-0": empty, "promo-1": empty, "promo-2": empty}, "true []"},
		{"five voters, three lost: most advanced first, then lowest ordinal",
			config("", "promo-0", "promo-1", "promo-2", "promo-3", "promo-4"),
			nil, map[string]*adminapi.Status{"promo-0": empty, "promo-1": kept(7), "promo-2": empty, "promo-3": kept(7), "promo-4": empty}, "true [{promo-1 7} {promo-3 7}]"},
		{"the configuration from the status when the answer holds none", config(""),
			[]buytrackerv1alpha1.MemberStatus{{Name: "promo-0", Suffrage: buytrackerv1alpha1.SuffrageVoter}, {Name: "promo-1", Suffrage: buytrackerv1alpha1.SuffrageVoter}, {Name: "promo-2", Suffrage: buytrackerv1alpha1.SuffrageVoter}},
			map[string]*adminapi.Status{"promo-0": empty, "promo-2": empty, "promo-1": kept(12)}, "true [{promo-1 12}]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := clusterView{names: testNames, raft: tc.raft, nodes: tc.nodes}
			q := v.assessQuorum(tc.previous)
			expect(t, "lost and survivors", fmt.Sprint(q.lost, " ", q.survivors), tc.want)
		})
	}
}

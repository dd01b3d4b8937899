package clusterview

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

func sampleReport() Report {
	done := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	return Report{
		Name: "promo", Namespace: "shop", Replicas: 3, ReadyReplicas: 2,
		Leader: "promo-1", Term: 7, CommitIndex: 120, AppliedIndex: 119, LastIndex: 121, ClusterFrom: "promo-1",
		Members: []Member{
			{Name: "promo-0", Suffrage: "voter", InConfiguration: true, Role: "Follower", Ready: true, Incarnation: "0123456789abcdef", LastIndex: u64(100), Lag: u64(20)},
			{Name: "promo-1", Suffrage: "voter", InConfiguration: true, Role: "Leader", Ready: true, LastIndex: u64(120), Lag: u64(0),
				DiskPressure: true, DiskFreeBytes: 10 << 20, DiskTotalBytes: 1 << 30},
			{Name: "promo-2", Suffrage: "voter", InConfiguration: true, Error: "GET /status: dial:\n refused"},
			{Name: "promo-3", Joining: true, Ready: false},
		},
		Conditions: []Condition{{Type: "Available", Status: "True", Reason: "QuorumAvailable", Message: "2 of 3\nvoters", LastTransitionTime: done.Time}},
		LastBackup: &buytrackerv1alpha1.LastBackupStatus{Name: "promo-20261201100000", CompletedAt: &done, Index: 90, Purchases: 40},
	}
}

func TestWriteTableShowsSummaryMembersConditionsAndLastBackup(t *testing.T) {
	var out bytes.Buffer
	if err := WriteTable(&out, sampleReport()); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"BuyTracker shop/promo: 2/3 ready, Available=True (QuorumAvailable)\n",
		"Leader: promo-1, term 7; commit index 120, applied 119, last 121\n",
		"MEMBER   ROLE      SUFFRAGE      READY  LAST INDEX  LAG  INCARNATION   NOTES\n",
		"promo-0  Follower  voter         true   100         20   0123456789ab  \n",
		"promo-1  Leader    voter         true   120         0    -             disk pressure (10Mi free of 1024Mi)\n",
		"promo-2  -         voter         false  -           -    -             unreachable: GET /status: dial: refused\n",
		"promo-3  -         not a member  false  -           -    -             joining\n",
		"Available  True    QuorumAvailable  2026-12-01T10:00:00Z  2 of 3 voters\n",
		"Last backup: promo-20261201100000, index 90, 40 purchases, completed 2026-12-01T10:00:00Z\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Problem") {
		t.Errorf("table reports a problem it does not have:\n%s", got)
	}
}

func TestWriteTableSaysWhenNoMemberAnswered(t *testing.T) {
	r := sampleReport()
	r.ClusterFrom, r.Leader, r.LastBackup = "", "", nil
	r.Problems = []string{"GET /cluster: no member's admin API answered"}
	var out bytes.Buffer
	if err := WriteTable(&out, r); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"Leader: unknown (no member answered GET /cluster)\n", "Problem: GET /cluster: no member's admin API answered\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Last backup") {
		t.Errorf("table shows a last backup there is none of:\n%s", got)
	}
}

func TestWriteJSONRoundTrips(t *testing.T) {
	var out bytes.Buffer
	if err := WriteJSON(&out, sampleReport()); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not parse: %v\n%s", err, out.String())
	}
	if back.Leader != "promo-1" || len(back.Members) != 4 || back.Members[0].Incarnation != "0123456789abcdef" || *back.Members[0].Lag != 20 || back.Members[2].Lag != nil {
		t.Errorf("round trip lost data: %+v", back)
	}
	if !strings.Contains(out.String(), `"lastBackup": {`) {
		t.Errorf("JSON lacks lastBackup:\n%s", out.String())
	}
}

package clusterview

import (
	"context"
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// answers is a member's admin API as a fixed set of answers.
type answers struct {
	status  *adminapi.Status
	cluster *adminapi.Cluster
	err     error
	asked   *[]string
	name    string
}

func (a answers) Status(context.Context) (*adminapi.Status, error) { return a.status, a.err }
func (a answers) Cluster(context.Context) (*adminapi.Cluster, error) {
	*a.asked = append(*a.asked, a.name)
	if a.cluster == nil {
		return nil, errors.New("no cluster view")
	}
	return a.cluster, a.err
}

func readyPod(name string, ready bool) corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
}

func u64(v uint64) *uint64 { return &v }

func TestCollectMergesTheLeadersViewWithEachMembersStatusAndPod(t *testing.T) {
	three := int32(3)
	bt := &buytrackerv1alpha1.BuyTracker{
		ObjectMeta: metav1.ObjectMeta{Name: "promo", Namespace: "shop"},
		Spec:       buytrackerv1alpha1.BuyTrackerSpec{Replicas: &three},
		Status: buytrackerv1alpha1.BuyTrackerStatus{ReadyReplicas: 2, Leader: "promo-0",
			LastBackup: &buytrackerv1alpha1.LastBackupStatus{Name: "promo-1", Index: 90, Purchases: 40}},
	}
	cluster := &adminapi.Cluster{ServedBy: "promo-1", Leader: "promo-1", Term: 7, CommitIndex: 120, AppliedIndex: 119, Members: []adminapi.Member{
		{ID: "promo-0", Suffrage: adminapi.Voter, LastIndex: u64(100)},
		{ID: "promo-1", Suffrage: adminapi.Voter, Leader: true, LastIndex: u64(120)},
		{ID: "promo-2", Suffrage: adminapi.Voter},
		{ID: "promo-10", Suffrage: adminapi.Nonvoter, LastIndex: u64(125)},
	}}
	var asked []string
	api := map[string]answers{
		// The operator last saw promo-0 lead; promo-1 says it leads now,
		// so it is asked for the cluster first.
		"promo-0": {status: &adminapi.Status{State: "Follower", Term: 7, AppliedIndex: 100, Incarnation: "aaa"}, cluster: cluster},
		"promo-1": {status: &adminapi.Status{State: "Leader", Term: 7, LastIndex: 121, AppliedIndex: 119, Incarnation: "bbb", DiskPressure: true, DiskFreeBytes: 10 << 20, DiskTotalBytes: 1 << 30}, cluster: cluster},
		"promo-2": {err: errors.New("connection refused")},
		"promo-3": {status: &adminapi.Status{State: "Follower", AppliedIndex: 0, Joining: true}},
	}
	pods := []corev1.Pod{readyPod("promo-0", true), readyPod("promo-1", true), readyPod("promo-2", false), readyPod("promo-3", false)}
	r := Collect(context.Background(), bt, pods, func(pod string) (AdminAPI, error) {
		a := api[pod]
		a.asked, a.name = &asked, pod
		return a, nil
	})

	if len(asked) != 1 || asked[0] != "promo-1" {
		t.Errorf("GET /cluster asked of %v, want only promo-1 (the member that says it leads)", asked)
	}
	if r.Leader != "promo-1" || r.Term != 7 || r.CommitIndex != 120 || r.AppliedIndex != 119 || r.LastIndex != 121 || r.ClusterFrom != "promo-1" {
		t.Errorf("summary = leader %q term %d commit %d applied %d last %d from %q", r.Leader, r.Term, r.CommitIndex, r.AppliedIndex, r.LastIndex, r.ClusterFrom)
	}
	if r.Replicas != 3 || r.ReadyReplicas != 2 || r.LastBackup == nil || r.LastBackup.Index != 90 {
		t.Errorf("BuyTracker fields = %d/%d, last backup %+v", r.ReadyReplicas, r.Replicas, r.LastBackup)
	}
	var names []string
	for _, m := range r.Members {
		names = append(names, m.Name)
	}
	if want := []string{"promo-0", "promo-1", "promo-2", "promo-3", "promo-10"}; !slices.Equal(names, want) {
		t.Fatalf("members = %v, want %v (by ordinal)", names, want)
	}
	m := map[string]Member{}
	for _, x := range r.Members {
		m[x.Name] = x
	}
	if x := m["promo-0"]; x.Lag == nil || *x.Lag != 20 || !x.Ready || x.Role != "Follower" || x.Incarnation != "aaa" || x.Suffrage != "voter" {
		t.Errorf("promo-0 = %+v, want a ready voter lagging 20", x)
	}
	if x := m["promo-1"]; x.Lag == nil || *x.Lag != 0 || !x.DiskPressure || x.Role != "Leader" {
		t.Errorf("promo-1 = %+v, want the leader, lag 0, disk pressure", x)
	}
	if x := m["promo-2"]; x.Error == "" || x.Lag != nil || x.Ready {
		t.Errorf("promo-2 = %+v, want unreachable with no lag", x)
	}
	if x := m["promo-3"]; x.InConfiguration || !x.Joining || x.Lag == nil || *x.Lag != 120 {
		t.Errorf("promo-3 = %+v, want a joining pod outside the configuration, lag 120", x)
	}
	if x := m["promo-10"]; x.Error != "no pod" || x.Suffrage != "nonvoter" || x.Lag == nil || *x.Lag != 0 {
		t.Errorf("promo-10 = %+v, want a nonvoter without a pod, ahead of commit so lag 0", x)
	}
}

func TestCollectWithNoAnswerReportsAProblemAndEveryMemberUnreachable(t *testing.T) {
	bt := &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "promo", Namespace: "shop"}}
	var asked []string
	r := Collect(context.Background(), bt, []corev1.Pod{readyPod("promo-0", false)}, func(pod string) (AdminAPI, error) {
		return answers{err: errors.New("dial: refused"), asked: &asked, name: pod}, nil
	})
	if len(r.Problems) != 1 || r.ClusterFrom != "" || len(asked) != 0 {
		t.Errorf("problems %v, cluster from %q, asked %v: want one problem and no GET /cluster", r.Problems, r.ClusterFrom, asked)
	}
	if len(r.Members) != 1 || r.Members[0].Error == "" {
		t.Errorf("members = %+v, want promo-0 unreachable", r.Members)
	}
}

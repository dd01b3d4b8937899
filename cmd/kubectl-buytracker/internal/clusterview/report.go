// Package clusterview gathers what `kubectl buytracker status` shows: the
// BuyTracker's own status from the API server and each member's view from
// its admin API, merged into one Report, and writes it as a table or JSON.
package clusterview

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// Report is one BuyTracker as its members and the operator describe it.
type Report struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Replicas is spec.replicas; ReadyReplicas is status.readyReplicas.
	Replicas      int32 `json:"replicas"`
	ReadyReplicas int32 `json:"readyReplicas"`
	// Leader, Term, CommitIndex and AppliedIndex come from GET /cluster
	// (the leader's view); LastIndex from the leader's GET /status.
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commitIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
	LastIndex    uint64 `json:"lastIndex"`
	// ClusterFrom is the member that answered GET /cluster, empty when
	// none did.
	ClusterFrom string   `json:"clusterFrom,omitempty"`
	Members     []Member `json:"members"`
	// Conditions are the BuyTracker's, as the operator reported them.
	Conditions []Condition                          `json:"conditions,omitempty"`
	LastBackup *buytrackerv1alpha1.LastBackupStatus `json:"lastBackup,omitempty"`
	// Problems are what could not be learnt (no member answered GET
	// /cluster); a member that did not answer says so in its Error.
	Problems []string `json:"problems,omitempty"`
}

// Member is one member of the Raft configuration, or a pod of the
// BuyTracker that is not (yet) in it.
type Member struct {
	Name string `json:"name"`
	// Suffrage is voter or nonvoter; empty for a pod outside the
	// configuration.
	Suffrage string `json:"suffrage,omitempty"`
	// InConfiguration is false for a pod the leader does not list.
	InConfiguration bool `json:"inConfiguration"`
	// Role is the member's own Raft state (Leader, Follower, Candidate).
	Role string `json:"role,omitempty"`
	// Pod is the pod's phase, empty when the member has no pod; Ready its
	// Ready condition.
	Pod         string `json:"pod,omitempty"`
	Ready       bool   `json:"ready"`
	Incarnation string `json:"incarnation,omitempty"`
	// LastIndex is the member's last applied index as the leader last
	// heard it (its own GET /status when the leader did not say); Lag is
	// the leader's commit index minus it. Both are absent when unknown.
	LastIndex *uint64 `json:"lastIndex,omitempty"`
	Lag       *uint64 `json:"lag,omitempty"`
	Term      uint64  `json:"term,omitempty"`
	Joining   bool    `json:"joining,omitempty"`
	// DiskPressure: the member answers new purchases 507.
	DiskPressure   bool   `json:"diskPressure,omitempty"`
	DiskFreeBytes  uint64 `json:"diskFreeBytes,omitempty"`
	DiskTotalBytes uint64 `json:"diskTotalBytes,omitempty"`
	// OutOfService is why the member answers nothing (halted or diverged).
	OutOfService string `json:"outOfService,omitempty"`
	// Error is why its admin API could not be asked.
	Error string `json:"error,omitempty"`
}

// Condition is one of the BuyTracker's conditions.
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

// AdminAPI is the part of a member's admin API the report reads;
// *adminapi.Client implements it.
type AdminAPI interface {
	Cluster(ctx context.Context) (*adminapi.Cluster, error)
	Status(ctx context.Context) (*adminapi.Status, error)
}

// Members returns the admin API of a member by pod name.
type Members func(pod string) (AdminAPI, error)

// Collect asks every pod's GET /status (at once, each bounded by ctx),
// then GET /cluster once, of the member that says it leads (else the one
// the operator last saw lead, else any that answered), and merges both
// with the BuyTracker's status and its pods.
func Collect(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, pods []corev1.Pod, members Members) Report {
	r := Report{Name: bt.Name, Namespace: bt.Namespace, ReadyReplicas: bt.Status.ReadyReplicas, LastBackup: bt.Status.LastBackup}
	if bt.Spec.Replicas != nil {
		r.Replicas = *bt.Spec.Replicas
	}
	for _, c := range bt.Status.Conditions {
		r.Conditions = append(r.Conditions, Condition{Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime.UTC()})
	}

	statuses, errs := askStatuses(ctx, pods, members)
	cluster, from, err := askCluster(ctx, bt, statuses, members)
	if err != nil {
		r.Problems = append(r.Problems, err.Error())
	}
	podsByName := map[string]*corev1.Pod{}
	for i := range pods {
		podsByName[pods[i].Name] = &pods[i]
	}
	byName := map[string]*Member{}
	member := func(name string) *Member {
		if m, ok := byName[name]; ok {
			return m
		}
		m := &Member{Name: name}
		byName[name] = m
		return m
	}
	if cluster != nil {
		r.ClusterFrom, r.Leader, r.Term = from, cluster.Leader, cluster.Term
		r.CommitIndex, r.AppliedIndex = cluster.CommitIndex, cluster.AppliedIndex
		for _, cm := range cluster.Members {
			m := member(cm.ID)
			m.InConfiguration, m.Suffrage = true, string(cm.Suffrage)
			if cm.LastIndex != nil {
				m.LastIndex = ptr(*cm.LastIndex)
			}
		}
	}
	for _, p := range pods {
		m := member(p.Name)
		m.Pod, m.Ready = string(p.Status.Phase), podReady(&p)
	}
	for name, s := range statuses {
		m := member(name)
		m.Role, m.Term, m.Incarnation, m.Joining = s.State, s.Term, s.Incarnation, s.Joining
		m.DiskPressure, m.DiskFreeBytes, m.DiskTotalBytes = s.DiskPressure, s.DiskFreeBytes, s.DiskTotalBytes
		m.OutOfService = cmp.Or(s.Halted, s.Diverged)
		if m.LastIndex == nil {
			m.LastIndex = ptr(s.AppliedIndex)
		}
		if name == r.Leader {
			r.LastIndex = s.LastIndex
		}
	}
	for name, err := range errs {
		member(name).Error = err.Error()
	}
	for name, m := range byName {
		if _, ok := podsByName[name]; !ok && m.Error == "" {
			m.Error = "no pod"
		}
		if cluster != nil && m.LastIndex != nil {
			m.Lag = ptr(cluster.CommitIndex - min(*m.LastIndex, cluster.CommitIndex))
		}
		r.Members = append(r.Members, *m)
	}
	slices.SortFunc(r.Members, func(a, b Member) int { return CompareMemberNames(a.Name, b.Name) })
	return r
}

// askStatuses calls GET /status of every pod at once.
func askStatuses(ctx context.Context, pods []corev1.Pod, members Members) (map[string]*adminapi.Status, map[string]error) {
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		statuses = map[string]*adminapi.Status{}
		errs     = map[string]error{}
	)
	for _, p := range pods {
		wg.Go(func() {
			s, err := askStatus(ctx, p.Name, members)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[p.Name] = err
				return
			}
			statuses[p.Name] = s
		})
	}
	wg.Wait()
	return statuses, errs
}

func askStatus(ctx context.Context, pod string, members Members) (*adminapi.Status, error) {
	api, err := members(pod)
	if err != nil {
		return nil, err
	}
	s, err := api.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("GET /status: %w", err)
	}
	return s, nil
}

// askCluster asks GET /cluster of the members most likely to be the
// leader first; it stops at the first answer.
func askCluster(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, statuses map[string]*adminapi.Status, members Members) (*adminapi.Cluster, string, error) {
	var order []string
	add := func(name string) {
		if _, answered := statuses[name]; answered && !slices.Contains(order, name) {
			order = append(order, name)
		}
	}
	for name, s := range statuses {
		if s.State == "Leader" {
			add(name)
		}
	}
	add(bt.Status.Leader)
	names := make([]string, 0, len(statuses))
	for name := range statuses {
		names = append(names, name)
	}
	slices.SortFunc(names, CompareMemberNames)
	for _, name := range names {
		add(name)
	}
	if len(order) == 0 {
		return nil, "", fmt.Errorf("GET /cluster: no member's admin API answered")
	}
	var last error
	for _, name := range order {
		api, err := members(name)
		if err == nil {
			var c *adminapi.Cluster
			if c, err = api.Cluster(ctx); err == nil {
				return c, name, nil
			}
		}
		last = fmt.Errorf("GET /cluster of %s: %w", name, err)
	}
	return nil, "", last
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// CompareMemberNames orders member names by ordinal: promo-2 before
// promo-10.
func CompareMemberNames(a, b string) int {
	ap, an, aok := splitOrdinal(a)
	bp, bn, bok := splitOrdinal(b)
	if aok && bok && ap == bp {
		return cmp.Compare(an, bn)
	}
	return strings.Compare(a, b)
}

func splitOrdinal(name string) (string, int, bool) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name, 0, false
	}
	n, err := strconv.Atoi(name[i+1:])
	return name[:i], n, err == nil
}

func ptr[T any](v T) *T { return &v }

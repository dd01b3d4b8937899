package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// maxClusterQueries bounds how many nodes one pass asks for the
// configuration before it concludes that the admin API is unreachable.
const maxClusterQueries = 3

// nodeStateLeader is the Raft state a leader reports in GET /status.
const nodeStateLeader = "Leader"

// observe reads the StatefulSet's pods and asks the nodes for the Raft
// configuration; claims are the members' volume claims of this pass.
func (r *BuyTrackerReconciler) observe(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, sts *appsv1.StatefulSet, claims []memberClaim, admin adminCredentials) (clusterView, error) {
	v := clusterView{
		names:         n,
		desired:       bt.DesiredReplicas(),
		stsReplicas:   ptr.Deref(sts.Spec.Replicas, 0),
		pods:          map[string]podView{},
		claims:        map[string]claimView{},
		haltRecorded:  map[string]string{},
		replaceHalted: bt.ReplacesHaltedMembers(),
	}
	for _, c := range claims {
		v.claims[c.pod] = claimView{name: c.name, terminating: c.terminating, uid: c.uid}
	}
	for _, m := range bt.Status.Members {
		if m.OutOfService != nil && m.OutOfService.Reason == buytrackerv1alpha1.OutOfServiceHalted {
			v.haltRecorded[m.Name] = m.Incarnation
		}
	}
	if sts.Status.ObservedGeneration == sts.Generation {
		v.updateRevision = sts.Status.UpdateRevision
	}
	// Pods are read from the API server, not the cache: a pod deleted by
	// the previous pass must not look alive to this one.
	var pods corev1.PodList
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(bt.Namespace), client.MatchingLabels(n.selectorLabels())); err != nil {
		return v, err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if _, ok := n.ordinal(p.Name); !ok {
			continue
		}
		v.pods[p.Name] = podView{
			running:     p.Status.Phase == corev1.PodRunning,
			pending:     p.Status.Phase == corev1.PodPending,
			ready:       podReady(p),
			terminating: p.DeletionTimestamp != nil,
			revision:    p.Labels[revisionLabel],
			uid:         p.UID,
		}
	}
	v.nodes, v.raft, v.leaderLastIndex = r.askNodes(ctx, bt, n, admin, v)
	return v, nil
}

// askNodes is the admin part of the observation, within one budget
// (AdminBudget.Observe): every member's GET /status at once, then one
// GET /cluster, asked only of nodes that answered their status in this
// pass. A cluster whose nodes do not answer costs one read deadline, not
// one per node.
func (r *BuyTrackerReconciler) askNodes(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, admin adminCredentials, v clusterView) (map[string]*adminapi.Status, *adminapi.Cluster, uint64) {
	ctx, cancel := context.WithTimeout(ctx, r.adminBudget().Observe)
	defer cancel()
	v.nodes = r.askMembers(ctx, n, admin, v)
	cluster, leaderLastIndex := r.askCluster(ctx, bt, n, admin, v)
	fillLastIndexes(cluster, v.nodes)
	return v.nodes, cluster, leaderLastIndex
}

// fillLastIndexes gives each member of the configuration the applied index
// its own GET /status of this pass reported: GET /cluster carries only the
// answering node's (the node asks no member for it), and a member that did
// not answer its status keeps none, which counts it as down.
func fillLastIndexes(cluster *adminapi.Cluster, nodes map[string]*adminapi.Status) {
	if cluster == nil {
		return
	}
	for i := range cluster.Members {
		m := &cluster.Members[i]
		if st := nodes[m.ID]; m.LastIndex == nil && st != nil {
			m.LastIndex = ptr.To(st.AppliedIndex)
		}
	}
}

// askCluster asks for the configuration, once, of a node that answered
// its status in this pass: first the one that says it leads, then the
// last known leader, then ready pods, then running ones; another only when
// the one asked fails (at most maxClusterQueries). When the StatefulSet is
// to shrink the planner also needs the leader's last log index read before
// the configuration: the leader's status of this pass is, when the
// configuration comes from that leader in the same term (a follower
// forwards GET /cluster to the leader, so it normally does); otherwise it
// is 0 and the planner waits for a pass where it does.
func (r *BuyTrackerReconciler) askCluster(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, creds adminCredentials, v clusterView) (*adminapi.Cluster, uint64) {
	log := logf.FromContext(ctx)
	var candidates []string
	add := func(name string) {
		if p, ok := v.pods[name]; ok && !p.terminating && v.nodes[name] != nil && !slices.Contains(candidates, name) {
			candidates = append(candidates, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(v.nodes)) {
		if v.nodes[name].State == nodeStateLeader {
			add(name)
		}
	}
	// Without a leader, a node that kept its data knows the configuration;
	// one that came back empty knows none.
	for _, name := range slices.Sorted(maps.Keys(v.nodes)) {
		if st := v.nodes[name]; st.Leader == "" && st.HasData && !st.Joining {
			add(name)
		}
	}
	add(bt.Status.Leader)
	for _, onlyReady := range []bool{true, false} {
		for i := range max(v.stsReplicas, v.desired) {
			if p := v.pods[n.pod(i)]; p.running && (p.ready || !onlyReady) {
				add(n.pod(i))
			}
		}
	}
	var cluster *adminapi.Cluster
	for _, pod := range candidates[:min(len(candidates), maxClusterQueries)] {
		c, err := r.callCluster(ctx, n, pod, creds)
		if err == nil {
			cluster = c
			break
		}
		log.V(1).Info("Node did not answer GET /cluster", "pod", pod, "error", err)
	}
	if cluster == nil || cluster.Leader == "" || v.stsReplicas <= v.desired {
		return cluster, 0
	}
	st := v.nodes[cluster.Leader]
	if st == nil || st.ID != cluster.Leader || st.State != nodeStateLeader ||
		cluster.ServedBy != st.ID || cluster.Term != st.Term {
		return cluster, 0
	}
	return cluster, st.LastIndex
}

// askMembers reads GET /status of every running pod, all at once, each
// call with its own deadline (AdminBudget.Read): the one place a pass learns each member's
// own view (role, term and last index, incarnation, disk, clock). An
// answer from a node that is not the pod it was asked as is dropped.
func (r *BuyTrackerReconciler) askMembers(ctx context.Context, n clusterNames, creds adminCredentials, v clusterView) map[string]*adminapi.Status {
	log := logf.FromContext(ctx)
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = map[string]*adminapi.Status{}
	)
	for name, p := range v.pods {
		if !p.running || p.terminating {
			continue
		}
		wg.Go(func() {
			st, err := r.callStatus(ctx, n, name, creds)
			if err == nil && st.ID != name {
				err = fmt.Errorf("answered as %q", st.ID)
			}
			if err != nil {
				log.V(1).Info("Node did not answer GET /status", "pod", name, "error", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			out[name] = st
		})
	}
	wg.Wait()
	return out
}

func (r *BuyTrackerReconciler) callStatus(ctx context.Context, n clusterNames, pod string, creds adminCredentials) (*adminapi.Status, error) {
	admin, err := r.adminClient(n, pod, creds)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.adminBudget().Read)
	defer cancel()
	return admin.Status(ctx)
}

func (r *BuyTrackerReconciler) callCluster(ctx context.Context, n clusterNames, pod string, creds adminCredentials) (*adminapi.Cluster, error) {
	admin, err := r.adminClient(n, pod, creds)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.adminBudget().Read)
	defer cancel()
	return admin.Cluster(ctx)
}

func (r *BuyTrackerReconciler) adminClient(n clusterNames, pod string, creds adminCredentials) (AdminClient, error) {
	return r.AdminClients(AdminTarget{URL: n.adminURL(pod), ID: pod, Token: creds.token, CABundle: creds.caBundle})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

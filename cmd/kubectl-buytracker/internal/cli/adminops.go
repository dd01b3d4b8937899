package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/cmd/kubectl-buytracker/internal/clusterview"
	"github.com/buytracker/buytracker/cmd/kubectl-buytracker/internal/podconn"
	"github.com/buytracker/buytracker/node/adminapi"
)

// runTransferLeader asks the leader to hand leadership over. The target
// is checked against the configuration first, so that a typo changes
// nothing.
func runTransferLeader(ctx context.Context, s *session, name string) error {
	bt, pods, clients, err := s.connect(ctx, name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*podconn.CallTimeout)
	defer cancel()
	cluster, err := askAnyCluster(ctx, bt, pods, clients)
	if err != nil {
		return err
	}
	if cluster.Leader == "" {
		return fmt.Errorf("BuyTracker %s/%s has no leader to transfer from", bt.Namespace, bt.Name)
	}
	to := s.opts.to
	if to != "" {
		var voters []string
		for _, m := range cluster.Members {
			if m.Suffrage == adminapi.Voter {
				voters = append(voters, m.ID)
			}
		}
		if !slices.Contains(voters, to) {
			return fmt.Errorf("--to %s is not a voter of %s (voters: %s)", to, bt.Name, strings.Join(voters, ", "))
		}
		if to == cluster.Leader {
			_, err := fmt.Fprintf(s.stdout, "%s already leads %s (term %d)\n", to, bt.Name, cluster.Term)
			return err
		}
	}
	leader, err := clients.Client(podconn.MemberOf(bt.Name, bt.Namespace, cluster.Leader))
	if err != nil {
		return err
	}
	res, err := leader.TransferLeadership(ctx, to)
	if err != nil {
		return fmt.Errorf("transfer leadership from %s: %w", cluster.Leader, err)
	}
	_, err = fmt.Fprintf(s.stdout, "Leadership of %s transferred from %s: %s\n", bt.Name, cluster.Leader, res.Message)
	return err
}

// runSnapshot snapshots the members one at a time, so that their disks are
// not all busy at once.
func runSnapshot(ctx context.Context, s *session, name string) error {
	bt, pods, clients, err := s.connect(ctx, name)
	if err != nil {
		return err
	}
	targets := podNames(pods)
	if m := s.opts.member; m != "" {
		if !slices.Contains(targets, m) {
			return fmt.Errorf("--member %s is not a pod of %s (pods: %s)", m, bt.Name, strings.Join(targets, ", "))
		}
		targets = []string{m}
	}
	var failed []string
	for _, pod := range targets {
		idx, err := snapshotOne(ctx, clients, bt, pod)
		if err != nil {
			fmt.Fprintf(s.stderr, "%s: %v\n", pod, err)
			failed = append(failed, pod)
			continue
		}
		fmt.Fprintf(s.stdout, "%s: snapshot at index %d\n", pod, idx)
	}
	if len(failed) > 0 {
		return fmt.Errorf("snapshot failed on %s", strings.Join(failed, ", "))
	}
	return nil
}

func snapshotOne(ctx context.Context, clients *podconn.AdminClients, bt *buytrackerv1alpha1.BuyTracker, pod string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, podconn.CallTimeout)
	defer cancel()
	c, err := clients.Client(podconn.MemberOf(bt.Name, bt.Namespace, pod))
	if err != nil {
		return 0, err
	}
	res, err := c.Snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("POST /snapshot: %w", err)
	}
	return res.Index, nil
}

// askAnyCluster asks GET /cluster of the member the operator last saw
// lead, then of the other pods, and returns the first answer.
func askAnyCluster(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, pods []corev1.Pod, clients *podconn.AdminClients) (*adminapi.Cluster, error) {
	order := podNames(pods)
	if i := slices.Index(order, bt.Status.Leader); i > 0 {
		order = slices.Concat([]string{bt.Status.Leader}, order[:i], order[i+1:])
	}
	var errs []string
	for _, pod := range order {
		c, err := clients.Client(podconn.MemberOf(bt.Name, bt.Namespace, pod))
		if err == nil {
			var cluster *adminapi.Cluster
			if cluster, err = c.Cluster(ctx); err == nil {
				return cluster, nil
			}
		}
		errs = append(errs, fmt.Sprintf("%s: %v", pod, err))
	}
	return nil, fmt.Errorf("GET /cluster: no member answered: %s", strings.Join(errs, "; "))
}

func podNames(pods []corev1.Pod) []string {
	names := make([]string, 0, len(pods))
	for _, p := range pods {
		names = append(names, p.Name)
	}
	slices.SortFunc(names, clusterview.CompareMemberNames)
	return names
}

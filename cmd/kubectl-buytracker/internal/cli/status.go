package cli

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/cmd/kubectl-buytracker/internal/clusterview"
	"github.com/buytracker/buytracker/cmd/kubectl-buytracker/internal/podconn"
)

// statusTimeout bounds the admin calls of `status`: a member that does not
// answer within it is reported as unreachable.
const statusTimeout = 20 * time.Second

func runStatus(ctx context.Context, s *session, name string) error {
	bt, pods, clients, err := s.connect(ctx, name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	report := clusterview.Collect(ctx, bt, pods, func(pod string) (clusterview.AdminAPI, error) {
		return clients.Client(podconn.MemberOf(bt.Name, bt.Namespace, pod))
	})
	if s.opts.output == "json" {
		return clusterview.WriteJSON(s.stdout, report)
	}
	return clusterview.WriteTable(s.stdout, report)
}

// connect reads the BuyTracker, its pods and the admin credentials.
func (s *session) connect(ctx context.Context, name string) (*buytrackerv1alpha1.BuyTracker, []corev1.Pod, *podconn.AdminClients, error) {
	bt, err := s.kube.getBuyTracker(ctx, name)
	if err != nil {
		return nil, nil, nil, err
	}
	pods, err := s.kube.memberPods(ctx, bt)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(pods) == 0 {
		return nil, nil, nil, fmt.Errorf("BuyTracker %s/%s has no pods", bt.Namespace, bt.Name)
	}
	clients, err := s.kube.adminClients(ctx, bt, pods)
	if err != nil {
		return nil, nil, nil, err
	}
	return bt, pods, clients, nil
}

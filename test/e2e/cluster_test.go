//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/adminapi"
)

// newBuyTracker is the BuyTracker the suite applies: its client Service is
// a NodePort, so the suite reaches it from outside the cluster through
// kube-proxy, as a client of the Service would.
func (e *env) newBuyTracker(name string, replicas int32) *buytrackerv1alpha1.BuyTracker {
	return &buytrackerv1alpha1.BuyTracker{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: buytrackerv1alpha1.BuyTrackerSpec{
			Replicas: &replicas,
			Service:  buytrackerv1alpha1.ServiceSpec{Type: corev1.ServiceTypeNodePort},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{"cpu": mustQuantity("50m"), "memory": mustQuantity("64Mi")},
			},
		},
	}
}

func (e *env) getBuyTracker(ctx context.Context, name string) (*buytrackerv1alpha1.BuyTracker, error) {
	var bt buytrackerv1alpha1.BuyTracker
	err := e.k8s.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: name}, &bt)
	return &bt, err
}

// adminToken reads the cluster's admin token from the Secret the operator made.
func (e *env) adminToken(ctx context.Context, name string) (string, error) {
	s, err := e.kube.CoreV1().Secrets(e.ns).Get(ctx, name+"-admin-token", metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("admin token secret: %w", err)
	}
	tok := strings.TrimSpace(string(s.Data["token"]))
	if tok == "" {
		return "", fmt.Errorf("secret %s-admin-token has no token", name)
	}
	return tok, nil
}

// serviceURL is the client Service's URL from this machine: a node's
// InternalIP and the Service's node port.
func (e *env) serviceURL(ctx context.Context, name string) (string, error) {
	svc, err := e.kube.CoreV1().Services(e.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("client service: %w", err)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].NodePort == 0 {
		return "", fmt.Errorf("client service %s has ports %+v, want one node port", name, svc.Spec.Ports)
	}
	nodes, err := e.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				return "http://" + net.JoinHostPort(a.Address, strconv.Itoa(int(svc.Spec.Ports[0].NodePort))), nil
			}
		}
	}
	return "", fmt.Errorf("no node has an InternalIP")
}

// pods lists the cluster's pods by name.
func (e *env) pods(ctx context.Context, name string) (map[string]corev1.Pod, error) {
	list, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/name=buytracker,app.kubernetes.io/instance=" + name,
	})
	if err != nil {
		return nil, err
	}
	out := map[string]corev1.Pod{}
	for _, p := range list.Items {
		out[p.Name] = p
	}
	return out, nil
}

func podReady(p corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podNames(name string, replicas int32) []string {
	out := make([]string, replicas)
	for i := range replicas {
		out[i] = fmt.Sprintf("%s-%d", name, i)
	}
	return out
}

// raftCluster asks the admin API of the first pod that answers (trying
// them in order, skipping the ones in avoid) for the Raft configuration.
func (e *env) raftCluster(ctx context.Context, name, token string, avoid ...string) (*adminapi.Cluster, error) {
	pods, err := e.pods(ctx, name)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(pods))
	for n, p := range pods {
		if podReady(p) && !slices.Contains(avoid, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var errs []string
	for _, pod := range names {
		var c *adminapi.Cluster
		err := e.withPod(ctx, pod, token, func(p *podPorts) error {
			var err error
			c, err = p.admin.Cluster(ctx)
			return err
		})
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", pod, err))
	}
	return nil, fmt.Errorf("no pod answered GET /cluster: %s", strings.Join(errs, "; "))
}

// describeMembers prints a configuration compactly for messages.
func describeMembers(c *adminapi.Cluster) string {
	parts := make([]string, 0, len(c.Members))
	for _, m := range c.Members {
		s := m.ID + ":" + string(m.Suffrage)
		if m.Leader {
			s += "*"
		}
		parts = append(parts, s)
	}
	sort.Strings(parts)
	return fmt.Sprintf("leader %q term %d [%s]", c.Leader, c.Term, strings.Join(parts, " "))
}

// voters returns the sorted IDs of the configuration's voters.
func voters(c *adminapi.Cluster) []string {
	var out []string
	for _, m := range c.Members {
		if m.Suffrage == adminapi.Voter {
			out = append(out, m.ID)
		}
	}
	sort.Strings(out)
	return out
}

// waitSettled waits until the BuyTracker has observed its latest spec and
// reports replicas ready pods, Available, not Progressing, and every pod
// of its spec a ready voter; the Raft configuration, asked of the nodes
// themselves, must hold exactly those voters and agree on the leader.
func (e *env) waitSettled(ctx context.Context, t *testing.T, name string, replicas int32, timeout time.Duration) *adminapi.Cluster {
	t.Helper()
	want := podNames(name, replicas)
	var cluster *adminapi.Cluster
	eventually(ctx, t, timeout, fmt.Sprintf("%s to settle at %d ready voters", name, replicas), func(ctx context.Context) (bool, string, error) {
		bt, err := e.getBuyTracker(ctx, name)
		if err != nil {
			return false, err.Error(), nil
		}
		st := bt.Status
		avail := meta.FindStatusCondition(st.Conditions, buytrackerv1alpha1.ConditionAvailable)
		prog := meta.FindStatusCondition(st.Conditions, buytrackerv1alpha1.ConditionProgressing)
		summary := fmt.Sprintf("generation %d observed %d, replicas %d ready %d, leader %q, available %v, progressing %v, members %+v",
			bt.Generation, st.ObservedGeneration, st.Replicas, st.ReadyReplicas, st.Leader, condString(avail), condString(prog), st.Members)
		if st.ObservedGeneration != bt.Generation || st.ReadyReplicas != replicas || st.Replicas != replicas || st.Leader == "" ||
			avail == nil || avail.Status != metav1.ConditionTrue || prog == nil || prog.Status != metav1.ConditionFalse ||
			len(st.Members) != int(replicas) {
			return false, summary, nil
		}
		for _, m := range st.Members {
			if !m.Ready || m.Suffrage != buytrackerv1alpha1.SuffrageVoter || !slices.Contains(want, m.Name) {
				return false, summary, nil
			}
		}
		token, err := e.adminToken(ctx, name)
		if err != nil {
			return false, err.Error(), nil
		}
		c, err := e.raftCluster(ctx, name, token)
		if err != nil {
			return false, err.Error(), nil
		}
		if strings.Join(voters(c), ",") != strings.Join(want, ",") || len(c.Members) != int(replicas) || c.Leader == "" {
			return false, "raft: " + describeMembers(c), nil
		}
		cluster = c
		return true, "", nil
	})
	return cluster
}

func condString(c *metav1.Condition) string {
	if c == nil {
		return "<none>"
	}
	return fmt.Sprintf("%s(%s)", c.Status, c.Reason)
}

// readFromEveryPod checks, through a port-forward to each pod, that a
// linearizable read served by that pod says want purchases, and that the
// pod's own state (a stale read) reaches want as well.
func (e *env) readFromEveryPod(ctx context.Context, t *testing.T, name string, replicas int32, want uint64) {
	t.Helper()
	token, err := e.adminToken(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	hc := newHTTPClient(2)
	for _, pod := range podNames(name, replicas) {
		eventually(ctx, t, 2*time.Minute, fmt.Sprintf("%s to serve total_buys=%d", pod, want), func(ctx context.Context) (bool, string, error) {
			var reason string
			err := e.withPod(ctx, pod, token, func(p *podPorts) error {
				lin, err := stats(ctx, hc, p.clientURL, "")
				if err != nil {
					return fmt.Errorf("linearizable read: %w", err)
				}
				if lin.ServedBy != pod || lin.Consistency != "linearizable" {
					return fmt.Errorf("linearizable read served by %q as %q, want %s, linearizable", lin.ServedBy, lin.Consistency, pod)
				}
				if lin.TotalBuys != want {
					// A linearizable read after the writes were acknowledged
					// must see them all: no retry can fix this.
					t.Errorf("%s: linearizable total_buys = %d, want %d", pod, lin.TotalBuys, want)
					return nil
				}
				local, err := stats(ctx, hc, p.clientURL, "stale")
				if err != nil {
					return fmt.Errorf("stale read: %w", err)
				}
				if local.TotalBuys != want {
					reason = fmt.Sprintf("%s: local state has %d purchases, want %d", pod, local.TotalBuys, want)
				}
				return nil
			})
			if err != nil {
				return false, err.Error(), nil
			}
			return reason == "", reason, nil
		})
	}
}

// linearizableTotal reads total_buys through the client Service, retrying
// while the cluster answers that it has no leader.
func linearizableTotal(ctx context.Context, t *testing.T, url string) uint64 {
	t.Helper()
	hc := newHTTPClient(1)
	var total uint64
	eventually(ctx, t, time.Minute, "a linearizable read through the Service", func(ctx context.Context) (bool, string, error) {
		s, err := stats(ctx, hc, url, "")
		if err != nil {
			return false, err.Error(), nil
		}
		total = s.TotalBuys
		return true, "", nil
	})
	return total
}

func mustNotExist(err error, what string) (bool, string, error) {
	if apierrors.IsNotFound(err) {
		return true, "", nil
	}
	if err != nil {
		return false, err.Error(), nil
	}
	return false, what + " still exists", nil
}

// waitServiceReady waits until the client Service routes to every pod: its
// EndpointSlices list replicas ready endpoints and fresh connections to
// the node port are answered. A client that starts before kube-proxy has
// programmed the endpoints is refused; real clients meet that too, but the
// suite's checks are about the cluster, so it waits for the condition.
func (e *env) waitServiceReady(ctx context.Context, t *testing.T, name string, replicas int) string {
	t.Helper()
	url, err := e.serviceURL(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	eventually(ctx, t, 2*time.Minute, "the client Service to route to "+strconv.Itoa(replicas)+" pods", func(ctx context.Context) (bool, string, error) {
		epSlices, err := e.kube.DiscoveryV1().EndpointSlices(e.ns).List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelServiceName + "=" + name,
		})
		if err != nil {
			return false, err.Error(), nil
		}
		ready := 0
		for _, sl := range epSlices.Items {
			for _, ep := range sl.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					ready++
				}
			}
		}
		if ready != replicas {
			return false, fmt.Sprintf("%d ready endpoints", ready), nil
		}
		for i := range 5 {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
			if err != nil {
				return false, "", err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return false, fmt.Sprintf("health check %d through %s: %v", i, url, err), nil
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return false, fmt.Sprintf("health check %d through %s: HTTP %d", i, url, resp.StatusCode), nil
			}
		}
		return true, "", nil
	})
	return url
}

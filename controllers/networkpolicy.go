package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	"k8s.io/utils/ptr"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// namespaceNameLabel is set on every namespace by the API server.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// desiredNetworkPolicy admits to the cluster's pods: the Raft port (which
// carries every member-to-member call) only from the cluster's own pods;
// the admin port only from them, from the pods of its backup Jobs (GET
// /backup) and from the operator's namespace; the client port from
// anywhere. Egress is left alone. mTLS already refuses a
// stranger on the Raft port; the policy keeps strangers from reaching it
// at all, where the network plugin enforces NetworkPolicies.
func desiredNetworkPolicy(bt *buytrackerv1alpha1.BuyTracker, n clusterNames, operatorNamespace string) *networkingv1.NetworkPolicy {
	ownPods := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: n.selectorLabels()}}
	backupJobs := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: backupLabels(bt.Name, componentBackup)}}
	admins := []networkingv1.NetworkPolicyPeer{ownPods, backupJobs}
	if operatorNamespace != "" {
		admins = append(admins, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{namespaceNameLabel: operatorNamespace},
		}})
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: childMeta(bt, n, n.networkPolicy()),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: n.selectorLabels()},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: policyPorts(raftPort), From: []networkingv1.NetworkPolicyPeer{ownPods}},
				{Ports: policyPorts(adminPort), From: admins},
				{Ports: policyPorts(httpPort)},
			},
		},
	}
}

func policyPorts(port int32) []networkingv1.NetworkPolicyPort {
	return []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(port))}}
}

func appliedNetworkPolicy(p *networkingv1.NetworkPolicy, manager string) (any, error) {
	return networkingv1ac.ExtractNetworkPolicy(p, manager)
}

func (r *BuyTrackerReconciler) reconcileNetworkPolicy(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames) error {
	return applyChild(ctx, r.Client, &networkingv1.NetworkPolicy{}, desiredNetworkPolicy(bt, n, r.OperatorNamespace), appliedNetworkPolicy)
}

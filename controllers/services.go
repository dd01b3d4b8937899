package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// desiredPeerService is the headless Service that gives every pod its
// stable DNS name, the Raft address peers dial. Not-ready pods are
// published too: a node must reach its peers before it can become ready.
func desiredPeerService(bt *buytrackerv1alpha1.BuyTracker, n clusterNames) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: childMeta(bt, n, n.peerService()),
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 n.selectorLabels(),
			Ports: []corev1.ServicePort{
				servicePort("raft", raftPort, raftPort),
				servicePort("http", httpPort, httpPort),
				servicePort("admin", adminPort, adminPort),
			},
		},
	}
}

// desiredClientService exposes the client API of the ready nodes only; the
// admin API is never behind it.
func desiredClientService(bt *buytrackerv1alpha1.BuyTracker, n clusterNames) *corev1.Service {
	svcType := bt.Spec.Service.Type
	if svcType == "" {
		svcType = corev1.ServiceTypeClusterIP
	}
	port := bt.Spec.Service.Port
	if port == 0 {
		port = buytrackerv1alpha1.DefaultClientPort
	}
	return &corev1.Service{
		ObjectMeta: childMeta(bt, n, n.clientService()),
		Spec: corev1.ServiceSpec{
			Type:     svcType,
			Selector: n.selectorLabels(),
			Ports:    []corev1.ServicePort{servicePort("http", port, httpPort)},
		},
	}
}

func servicePort(name string, port, target int32) corev1.ServicePort {
	return corev1.ServicePort{
		Name:       name,
		Protocol:   corev1.ProtocolTCP,
		Port:       port,
		TargetPort: intstr.FromInt32(target),
	}
}

func appliedService(s *corev1.Service, manager string) (any, error) {
	return corev1ac.ExtractService(s, manager)
}

func (r *BuyTrackerReconciler) reconcileServices(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames) error {
	for _, desired := range []*corev1.Service{desiredPeerService(bt, n), desiredClientService(bt, n)} {
		if err := applyChild(ctx, r.Client, &corev1.Service{}, desired, appliedService); err != nil {
			return err
		}
	}
	return nil
}

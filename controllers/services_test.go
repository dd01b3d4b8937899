package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

func TestDesiredPeerService(t *testing.T) {
	svc := desiredPeerService(testBuyTracker(), testNames)
	expect(t, "name", svc.Name, "promo-peers")
	expect(t, "headless", svc.Spec.ClusterIP, corev1.ClusterIPNone)
	expect(t, "publishNotReadyAddresses", svc.Spec.PublishNotReadyAddresses, true)
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.TargetPort.IntVal
	}
	expect(t, "ports", ports, map[string]int32{"raft": 7000, "http": 8080, "admin": 8081})
	expect(t, "selector", svc.Spec.Selector, map[string]string{labelName: "buytracker", labelInstance: "promo"})
	expect(t, "controller owner", *svc.OwnerReferences[0].Controller, true)
}

func TestDesiredClientService(t *testing.T) {
	tests := []struct {
		name     string
		spec     buytrackerv1alpha1.ServiceSpec
		wantType corev1.ServiceType
		wantPort int32
	}{
		{"defaults", buytrackerv1alpha1.ServiceSpec{}, corev1.ServiceTypeClusterIP, 8080},
		{"node port on 80", buytrackerv1alpha1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Port: 80}, corev1.ServiceTypeNodePort, 80},
		{"load balancer", buytrackerv1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Port: 443}, corev1.ServiceTypeLoadBalancer, 443},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bt := testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Service = tt.spec })
			svc := desiredClientService(bt, testNames)
			expect(t, "name", svc.Name, "promo")
			expect(t, "type", svc.Spec.Type, tt.wantType)
			expect(t, "only the client port", len(svc.Spec.Ports), 1)
			expect(t, "port", svc.Spec.Ports[0].Port, tt.wantPort)
			expect(t, "target", svc.Spec.Ports[0].TargetPort.IntVal, httpPort)
			expect(t, "not-ready pods hidden", svc.Spec.PublishNotReadyAddresses, false)
		})
	}
}

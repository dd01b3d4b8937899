package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

func TestDesiredNetworkPolicy(t *testing.T) {
	ownPods := "pods " + labelName + "=buytracker," + labelInstance + "=promo"
	tests := []struct {
		name              string
		operatorNamespace string
		// want: who may reach each port ("anyone" for no restriction).
		want map[int32][]string
	}{{
		name:              "raft from the cluster's pods, admin also from the operator's namespace, client from anyone",
		operatorNamespace: "buytracker-system",
		want: map[int32][]string{
			7000: {ownPods},
			8081: {ownPods, "namespace buytracker-system"},
			8080: {"anyone"},
		},
	}, {
		name: "operator namespace unknown: admin from the cluster's pods only",
		want: map[int32][]string{7000: {ownPods}, 8081: {ownPods}, 8080: {"anyone"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := desiredNetworkPolicy(testBuyTracker(), testNames, tt.operatorNamespace)
			expect(t, "name", p.Name, "promo")
			expect(t, "selected pods", p.Spec.PodSelector.MatchLabels, testNames.selectorLabels())
			expect(t, "policy types", p.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress})
			expect(t, "egress untouched", len(p.Spec.Egress), 0)
			got := map[int32][]string{}
			for _, rule := range p.Spec.Ingress {
				if len(rule.Ports) != 1 || *rule.Ports[0].Protocol != corev1.ProtocolTCP {
					t.Fatalf("rule %+v does not name one TCP port", rule)
				}
				port := rule.Ports[0].Port.IntVal
				if len(rule.From) == 0 {
					got[port] = append(got[port], "anyone")
				}
				for _, from := range rule.From {
					switch {
					case from.PodSelector != nil && from.NamespaceSelector == nil && from.IPBlock == nil:
						got[port] = append(got[port], "pods "+labelName+"="+from.PodSelector.MatchLabels[labelName]+","+labelInstance+"="+from.PodSelector.MatchLabels[labelInstance])
						expect(t, "pod selector", len(from.PodSelector.MatchLabels), 2)
					case from.NamespaceSelector != nil && from.PodSelector == nil && from.IPBlock == nil:
						got[port] = append(got[port], "namespace "+from.NamespaceSelector.MatchLabels[namespaceNameLabel])
					default:
						t.Errorf("peer %+v is neither the cluster's pods nor a namespace", from)
					}
				}
			}
			expect(t, "who reaches which port", got, tt.want)
		})
	}
}

package controllers

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

func TestDesiredNetworkPolicy(t *testing.T) {
	ownPods := "pods " + labelInstance + "=promo," + labelName + "=buytracker"
	// The backup Jobs' pods call the admin API (GET /backup).
	backupPods := "pods " + labelComponent + "=backup," + labelManagedBy + "=" + managedByValue + "," + labelName + "=buytracker," + labelBuyTracker + "=promo"
	tests := []struct {
		name              string
		operatorNamespace string
		// want: who may reach each port ("anyone" for no restriction).
		want map[int32][]string
	}{{
		name:              "raft from the cluster's pods, admin also from its backup Jobs and the operator's namespace, client from anyone",
		operatorNamespace: "buytracker-system",
		want: map[int32][]string{
			7000: {ownPods},
			8081: {ownPods, backupPods, "namespace buytracker-system"},
			8080: {"anyone"},
		},
	}, {
		name: "operator namespace unknown: admin from the cluster's pods and its backup Jobs only",
		want: map[int32][]string{7000: {ownPods}, 8081: {ownPods, backupPods}, 8080: {"anyone"}},
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
						var pairs []string
						for k, v := range from.PodSelector.MatchLabels {
							pairs = append(pairs, k+"="+v)
						}
						slices.Sort(pairs)
						got[port] = append(got[port], "pods "+strings.Join(pairs, ","))
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

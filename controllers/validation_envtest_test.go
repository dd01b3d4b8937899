package controllers

import (
	"context"
	"strings"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// newUnstructuredBuyTracker lets a test send values a typed client could
// not (a malformed size, an unknown field value).
func newUnstructuredBuyTracker(ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(buytrackerv1alpha1.GroupVersion.WithKind("BuyTracker"))
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func TestAPIServerRejectsInvalidSpecs(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	tests := []struct {
		name string
		spec map[string]any
		want string
	}{
		{"zero replicas", map[string]any{"replicas": 0}, `spec.replicas: Unsupported value: 0: supported values: "1", "3", "5", "7", "9"`},
		{"even replicas", map[string]any{"replicas": 2}, `spec.replicas: Unsupported value: 2`},
		{"too many replicas", map[string]any{"replicas": 11}, `spec.replicas: Unsupported value: 11`},
		{"negative storage", map[string]any{"storage": map[string]any{"size": "-1Gi"}}, "storage.size must be a positive quantity"},
		{"zero storage", map[string]any{"storage": map[string]any{"size": "0"}}, "storage.size must be a positive quantity"},
		{"malformed storage", map[string]any{"storage": map[string]any{"size": "lots"}}, "spec.storage.size"},
		{"unknown service type", map[string]any{"service": map[string]any{"type": "ExternalName"}}, `spec.service.type: Unsupported value: "ExternalName"`},
		{"service port out of range", map[string]any{"service": map[string]any{"port": 70000}}, "spec.service.port"},
		{"unknown pull policy", map[string]any{"imagePullPolicy": "Sometimes"}, `spec.imagePullPolicy: Unsupported value: "Sometimes"`},
		{"heartbeat too short", map[string]any{"raft": map[string]any{"heartbeatTimeout": "1ms"}}, "raft.heartbeatTimeout must be at least 5ms"},
		{"election shorter than heartbeat", map[string]any{"raft": map[string]any{"heartbeatTimeout": "2s", "electionTimeout": "1s"}}, "raft.electionTimeout must not be shorter than raft.heartbeatTimeout"},
		{"zero snapshot threshold", map[string]any{"raft": map[string]any{"snapshotThreshold": 0}}, "spec.raft.snapshotThreshold"},
		{"unknown volume policy", map[string]any{"storage": map[string]any{"whenDeleted": "Archive"}}, `spec.storage.whenDeleted: Unsupported value: "Archive"`},
		{"clock skew too tight", map[string]any{"raft": map[string]any{"maxClockSkew": "1ms"}}, "raft.maxClockSkew must be from 10ms to 1h"},
		{"clock skew too loose", map[string]any{"raft": map[string]any{"maxClockSkew": "2h"}}, "raft.maxClockSkew must be from 10ms to 1h"},
		{"no idempotency keys", map[string]any{"idempotency": map[string]any{"maxKeys": 0}}, "spec.idempotency.maxKeys"},
		{"too many idempotency keys", map[string]any{"idempotency": map[string]any{"maxKeys": 200_000_000}}, "spec.idempotency.maxKeys"},
		{"tls without a secret", map[string]any{"tls": map[string]any{}}, "spec.tls.secretName"},
		{"client auth with an empty secret name", map[string]any{"clientAuth": map[string]any{"secretName": ""}}, "spec.clientAuth.secretName"},
		{"tokens required everywhere without a secret", map[string]any{"clientAuth": map[string]any{"requireEverywhere": true}}, "spec.clientAuth.secretName: Required value"},
		{"tokens required everywhere not a boolean", map[string]any{"clientAuth": map[string]any{"secretName": "t", "requireEverywhere": "yes"}}, "spec.clientAuth.requireEverywhere"},
		{"a proxy that is a host name", map[string]any{"trustedProxies": []any{"10.0.0.0/8", "lb.example"}}, "a trusted proxy must be an IP address or a CIDR prefix"},
		{"replacement switch not a boolean", map[string]any{"integrity": map[string]any{"replaceHaltedMembers": "sometimes"}}, "spec.integrity.replaceHaltedMembers"},
		{"a proxy listed twice", map[string]any{"trustedProxies": []any{"10.0.0.1", "10.0.0.1"}}, "spec.trustedProxies[1]: Duplicate value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.client.Create(context.Background(), newUnstructuredBuyTracker(ns, "invalid", tt.spec))
			if err == nil {
				t.Fatal("the API server accepted it")
			}
			t.Logf("rejected: %v", err)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestAPIServerAcceptsEveryOddSize(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	for _, size := range []int{1, 3, 5, 7, 9} {
		u := newUnstructuredBuyTracker(ns, "", map[string]any{
			"replicas": size, "storage": map[string]any{"size": "500Mi", "storageClassName": "fast"},
			"raft":           map[string]any{"heartbeatTimeout": "500ms", "electionTimeout": "1s", "snapshotThreshold": 1000, "maxClockSkew": "250ms"},
			"idempotency":    map[string]any{"maxKeys": 5000},
			"tls":            map[string]any{"secretName": "promo-client-tls"},
			"clientAuth":     map[string]any{"secretName": "promo-client-auth", "requireEverywhere": true},
			"trustedProxies": []any{"10.0.0.0/8", "192.168.1.7", "fd00::/8"},
		})
		u.SetGenerateName("ok-")
		if err := s.client.Create(context.Background(), u); err != nil {
			t.Errorf("replicas %d: %v", size, err)
			continue
		}
		// A field the schema lacks would be pruned without an error.
		if kept, _, _ := unstructured.NestedBool(u.Object, "spec", "clientAuth", "requireEverywhere"); !kept {
			t.Errorf("replicas %d: spec.clientAuth.requireEverywhere was not kept: %v", size, u.Object["spec"])
		}
	}
}

func TestScaleSubresourceIsValidatedToo(t *testing.T) {
	s := needAPIServer(t)
	ns := s.newNamespace(t)
	bt := &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scaled"}}
	ctx := context.Background()
	if err := s.client.Create(ctx, bt); err != nil {
		t.Fatal(err)
	}
	scale := &autoscalingv1.Scale{}
	if err := s.client.SubResource("scale").Get(ctx, bt, scale); err != nil {
		t.Fatalf("get scale: %v", err)
	}
	expect(t, "scale replicas", scale.Spec.Replicas, int32(3))
	scale.Spec.Replicas = 5
	if err := s.client.SubResource("scale").Update(ctx, bt, client.WithSubResourceBody(scale)); err != nil {
		t.Fatalf("scale to 5: %v", err)
	}
	scale.Spec.Replicas = 4
	err := s.client.SubResource("scale").Update(ctx, bt, client.WithSubResourceBody(scale))
	if !apierrors.IsInvalid(err) {
		t.Errorf("scale to 4: got %v, want the API server to refuse it", err)
	}
}

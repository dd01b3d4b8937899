package controllers

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

func testBuyTracker(mutate ...func(*buytrackerv1alpha1.BuyTracker)) *buytrackerv1alpha1.BuyTracker {
	bt := &buytrackerv1alpha1.BuyTracker{
		ObjectMeta: metav1.ObjectMeta{Name: "promo", Namespace: "shop", UID: "uid-1"},
		Spec:       buytrackerv1alpha1.BuyTrackerSpec{Replicas: ptr.To[int32](3)},
	}
	for _, m := range mutate {
		m(bt)
	}
	return bt
}

var testNames = clusterNames{name: "promo", namespace: "shop", clusterDomain: "cluster.local"}

func TestDesiredStatefulSet(t *testing.T) {
	in := statefulSetInputs{nodeImage: "buytracker/node:dev", initialReplicas: 3, replicas: 5}
	tests := []struct {
		name  string
		bt    *buytrackerv1alpha1.BuyTracker
		check func(t *testing.T, sts *appsv1.StatefulSet)
	}{{
		name: "defaults: operator image, 1Gi retained volumes, preferred spread, OnDelete, Parallel",
		bt:   testBuyTracker(),
		check: func(t *testing.T, sts *appsv1.StatefulSet) {
			c := sts.Spec.Template.Spec.Containers[0]
			expect(t, "image", c.Image, "buytracker/node:dev")
			expect(t, "replicas", *sts.Spec.Replicas, 5)
			expect(t, "service name", sts.Spec.ServiceName, "promo-peers")
			expect(t, "pod management", sts.Spec.PodManagementPolicy, appsv1.ParallelPodManagement)
			expect(t, "update strategy", sts.Spec.UpdateStrategy.Type, appsv1.OnDeleteStatefulSetStrategyType)
			expect(t, "whenDeleted", sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted, appsv1.RetainPersistentVolumeClaimRetentionPolicyType)
			expect(t, "whenScaled", sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled, appsv1.RetainPersistentVolumeClaimRetentionPolicyType)
			claim := sts.Spec.VolumeClaimTemplates[0]
			expect(t, "claim size", claim.Spec.Resources.Requests.Storage().String(), "1Gi")
			expect(t, "claim class", claim.Spec.StorageClassName, (*string)(nil))
			aff := sts.Spec.Template.Spec.Affinity.PodAntiAffinity
			expect(t, "required anti-affinity", len(aff.RequiredDuringSchedulingIgnoredDuringExecution), 0)
			expect(t, "preferred anti-affinity topology", aff.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey, corev1.LabelHostname)
			expect(t, "initial size annotation", sts.Annotations[annotationInitialReplicas], "3")
		},
	}, {
		name: "security: non-root, read-only root, no privilege escalation, no API token, no service links",
		bt:   testBuyTracker(),
		check: func(t *testing.T, sts *appsv1.StatefulSet) {
			pod := sts.Spec.Template.Spec
			sc := pod.Containers[0].SecurityContext
			expect(t, "runAsNonRoot", *pod.SecurityContext.RunAsNonRoot, true)
			expect(t, "runAsUser", *pod.SecurityContext.RunAsUser, nonRootID)
			expect(t, "readOnlyRootFilesystem", *sc.ReadOnlyRootFilesystem, true)
			expect(t, "allowPrivilegeEscalation", *sc.AllowPrivilegeEscalation, false)
			expect(t, "dropped capabilities", sc.Capabilities.Drop, []corev1.Capability{"ALL"})
			expect(t, "automount token", *pod.AutomountServiceAccountToken, false)
			expect(t, "service links", *pod.EnableServiceLinks, false)
			mounts := map[string]string{}
			for _, m := range pod.Containers[0].VolumeMounts {
				mounts[m.Name] = m.MountPath
			}
			expect(t, "mounts", mounts, map[string]string{"data": "/data", "credentials": "/etc/buytracker", "tmp": "/tmp", "cluster-state": "/etc/buytracker/cluster-state"})
		},
	}, {
		name: "credentials: the admin token and every member's certificate Secret in one projected volume",
		bt:   testBuyTracker(),
		check: func(t *testing.T, sts *appsv1.StatefulSet) {
			pod := sts.Spec.Template.Spec
			var projected *corev1.ProjectedVolumeSource
			for _, v := range pod.Volumes {
				if v.Name == "credentials" {
					projected = v.Projected
				}
			}
			if projected == nil {
				t.Fatalf("no projected volume credentials in %+v", pod.Volumes)
			}
			expect(t, "file mode", *projected.DefaultMode, int32(0o440))
			got := map[string]string{}
			for _, src := range projected.Sources {
				if src.Secret == nil {
					t.Fatalf("a source that is not a Secret: %+v", src)
				}
				optional := ptr.Deref(src.Secret.Optional, false)
				for _, item := range src.Secret.Items {
					got[src.Secret.Name+"/"+item.Key] = fmt.Sprintf("%s optional=%v", item.Path, optional)
				}
			}
			want := map[string]string{"promo-admin-token/token": "admin-token optional=false"}
			for i := range 9 {
				for _, key := range []string{"ca.crt", "tls.crt", "tls.key"} {
					want[fmt.Sprintf("promo-%d-tls/%s", i, key)] = fmt.Sprintf("tls/promo-%d/%s optional=true", i, key)
				}
			}
			expect(t, "projected files", got, want)
			c := pod.Containers[0]
			if !slices.Contains(c.Args, "--tls-dir=/etc/buytracker/tls/$(POD_NAME)") {
				t.Errorf("no --tls-dir of the pod's own certificate in %v", c.Args)
			}
			if c.Env[0].Name != "POD_NAME" || c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.name" {
				t.Errorf("POD_NAME does not come first from the downward API: %+v", c.Env)
			}
		},
	}, {
		name: "scaling does not change the pod template",
		bt:   testBuyTracker(),
		check: func(t *testing.T, sts *appsv1.StatefulSet) {
			bigger := testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Replicas = ptr.To[int32](9) })
			other := desiredStatefulSet(bigger, testNames, statefulSetInputs{nodeImage: "buytracker/node:dev", initialReplicas: 3, replicas: 9})
			expect(t, "template", other.Spec.Template, sts.Spec.Template)
		},
	}, {
		name: "probes: /health for startup and liveness, /ready for readiness, on the admin port over HTTPS",
		bt:   testBuyTracker(),
		check: func(t *testing.T, sts *appsv1.StatefulSet) {
			c := sts.Spec.Template.Spec.Containers[0]
			expect(t, "startup path", c.StartupProbe.HTTPGet.Path, "/health")
			expect(t, "liveness path", c.LivenessProbe.HTTPGet.Path, "/health")
			expect(t, "readiness path", c.ReadinessProbe.HTTPGet.Path, "/ready")
			for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				expect(t, name+" probe port", p.HTTPGet.Port.StrVal, "admin")
				expect(t, name+" probe scheme", p.HTTPGet.Scheme, corev1.URISchemeHTTPS)
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			expect(t, "ports", ports, map[string]int32{"raft": 7000, "http": 8080, "admin": 8081})
		},
	}, {
		name: "spec: image, pull policy, resources, storage, scheduling, delete volumes with the cluster",
		bt: testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) {
			bt.Spec.Image = "registry.example/node:v2"
			bt.Spec.ImagePullPolicy = corev1.PullAlways
			bt.Spec.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}
			bt.Spec.Storage = buytrackerv1alpha1.StorageSpec{Size: ptr.To(resource.MustParse("5Gi")), StorageClassName: ptr.To("fast"), WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
			bt.Spec.NodeSelector = map[string]string{"disk": "ssd"}
			bt.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
			bt.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}}
			bt.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone"}}
		}),
		check: func(t *testing.T, sts *appsv1.StatefulSet) {
			pod := sts.Spec.Template.Spec
			c := pod.Containers[0]
			expect(t, "image", c.Image, "registry.example/node:v2")
			expect(t, "pull policy", c.ImagePullPolicy, corev1.PullAlways)
			expect(t, "memory limit", c.Resources.Limits.Memory().String(), "512Mi")
			claim := sts.Spec.VolumeClaimTemplates[0]
			expect(t, "claim size", claim.Spec.Resources.Requests.Storage().String(), "5Gi")
			expect(t, "claim class", *claim.Spec.StorageClassName, "fast")
			expect(t, "whenDeleted", sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted, appsv1.DeletePersistentVolumeClaimRetentionPolicyType)
			expect(t, "node selector", pod.NodeSelector, map[string]string{"disk": "ssd"})
			expect(t, "tolerations", len(pod.Tolerations), 1)
			expect(t, "own affinity replaces the default", pod.Affinity.PodAntiAffinity, (*corev1.PodAntiAffinity)(nil))
			expect(t, "spread", pod.TopologySpreadConstraints[0].TopologyKey, "zone")
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sts := desiredStatefulSet(tt.bt, testNames, in)
			expect(t, "owner", sts.OwnerReferences[0].Name, "promo")
			expect(t, "controller owner", *sts.OwnerReferences[0].Controller, true)
			tt.check(t, sts)
		})
	}
}

func TestNodeArgs(t *testing.T) {
	const peer = ".promo-peers.shop.svc.cluster.local"
	tests := []struct {
		name    string
		bt      *buytrackerv1alpha1.BuyTracker
		initial int32
		want    []string
		absent  []string
	}{{
		name:    "identity, listeners, advertised names, initial cluster, token file",
		bt:      testBuyTracker(),
		initial: 3,
		want: []string{
			"--id=$(POD_NAME)", "--data-dir=/data",
			"--http-addr=0.0.0.0:8080", "--admin-addr=0.0.0.0:8081", "--raft-addr=0.0.0.0:7000",
			"--advertise-raft=$(POD_NAME)" + peer + ":7000",
			"--advertise-http=http://$(POD_NAME)" + peer + ":8080",
			"--initial-cluster=promo-0=promo-0" + peer + ":7000,promo-1=promo-1" + peer + ":7000,promo-2=promo-2" + peer + ":7000",
			"--admin-token-file=/etc/buytracker/admin-token",
			"--tls-dir=/etc/buytracker/tls/$(POD_NAME)",
			"--cluster-id=uid-1",
			"--min-free-disk=64Mi", "--idempotency-max-keys=1000000", "--max-clock-skew=1s",
		},
		absent: []string{"--heartbeat-timeout", "--election-timeout", "--snapshot-threshold",
			"--client-tls-dir", "--client-auth-file", "--client-auth-required", "--trusted-proxies"},
	}, {
		name: "clock bound, idempotency bound and the watermark of a 100Gi volume",
		bt: testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) {
			bt.Spec.Raft = &buytrackerv1alpha1.RaftSpec{MaxClockSkew: &metav1.Duration{Duration: 250 * time.Millisecond}}
			bt.Spec.Idempotency.MaxKeys = ptr.To[int64](5000)
			bt.Spec.Storage.Size = ptr.To(resource.MustParse("100Gi"))
		}),
		initial: 3,
		want:    []string{"--max-clock-skew=250ms", "--idempotency-max-keys=5000", "--min-free-disk=1024Mi"},
	}, {
		name: "client TLS, client tokens and trusted proxies",
		bt: testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) {
			bt.Spec.TLS = &buytrackerv1alpha1.ClientTLSSpec{SecretName: "promo-https"}
			bt.Spec.ClientAuth = &buytrackerv1alpha1.ClientAuthSpec{SecretName: "promo-tokens"}
			bt.Spec.TrustedProxies = []buytrackerv1alpha1.ProxyAddress{"10.0.0.0/8", "192.168.1.7"}
		}),
		initial: 3,
		want: []string{
			"--client-tls-dir=/etc/buytracker/client-tls",
			"--client-auth-file=/etc/buytracker/client-auth.json",
			"--trusted-proxies=10.0.0.0/8,192.168.1.7",
			"--advertise-http=https://$(POD_NAME)" + peer + ":8080",
		},
		absent: []string{"--client-auth-required"},
	}, {
		name: "client tokens required everywhere",
		bt: testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) {
			bt.Spec.ClientAuth = &buytrackerv1alpha1.ClientAuthSpec{SecretName: "promo-tokens", RequireEverywhere: true}
		}),
		initial: 3,
		want:    []string{"--client-auth-file=/etc/buytracker/client-auth.json", "--client-auth-required"},
	}, {
		name: "the initial cluster is the initial size, not spec.replicas",
		bt: testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) {
			bt.Spec.Replicas = ptr.To[int32](5)
		}),
		initial: 1,
		want:    []string{"--initial-cluster=promo-0=promo-0" + peer + ":7000"},
	}, {
		name: "raft tuning when set",
		bt: testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) {
			bt.Spec.Raft = &buytrackerv1alpha1.RaftSpec{
				HeartbeatTimeout:  &metav1.Duration{Duration: 500 * time.Millisecond},
				ElectionTimeout:   &metav1.Duration{Duration: 2 * time.Second},
				SnapshotThreshold: ptr.To[int64](1000),
			}
		}),
		initial: 3,
		want:    []string{"--heartbeat-timeout=500ms", "--election-timeout=2s", "--snapshot-threshold=1000"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := nodeArgs(tt.bt, testNames, tt.initial)
			for _, w := range tt.want {
				if !slices.Contains(args, w) {
					t.Errorf("args lack %q:\n%s", w, strings.Join(args, "\n"))
				}
			}
			for _, a := range args {
				for _, prefix := range tt.absent {
					if strings.HasPrefix(a, prefix) {
						t.Errorf("unexpected %q", a)
					}
				}
			}
		})
	}
}

func TestDiskWatermark(t *testing.T) {
	const mi, gi = int64(1) << 20, int64(1) << 30
	tests := []struct {
		size, want int64
		flag       string
	}{
		{size: 1 * gi, want: 64 * mi, flag: "64Mi"},       // 5% is 51Mi: the floor
		{size: 2 * gi, want: 102 * mi, flag: "102Mi"},     // 5%, rounded down to a MiB
		{size: 10 * gi, want: 512 * mi, flag: "512Mi"},    // 5%
		{size: 20 * gi, want: 1024 * mi, flag: "1024Mi"},  // 5% is the ceiling
		{size: 500 * gi, want: 1024 * mi, flag: "1024Mi"}, // the ceiling
		{size: 100 * mi, want: 25 * mi, flag: "25Mi"},     // a quarter of a small volume
		{size: 1000, want: 250, flag: "250"},              // bytes below a MiB
	}
	for _, tt := range tests {
		got := diskWatermark(tt.size)
		expect(t, fmt.Sprintf("watermark of %d bytes", tt.size), got, tt.want)
		expect(t, fmt.Sprintf("flag of %d bytes", tt.size), formatBytes(got), tt.flag)
	}
}

func TestClientCredentialsInThePodTemplate(t *testing.T) {
	in := statefulSetInputs{nodeImage: "img", initialReplicas: 3, replicas: 3}
	plain := desiredStatefulSet(testBuyTracker(), testNames, in)
	for _, src := range plain.Spec.Template.Spec.Volumes[0].Projected.Sources {
		if name := src.Secret.Name; name != "promo-admin-token" && !strings.HasSuffix(name, "-tls") {
			t.Errorf("a BuyTracker without client credentials projects Secret %s", name)
		}
	}

	secured := desiredStatefulSet(testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) {
		bt.Spec.TLS = &buytrackerv1alpha1.ClientTLSSpec{SecretName: "promo-https"}
		bt.Spec.ClientAuth = &buytrackerv1alpha1.ClientAuthSpec{SecretName: "promo-tokens"}
	}), testNames, in)
	got := map[string]string{}
	for _, src := range secured.Spec.Template.Spec.Volumes[0].Projected.Sources {
		if src.Secret.Name == "promo-https" || src.Secret.Name == "promo-tokens" {
			for _, item := range src.Secret.Items {
				got[src.Secret.Name+"/"+item.Key] = fmt.Sprintf("%s optional=%v", item.Path, ptr.Deref(src.Secret.Optional, false))
			}
		}
	}
	expect(t, "client credential files", got, map[string]string{
		"promo-https/tls.crt":           "client-tls/tls.crt optional=false",
		"promo-https/tls.key":           "client-tls/tls.key optional=false",
		"promo-tokens/client-auth.json": "client-auth.json optional=false",
	})
	// The probes and the client port do not move: probes stay on the
	// admin port, the Service still targets port http.
	expect(t, "probes", secured.Spec.Template.Spec.Containers[0].ReadinessProbe, plain.Spec.Template.Spec.Containers[0].ReadinessProbe)
	expect(t, "ports", secured.Spec.Template.Spec.Containers[0].Ports, plain.Spec.Template.Spec.Containers[0].Ports)
}

func TestImmutableFieldsDiffer(t *testing.T) {
	in := statefulSetInputs{nodeImage: "img", initialReplicas: 3, replicas: 3}
	base := desiredStatefulSet(testBuyTracker(), testNames, in)
	tests := []struct {
		name string
		bt   *buytrackerv1alpha1.BuyTracker
		want bool
	}{
		{"same spec", testBuyTracker(), false},
		{"new image only", testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Image = "other" }), false},
		{"new storage class", testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Storage.StorageClassName = ptr.To("fast") }), true},
		{"new size", testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Storage.Size = ptr.To(resource.MustParse("2Gi")) }), true},
		{"same size spelled differently", testBuyTracker(func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Storage.Size = ptr.To(resource.MustParse("1024Mi")) }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := immutableFieldsDiffer(base, desiredStatefulSet(tt.bt, testNames, in))
			expect(t, "differ", got, tt.want)
		})
	}
}

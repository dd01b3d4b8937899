package controllers

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// Once the cluster was Available, and not before, the operator records
// that it was created in a ConfigMap every pod mounts (optionally): a node
// of a created cluster that finds its data dir empty then never bootstraps
// a new, empty cluster, even when its empty peers are a majority.
func TestTheClusterStateIsRecordedOnceTheClusterWasAvailable(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	pods := []string{"promo-0", "promo-1", "promo-2"}
	for _, p := range pods {
		f.cluster.setDown(p, true)
	}
	for range 3 {
		f.pass(t)
	}
	if c := f.condition(t, buytrackerv1alpha1.ConditionAvailable); c == nil || c.Status == metav1.ConditionTrue {
		t.Fatalf("Available %+v with every node down", c)
	}
	if f.exists(t, "promo-cluster-state", &corev1.ConfigMap{}) {
		t.Fatal("the cluster-state ConfigMap was written before the cluster was ever Available")
	}

	// The pods mount it from the start, optionally, and the node reads it.
	var sts appsv1.StatefulSet
	f.get(t, "promo", &sts)
	spec := sts.Spec.Template.Spec
	i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == clusterStateVolume })
	if i < 0 || spec.Volumes[i].ConfigMap == nil || spec.Volumes[i].ConfigMap.Name != "promo-cluster-state" ||
		spec.Volumes[i].ConfigMap.Optional == nil || !*spec.Volumes[i].ConfigMap.Optional {
		t.Fatalf("pod volumes %+v: want an optional ConfigMap volume of promo-cluster-state", spec.Volumes)
	}
	node := spec.Containers[0]
	if !slices.Contains(node.Args, "--cluster-created-file=/etc/buytracker/cluster-state/created") {
		t.Fatalf("node args %q lack --cluster-created-file", node.Args)
	}
	if !slices.ContainsFunc(node.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == clusterStateVolume && m.MountPath == clusterStateDir && m.ReadOnly && m.SubPath == ""
	}) {
		// A subPath mount would not be refreshed by the kubelet.
		t.Fatalf("node mounts %+v: want the cluster state read-only at %s without subPath", node.VolumeMounts, clusterStateDir)
	}

	for _, p := range pods {
		f.cluster.setDown(p, false)
	}
	f.settle(t)
	if c := f.condition(t, buytrackerv1alpha1.ConditionAvailable); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Available %+v once the nodes answer", c)
	}
	bt := f.buyTracker(t)
	var cm corev1.ConfigMap
	f.get(t, "promo-cluster-state", &cm)
	expect(t, "created", cm.Data[clusterCreatedKey], string(bt.UID))
	if owner := metav1.GetControllerOf(&cm); owner == nil || owner.UID != bt.UID {
		t.Fatalf("cluster-state ConfigMap owned by %+v, want the BuyTracker", owner)
	}

	// It stays when the cluster loses its quorum (the state the operator
	// recovers from).
	for _, p := range pods {
		f.cluster.setDown(p, true)
	}
	f.pass(t)
	f.pass(t)
	if meta.IsStatusConditionTrue(f.buyTracker(t).Status.Conditions, buytrackerv1alpha1.ConditionAvailable) {
		t.Fatal("still Available with every node down")
	}
	f.get(t, "promo-cluster-state", &cm)
	expect(t, "created without a quorum", cm.Data[clusterCreatedKey], string(bt.UID))

	// A deleted one is written again once the cluster is Available.
	if err := f.s.client.Delete(t.Context(), &cm); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		f.cluster.setDown(p, false)
	}
	f.settle(t)
	f.get(t, "promo-cluster-state", &cm)
	expect(t, "created after a deletion", cm.Data[clusterCreatedKey], string(bt.UID))
}

package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// A cluster is bootstrapped once in its life, but its members alone cannot
// always tell: when a majority of the volumes is lost while the members
// that kept theirs are down, the empty ones answer each other "nothing
// here" and would create a new, empty cluster. So once the cluster was
// first Available (a leader with a quorum: purchases may have been
// acknowledged) the operator writes the ConfigMap <name>-cluster-state with
// created = the cluster's ID, and every pod mounts it (optional: creating
// the cluster needs nothing) for --cluster-created-file: a node that finds
// it saying so never bootstraps, nor restores, on an empty data dir.
// ConfigMap volumes are refreshed by the kubelet, so running pods see it
// without a restart.

const (
	clusterStateVolume = "cluster-state"
	clusterStateDir    = "/etc/buytracker/cluster-state"
	clusterCreatedKey  = "created"
)

// withClusterState mounts the cluster-state ConfigMap and points the node
// at its created key.
func withClusterState(n clusterNames, spec *corev1.PodSpec) {
	node := &spec.Containers[0]
	node.Args = append(node.Args, "--cluster-created-file="+clusterStateDir+"/"+clusterCreatedKey)
	node.VolumeMounts = append(node.VolumeMounts, corev1.VolumeMount{Name: clusterStateVolume, MountPath: clusterStateDir, ReadOnly: true})
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: clusterStateVolume, VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: n.clusterState()},
			Optional:             ptr.To(true),
			DefaultMode:          ptr.To[int32](0o444),
		},
	}})
}

// reconcileClusterState writes the cluster-state ConfigMap once the cluster
// is, or was, Available; before that it writes nothing. It never removes
// it: only the BuyTracker's deletion does, through the owner reference.
func (r *BuyTrackerReconciler) reconcileClusterState(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, v *clusterView) error {
	wasAvailable := meta.IsStatusConditionTrue(bt.Status.Conditions, buytrackerv1alpha1.ConditionAvailable)
	if !wasAvailable && availableCondition(v, bt.Generation).Status != metav1.ConditionTrue {
		return nil
	}
	desired := &corev1.ConfigMap{ObjectMeta: childMeta(bt, n, n.clusterState()), Data: map[string]string{clusterCreatedKey: string(bt.UID)}}
	wrote, err := applyChildAndRead(ctx, r.Client, &corev1.ConfigMap{}, desired, appliedConfigMap, nil)
	if err != nil {
		return err
	}
	if wrote {
		logf.FromContext(ctx).Info("Recorded for its members that the cluster was created", "configmap", n.clusterState())
	}
	return nil
}

// appliedConfigMap is the part of a ConfigMap the operator applied.
func appliedConfigMap(c *corev1.ConfigMap, manager string) (any, error) {
	return corev1ac.ExtractConfigMap(c, manager)
}

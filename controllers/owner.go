package controllers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// childMeta is the metadata every child object starts from: its name, the
// cluster's labels and a controller reference to the BuyTracker, so that
// the garbage collector deletes the child with it.
func childMeta(bt *buytrackerv1alpha1.BuyTracker, n clusterNames, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: bt.Namespace,
		Labels:    n.labels(),
		OwnerReferences: []metav1.OwnerReference{
			*metav1.NewControllerRef(bt, buytrackerv1alpha1.GroupVersion.WithKind("BuyTracker")),
		},
	}
}

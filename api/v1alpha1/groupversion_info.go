// Package v1alpha1 holds the BuyTracker API (group buytracker.dev, version
// v1alpha1): the types, their validation and defaults as kubebuilder markers,
// and the condition types and reasons the operator reports.
// +kubebuilder:object:generate=true
// +groupName=buytracker.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the BuyTracker API.
	GroupVersion = schema.GroupVersion{Group: "buytracker.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the API's types with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &BuyTracker{}, &BuyTrackerList{},
		&BuyTrackerBackup{}, &BuyTrackerBackupList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}

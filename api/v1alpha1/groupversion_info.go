// Package v1alpha1 holds the BuyTracker API (group buytracker.dev, version
// v1alpha1): the types, their validation and defaults as kubebuilder markers,
// and the condition types and reasons the operator reports.
// +kubebuilder:object:generate=true
// +groupName=buytracker.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the BuyTracker API.
	GroupVersion = schema.GroupVersion{Group: "buytracker.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the API's types with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

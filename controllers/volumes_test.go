package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

func TestVolumeConditionReportsWhatToActOnFirst(t *testing.T) {
	want := resource.MustParse("2Gi")
	tests := []struct {
		name   string
		o      volumeOutcome
		status metav1.ConditionStatus
		reason string
	}{
		{"nothing to grow", volumeOutcome{}, metav1.ConditionFalse, buytrackerv1alpha1.ReasonVolumesAtSize},
		{"growing", volumeOutcome{expanding: []string{"data-promo-0"}}, metav1.ConditionTrue, buytrackerv1alpha1.ReasonVolumesExpanding},
		{"a class that cannot grow beats growing", volumeOutcome{expanding: []string{"data-promo-0"}, notAllowed: []string{"data-promo-1"}, classes: []string{"standard"}},
			metav1.ConditionFalse, buytrackerv1alpha1.ReasonExpansionNotAllowed},
		{"a refused patch beats everything", volumeOutcome{notAllowed: []string{"data-promo-1"}, failed: []string{"data-promo-2"}, why: "forbidden"},
			metav1.ConditionFalse, buytrackerv1alpha1.ReasonExpansionFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.want = want
			c := volumeCondition(tt.o, 7)
			expect(t, "type", c.Type, buytrackerv1alpha1.ConditionVolumeExpansion)
			expect(t, "status", c.Status, tt.status)
			expect(t, "reason", c.Reason, tt.reason)
			expect(t, "observedGeneration", c.ObservedGeneration, int64(7))
		})
	}
}

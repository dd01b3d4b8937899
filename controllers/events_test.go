package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

func TestConditionEventsAreRecordedOnTheTransitionsThatMatter(t *testing.T) {
	disk := func(status metav1.ConditionStatus) []metav1.Condition {
		if status == "" {
			return nil
		}
		return []metav1.Condition{{Type: buytrackerv1alpha1.ConditionDiskPressure, Status: status, Reason: "R", Message: "m"}}
	}
	tests := []struct {
		name          string
		before, after metav1.ConditionStatus
		want          []string
	}{
		{"first report, under pressure", "", metav1.ConditionTrue, []string{"Warning DiskPressure R: m"}},
		{"first report, fine", "", metav1.ConditionFalse, nil},
		{"no answer, then fine: nothing was relieved", metav1.ConditionUnknown, metav1.ConditionFalse, nil},
		{"no answer, then under pressure", metav1.ConditionUnknown, metav1.ConditionTrue, []string{"Warning DiskPressure R: m"}},
		{"under pressure, then fine", metav1.ConditionTrue, metav1.ConditionFalse, []string{"Normal DiskPressureRelieved m"}},
		{"still under pressure", metav1.ConditionTrue, metav1.ConditionTrue, nil},
		{"under pressure, then no answer", metav1.ConditionTrue, metav1.ConditionUnknown, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recorder := events.NewFakeRecorder(10)
			r := &BuyTrackerReconciler{Recorder: recorder}
			r.recordHealthChanges(testBuyTracker(), disk(tt.before), disk(tt.after))
			expect(t, "events", drain(recorder), tt.want)
		})
	}
}

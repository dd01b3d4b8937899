package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// Bounds of the free-space watermark the operator gives each node
// (--min-free-disk). The node's own default, 64Mi, is room for the purchases
// in flight when the watermark trips; a larger volume mostly holds records,
// and a snapshot needs about their size again, so the watermark grows with
// the volume, up to a limit past which it would only waste space.
const (
	watermarkShare    = 20 // 1/20: 5% of the volume
	minWatermarkBytes = 64 << 20
	maxWatermarkBytes = 1 << 30
	// watermarkVolumeShare caps the watermark at a quarter of a small
	// volume, which the 64Mi floor would otherwise fill (a test cluster's
	// 100Mi volume).
	watermarkVolumeShare = 4
)

// storageSize is spec.storage.size, or its default.
func storageSize(bt *buytrackerv1alpha1.BuyTracker) resource.Quantity {
	if bt.Spec.Storage.Size != nil {
		return *bt.Spec.Storage.Size
	}
	return resource.MustParse(buytrackerv1alpha1.DefaultStorage)
}

// diskWatermark is the --min-free-disk value for a volume of size bytes: 5%
// of it, at least 64Mi and at most 1Gi, but never more than a quarter of the
// volume; rounded down to a whole MiB when it is one or more.
func diskWatermark(size int64) int64 {
	w := min(max(size/watermarkShare, minWatermarkBytes), maxWatermarkBytes)
	w = min(w, size/watermarkVolumeShare)
	if w >= 1<<20 {
		w &^= 1<<20 - 1
	}
	return w
}

// formatBytes writes a byte count as the node's size flags read it: in Mi
// when it is a whole number of them.
func formatBytes(b int64) string {
	if b > 0 && b%(1<<20) == 0 {
		return fmt.Sprintf("%dMi", b>>20)
	}
	return fmt.Sprint(b)
}

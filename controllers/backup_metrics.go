package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
)

// BackupMetrics exports, per BuyTracker, when its newest backup completed
// and how long ago that was; the age is computed when the metrics are
// scraped, so it grows between reconciles.
type BackupMetrics struct {
	mu   sync.Mutex
	last map[types.NamespacedName]time.Time
	now  func() time.Time

	timestamp, age *prometheus.Desc
}

// NewBackupMetrics returns an empty collector; now is its clock (nil:
// time.Now). Register it with controller-runtime's metrics.Registry.
func NewBackupMetrics(now func() time.Time) *BackupMetrics {
	if now == nil {
		now = time.Now
	}
	labels := []string{"namespace", "buytracker"}
	return &BackupMetrics{
		last: map[types.NamespacedName]time.Time{},
		now:  now,
		timestamp: prometheus.NewDesc("buytracker_backup_last_success_timestamp_seconds",
			"Unix time at which the BuyTracker's newest successful backup completed.", labels, nil),
		age: prometheus.NewDesc("buytracker_backup_last_success_age_seconds",
			"Seconds since the BuyTracker's newest successful backup completed.", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *BackupMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.timestamp
	ch <- m.age
}

// Collect implements prometheus.Collector.
func (m *BackupMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for key, t := range m.last {
		ch <- prometheus.MustNewConstMetric(m.timestamp, prometheus.GaugeValue, float64(t.UnixNano())/1e9, key.Namespace, key.Name)
		ch <- prometheus.MustNewConstMetric(m.age, prometheus.GaugeValue, max(0, now.Sub(t).Seconds()), key.Namespace, key.Name)
	}
}

// set records bt's newest successful backup; a zero time forgets bt.
func (m *BackupMetrics) set(bt types.NamespacedName, completed time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if completed.IsZero() {
		delete(m.last, bt)
		return
	}
	m.last[bt] = completed
}

package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

func scheduled(bt string) map[string]string {
	return map[string]string{buytrackerv1alpha1.LabelScheduledBackup: bt}
}

// gauges reads the backup metrics of one BuyTracker as a scrape would.
func gauges(t *testing.T, m *BackupMetrics, ns, bt string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(m); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, fam := range families {
		for _, metric := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns && labels["buytracker"] == bt {
				out[fam.GetName()] = metric.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestAScheduleTakesOneBackupPerTimeAndOneForTimesMissed(t *testing.T) {
	f := newBackupFixture(t)
	bt := f.readyBuyTracker(t, buytrackerv1alpha1.BuyTrackerSpec{Backup: &buytrackerv1alpha1.BackupSpec{Schedule: "0 * * * *"}})
	first := bt.CreationTimestamp.UTC().Truncate(time.Hour).Add(time.Hour)

	f.now = first.Add(-time.Minute)
	res := f.passSchedule(t)
	expect(t, "backups before the first time", len(f.backupNames(t)), 0)
	expect(t, "requeue until the first time", res.RequeueAfter, time.Minute)
	if c := meta.FindStatusCondition(f.buyTracker(t).Status.Conditions, buytrackerv1alpha1.ConditionBackupSchedule); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("BackupSchedule condition %+v", c)
	}

	f.now = first.Add(30 * time.Second)
	res = f.passSchedule(t)
	name := "promo-" + first.Format("20060102150405")
	expect(t, "backups at the first time", f.backupNames(t), []string{name})
	expect(t, "requeue until the next time", res.RequeueAfter, time.Hour-30*time.Second)
	b := f.backup(t, name)
	expect(t, "label", b.Labels[buytrackerv1alpha1.LabelScheduledBackup], "promo")
	expect(t, "buyTracker", b.Spec.BuyTracker, "promo")
	if ev := eventsWith(drain(f.recorder), "BackupScheduled"); len(ev) != 1 {
		t.Errorf("events %q", ev)
	}
	f.passSchedule(t)
	expect(t, "backups after a second pass", len(f.backupNames(t)), 1)

	// The next time comes while the first backup still runs: none more.
	f.now = first.Add(time.Hour + 10*time.Second)
	f.passSchedule(t)
	expect(t, "backups while one runs", len(f.backupNames(t)), 1)

	// It completes; the operator is down for three more times: one backup,
	// for the latest of them.
	f.completeBackup(t, name, first.Add(time.Minute), 500)
	f.now = first.Add(3*time.Hour + 5*time.Second)
	f.passSchedule(t)
	latest := "promo-" + first.Add(3*time.Hour).Format("20060102150405")
	names := f.backupNames(t)
	slices.Sort(names)
	expect(t, "backups after missed times", names, []string{name, latest})
	f.passSchedule(t)
	expect(t, "backups after another pass", len(f.backupNames(t)), 2)

	last := f.buyTracker(t).Status.LastBackup
	if last == nil || last.Name != name || last.Index != 500 || last.Purchases != 498 || !last.CompletedAt.Time.Equal(first.Add(time.Minute)) {
		t.Fatalf("lastBackup %+v: want %s at index 500", last, name)
	}
	g := gauges(t, f.metrics, f.ns, "promo")
	expect(t, "last success timestamp", g["buytracker_backup_last_success_timestamp_seconds"], float64(first.Add(time.Minute).Unix()))
	expect(t, "last success age at scrape", g["buytracker_backup_last_success_age_seconds"], (3*time.Hour - time.Minute + 5*time.Second).Seconds())
	f.now = f.now.Add(time.Minute)
	expect(t, "age a minute later, without a reconcile", gauges(t, f.metrics, f.ns, "promo")["buytracker_backup_last_success_age_seconds"],
		(3*time.Hour + 5*time.Second).Seconds())
}

func TestAnInvalidScheduleIsReportedAndTakesNothing(t *testing.T) {
	for _, schedule := range []string{"61 * * * *", "every day", "CRON_TZ=Europe/Paris 0 3 * * *"} {
		t.Run(schedule, func(t *testing.T) {
			f := newBackupFixture(t)
			f.readyBuyTracker(t, buytrackerv1alpha1.BuyTrackerSpec{Backup: &buytrackerv1alpha1.BackupSpec{Schedule: schedule}})
			f.now = time.Now().Add(48 * time.Hour)
			f.passSchedule(t)
			f.passSchedule(t)
			c := meta.FindStatusCondition(f.buyTracker(t).Status.Conditions, buytrackerv1alpha1.ConditionBackupSchedule)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != buytrackerv1alpha1.ReasonInvalidSchedule || !strings.Contains(c.Message, schedule) {
				t.Fatalf("BackupSchedule condition %+v: want False InvalidSchedule quoting the schedule", c)
			}
			expect(t, "backups", len(f.backupNames(t)), 0)
			ev := eventsWith(drain(f.recorder), "InvalidBackupSchedule")
			if len(ev) != 1 || !strings.HasPrefix(ev[0], corev1.EventTypeWarning) {
				t.Errorf("want one Warning InvalidBackupSchedule Event over two passes, got %q", ev)
			}
		})
	}
}

// pruneFixture has scheduled backups promo-2026110N000000 completed on
// day N of November 2026, a Failed scheduled one of October 31st and one
// taken by hand on November 1st, and a clock on November 5th.
func pruneFixture(t *testing.T, retention *buytrackerv1alpha1.BackupRetention, days ...int) *backupFixture {
	t.Helper()
	f := newBackupFixture(t)
	f.readyBuyTracker(t, buytrackerv1alpha1.BuyTrackerSpec{Backup: &buytrackerv1alpha1.BackupSpec{Schedule: "0 0 1 1 *", Retention: retention}})
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	for _, d := range days {
		name := "promo-" + day(d).Format("20060102150405")
		f.createBackup(t, name, "promo", scheduled("promo"))
		f.completeBackup(t, name, day(d).Add(time.Minute), int64(100*d))
	}
	f.createBackup(t, "promo-20261031000000", "promo", scheduled("promo"))
	failed := f.backup(t, "promo-20261031000000")
	failed.Status.Phase, failed.Status.CompletedAt = buytrackerv1alpha1.BackupFailed, &metav1.Time{Time: day(1).Add(-23 * time.Hour)}
	if err := f.s.client.Status().Update(context.Background(), failed); err != nil {
		t.Fatal(err)
	}
	f.createBackup(t, "by-hand", "promo", nil)
	f.completeBackup(t, "by-hand", day(1), 50)
	f.now = day(5)
	return f
}

func TestRetentionByCountDeletesTheStoredDataFirstThenTheBackups(t *testing.T) {
	f := pruneFixture(t, &buytrackerv1alpha1.BackupRetention{Count: ptr.To[int32](2)}, 1, 2, 3, 4)
	f.passSchedule(t)

	names := f.backupNames(t)
	slices.Sort(names)
	expect(t, "backups while their data is deleted (the failed one goes at once)", names,
		[]string{"by-hand", "promo-20261101000000", "promo-20261102000000", "promo-20261103000000", "promo-20261104000000"})
	for _, gone := range []string{"promo-20261101000000", "promo-20261102000000"} {
		job := f.job(t, gone+"-delete")
		expect(t, "delete args", job.Spec.Template.Spec.Containers[0].Args,
			[]string{"backup", "delete", "--at=/backups/" + f.ns + "/promo/" + gone + ".btbackup", "--result-file=/dev/termination-log"})
		if !metav1.IsControlledBy(job, f.backup(t, gone)) {
			t.Errorf("job %s is not owned by its backup", job.Name)
		}
	}
	for _, kept := range []string{"promo-20261103000000", "promo-20261104000000", "by-hand"} {
		if jobExists(t, f.s.client, f.ns, kept+"-delete") {
			t.Errorf("%s is kept, yet its data is being deleted", kept)
		}
	}

	finishJob(t, f.s.client, f.ns, "promo-20261101000000-delete", true, agentResult{Location: "x"})
	finishJob(t, f.s.client, f.ns, "promo-20261102000000-delete", false, agentResult{Error: "access denied", Reason: "unreadable"})
	f.passSchedule(t)
	names = f.backupNames(t)
	slices.Sort(names)
	expect(t, "backups after the deletes finished", names,
		[]string{"by-hand", "promo-20261102000000", "promo-20261103000000", "promo-20261104000000"})
	recorded := drain(f.recorder)
	if ev := eventsWith(recorded, "BackupPruneFailed"); len(ev) != 1 || !strings.Contains(ev[0], "access denied") {
		t.Errorf("want a BackupPruneFailed Event with the agent's error, got %q", recorded)
	}
	if ev := eventsWith(recorded, "BackupDeleted"); len(ev) != 2 {
		t.Errorf("want BackupDeleted for the failed backup and the pruned one, got %q", recorded)
	}
	last := f.buyTracker(t).Status.LastBackup
	if last == nil || last.Name != "promo-20261104000000" {
		t.Errorf("lastBackup %+v", last)
	}
}

func TestRetentionByAgeKeepsTheNewestCompletedBackupWhateverItsAge(t *testing.T) {
	f := pruneFixture(t, &buytrackerv1alpha1.BackupRetention{Count: ptr.To[int32](10), MaxAge: &metav1.Duration{Duration: 36 * time.Hour}}, 1, 2, 3, 4)
	f.passSchedule(t)
	for name, doomed := range map[string]bool{
		"promo-20261101000000": true, "promo-20261102000000": true,
		"promo-20261103000000": true, "promo-20261104000000": false, "by-hand": false,
	} {
		if got := jobExists(t, f.s.client, f.ns, name+"-delete"); got != doomed {
			t.Errorf("%s: data being deleted %v, want %v (36h before %s)", name, got, doomed, f.now)
		}
	}
	for _, name := range []string{"promo-20261101000000", "promo-20261102000000", "promo-20261103000000"} {
		finishJob(t, f.s.client, f.ns, name+"-delete", true, agentResult{Location: "x"})
	}
	f.passSchedule(t)
	names := f.backupNames(t)
	slices.Sort(names)
	expect(t, "backups", names, []string{"by-hand", "promo-20261104000000"})

	// A month on, the newest is far older than maxAge and still kept.
	f.now = f.now.Add(30 * 24 * time.Hour)
	f.passSchedule(t)
	if jobExists(t, f.s.client, f.ns, "promo-20261104000000-delete") {
		t.Error("the newest completed backup's data is being deleted")
	}
	expect(t, "backups a month on", len(f.backupNames(t)), 2)
}

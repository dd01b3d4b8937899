package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

func checkBackupFlags(o *options) error {
	if o.backupName != "" {
		if errs := validation.IsDNS1123Subdomain(o.backupName); len(errs) > 0 {
			return fmt.Errorf("--name %q is not a valid object name: %v", o.backupName, errs)
		}
	}
	if o.waitTimeout <= 0 {
		return fmt.Errorf("--wait-timeout must be positive, got %s", o.waitTimeout)
	}
	return nil
}

// backupName is the name a backup gets without --name: the BuyTracker's
// name and the time, as scheduled backups are named.
func backupName(bt string, o *options, now time.Time) string {
	if o.backupName != "" {
		return o.backupName
	}
	return bt + "-" + now.UTC().Format("20060102150405")
}

// runBackup creates a BuyTrackerBackup of the BuyTracker; with --wait it
// waits, at most --wait-timeout, for the operator to complete or fail it.
func runBackup(ctx context.Context, s *session, name string) error {
	if _, err := s.kube.getBuyTracker(ctx, name); err != nil {
		return err
	}
	b := &buytrackerv1alpha1.BuyTrackerBackup{
		ObjectMeta: metav1.ObjectMeta{Name: backupName(name, s.opts, s.now()), Namespace: s.kube.namespace},
		Spec:       buytrackerv1alpha1.BuyTrackerBackupSpec{BuyTracker: name},
	}
	var created buytrackerv1alpha1.BuyTrackerBackup
	if err := s.kube.buytracker.Post().Namespace(b.Namespace).Resource(backupsResource).Body(b).Do(ctx).Into(&created); err != nil {
		return fmt.Errorf("create BuyTrackerBackup %s/%s: %w", b.Namespace, b.Name, err)
	}
	fmt.Fprintf(s.stdout, "buytrackerbackup.buytracker.dev/%s created\n", created.Name)
	if !s.opts.wait {
		return nil
	}
	done, err := s.waitForBackup(ctx, created.Name)
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(s.stdout, describeBackup(done))
	if err == nil && done.Status.Phase == buytrackerv1alpha1.BackupFailed {
		return fmt.Errorf("backup %s failed", done.Name)
	}
	return err
}

// waitForBackup watches the backup (listing first, so that a phase reached
// before the watch began counts) until it is Completed or Failed.
func (s *session) waitForBackup(ctx context.Context, name string) (*buytrackerv1alpha1.BuyTrackerBackup, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.waitTimeout)
	defer cancel()
	ns, rc := s.kube.namespace, s.kube.buytracker
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = selector
			var list buytrackerv1alpha1.BuyTrackerBackupList
			err := rc.Get().Namespace(ns).Resource(backupsResource).VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(&list)
			return &list, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector, opts.Watch = selector, true
			return rc.Get().Namespace(ns).Resource(backupsResource).VersionedParams(&opts, metav1.ParameterCodec).Watch(ctx)
		},
	}
	var last *buytrackerv1alpha1.BuyTrackerBackup
	_, err := watchtools.UntilWithSync(ctx, lw, &buytrackerv1alpha1.BuyTrackerBackup{}, nil, func(e watch.Event) (bool, error) {
		if e.Type == watch.Deleted {
			return false, fmt.Errorf("BuyTrackerBackup %s/%s was deleted while waiting", ns, name)
		}
		b, ok := e.Object.(*buytrackerv1alpha1.BuyTrackerBackup)
		if !ok {
			return false, nil
		}
		last = b
		return backupFinished(b), nil
	})
	if err != nil {
		if wait.Interrupted(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, watchtools.ErrWatchClosed) {
			phase := "no phase yet"
			if last != nil && last.Status.Phase != "" {
				phase = "phase " + string(last.Status.Phase)
			}
			return nil, fmt.Errorf("BuyTrackerBackup %s/%s: not finished within %s (%s)", ns, name, s.opts.waitTimeout, phase)
		}
		return nil, fmt.Errorf("wait for BuyTrackerBackup %s/%s: %w", ns, name, err)
	}
	return last, nil
}

func backupFinished(b *buytrackerv1alpha1.BuyTrackerBackup) bool {
	return b.Status.Phase == buytrackerv1alpha1.BackupCompleted || b.Status.Phase == buytrackerv1alpha1.BackupFailed
}

// describeBackup says how a finished backup ended.
func describeBackup(b *buytrackerv1alpha1.BuyTrackerBackup) string {
	if b.Status.Phase == buytrackerv1alpha1.BackupFailed {
		msg := "no reason given"
		for _, c := range b.Status.Conditions {
			if c.Type == buytrackerv1alpha1.BackupConditionCompleted {
				msg = fmt.Sprintf("%s: %s", c.Reason, c.Message)
			}
		}
		return fmt.Sprintf("%s: Failed (%s)\n", b.Name, msg)
	}
	return fmt.Sprintf("%s: Completed, index %d, %d purchases, checksum %s, %d bytes, written by %s\n",
		b.Name, b.Status.Index, b.Status.Purchases, b.Status.Checksum, b.Status.SizeBytes, b.Status.Member)
}

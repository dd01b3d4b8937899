// Command manager runs the buytracker operator: the BuyTracker, BuyTrackerBackup
// and backup schedule controllers, against the cluster of its in-cluster
// config or --kubeconfig.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	clientconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/controllers"
)

func main() {
	err := run(ctrl.SetupSignalHandler(), os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

// run parses the flags and runs the manager until ctx ends.
func run(ctx context.Context, args []string) error {
	var (
		metricsAddr, probeAddr, nodeImage, clusterDomain string
		operatorNamespace, watchNamespaces               string
		leaderElect                                      bool
		workers                                          int
	)
	// A flag set of its own, not flag.CommandLine, so that run can be called
	// more than once, as the tests do; controller-runtime's --kubeconfig is
	// added to it, and ctrl.GetConfig reads it as usual.
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	clientconfig.RegisterFlags(fs)
	fs.StringVar(&metricsAddr, "metrics-bind-address", "0", "address the metrics endpoint binds to (:8080), or 0 to disable it")
	fs.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address the health probes bind to")
	fs.BoolVar(&leaderElect, "leader-elect", false, "elect a leader among manager replicas, so that only one reconciles")
	fs.StringVar(&nodeImage, "node-image", "buytracker/node:dev", "node image for BuyTrackers that name none")
	fs.StringVar(&clusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain, for the pods' stable names")
	fs.StringVar(&operatorNamespace, "operator-namespace", envOr("POD_NAMESPACE", defaultOperatorNamespace),
		"the namespace the operator runs in, admitted to the nodes' admin port by their NetworkPolicy (default: $POD_NAMESPACE)")
	fs.StringVar(&watchNamespaces, "watch-namespaces", "",
		"comma-separated namespaces whose BuyTrackers the operator reconciles, and the only ones it reads; empty: every namespace")
	fs.IntVar(&workers, "max-concurrent-reconciles", controllers.DefaultWorkers,
		"how many BuyTrackers are reconciled at once; one whose nodes do not answer holds a worker for at most about 25 s")
	opts := zap.Options{}
	opts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if nodeImage == "" {
		return errors.New("--node-image must not be empty")
	}
	if workers < 1 {
		return fmt.Errorf("--max-concurrent-reconciles=%d: must be at least 1", workers)
	}
	namespaces, err := parseNamespaces(watchNamespaces)
	if err != nil {
		return fmt.Errorf("--watch-namespaces: %w", err)
	}
	if errs := validation.IsDNS1123Label(operatorNamespace); len(errs) > 0 {
		return fmt.Errorf("--operator-namespace=%q: %s", operatorNamespace, strings.Join(errs, "; "))
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(buytrackerv1alpha1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("find a kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "operator.buytracker.dev",
		// controller-runtime keeps the names of the controllers it has set
		// up in a process-wide set and refuses a second "buytracker", so
		// that two controllers cannot share metric labels. This manager
		// has one controller; the check would only stop run from being
		// called again in the same process, as the tests do.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Cache:      cacheOptions(namespaces),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	r := &controllers.BuyTrackerReconciler{
		Client:            mgr.GetClient(),
		APIReader:         mgr.GetAPIReader(),
		Recorder:          mgr.GetEventRecorder("buytracker-operator"),
		AdminClients:      controllers.NewAdminClientFactory(),
		NodeImage:         nodeImage,
		ClusterDomain:     clusterDomain,
		Intervals:         controllers.DefaultIntervals,
		AdminBudget:       controllers.DefaultAdminBudget,
		Workers:           workers,
		CertPropagation:   controllers.DefaultCertPropagation,
		OperatorNamespace: operatorNamespace,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the BuyTracker controller: %w", err)
	}
	backups := &controllers.BuyTrackerBackupReconciler{
		Client:        mgr.GetClient(),
		APIReader:     mgr.GetAPIReader(),
		Recorder:      mgr.GetEventRecorder("buytracker-operator"),
		NodeImage:     nodeImage,
		ClusterDomain: clusterDomain,
		Intervals:     controllers.DefaultIntervals,
	}
	if err := backups.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the BuyTrackerBackup controller: %w", err)
	}
	schedules := &controllers.BackupScheduleReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("buytracker-operator"),
		NodeImage: nodeImage,
		Metrics:   backupMetrics(),
		Intervals: controllers.DefaultIntervals,
	}
	if err := schedules.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the backup schedule controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}
	ctrl.Log.WithName("setup").Info("Starting manager", "nodeImage", nodeImage, "operatorNamespace", operatorNamespace, "watchNamespaces", namespaces)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}

// backupMetrics registers the backup metrics with controller-runtime's
// registry, served at --metrics-bind-address; a second run in the same
// process (the tests) keeps the collector registered by the first.
func backupMetrics() *controllers.BackupMetrics {
	m := controllers.NewBackupMetrics(nil)
	var dup prometheus.AlreadyRegisteredError
	if err := crmetrics.Registry.Register(m); errors.As(err, &dup) {
		if existing, ok := dup.ExistingCollector.(*controllers.BackupMetrics); ok {
			return existing
		}
	}
	return m
}

// defaultOperatorNamespace is where config/default installs the operator;
// in a pod, POD_NAMESPACE (from the downward API) says where it is.
const defaultOperatorNamespace = "buytracker-system"

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// parseNamespaces reads --watch-namespaces: names separated by commas,
// without duplicates; empty means every namespace.
func parseNamespaces(list string) ([]string, error) {
	var out []string
	for _, ns := range strings.Split(list, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" && strings.TrimSpace(list) == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
		}
		if !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out, nil
}

// cacheOptions restricts what the manager lists and watches: the watched
// namespaces only (all when none are named), and of the kinds that other
// software has plenty of, only the objects labelled as the BuyTrackers'
// own, so that the operator never lists, nor holds, other pods or Secrets.
func cacheOptions(namespaces []string) cache.Options {
	ours := labels.SelectorFromSet(labels.Set{"app.kubernetes.io/name": "buytracker"})
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:                 {Label: ours},
		&corev1.Secret{}:              {Label: ours},
		&corev1.ConfigMap{}:           {Label: ours},
		&appsv1.StatefulSet{}:         {Label: ours},
		&networkingv1.NetworkPolicy{}: {Label: ours},
		&batchv1.Job{}:                {Label: ours},
	}}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// Package controllers holds the BuyTracker reconciler: it builds the
// cluster's children, asks a pure planner for the next membership, scaling
// or rollout step, carries that one step out through the nodes' admin API
// or the Kubernetes API, and reports status and Events.
package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// Intervals says how soon a BuyTracker is looked at again: right after a
// step (Progress), while waiting for the cluster (Wait), and when all is
// done, to keep the reported health fresh (Steady).
type Intervals struct {
	Progress, Wait, Steady time.Duration
}

// DefaultIntervals are the manager's requeue intervals.
var DefaultIntervals = Intervals{Progress: 2 * time.Second, Wait: 5 * time.Second, Steady: 30 * time.Second}

// DefaultWorkers is how many BuyTrackers the manager reconciles at once:
// enough that a few whose nodes do not answer (each holding a worker for
// up to one AdminBudget) leave workers for the others.
const DefaultWorkers = 4

// BuyTrackerReconciler reconciles BuyTracker objects.
type BuyTrackerReconciler struct {
	client.Client
	// APIReader reads around the cache, where a stale answer could cost
	// quorum (the pods a rollout deletes).
	APIReader client.Reader
	Recorder  events.EventRecorder
	// AdminClients makes the clients of the nodes' admin API.
	AdminClients AdminClientFactory
	// NodeImage is the image of BuyTrackers that name none.
	NodeImage string
	// ClusterDomain is the cluster's DNS domain (cluster.local).
	ClusterDomain string
	Intervals     Intervals
	// AdminBudget bounds the admin calls of one pass; its zero fields
	// take DefaultAdminBudget's.
	AdminBudget AdminBudget
	// Workers is how many BuyTrackers are reconciled at once (the
	// controller's MaxConcurrentReconciles); 0 means DefaultWorkers. A
	// BuyTracker is never reconciled by two workers at once.
	Workers int
	// CertPropagation is how long a step of a CA rotation waits after the
	// last change of a member Secret, so that every pod has read it
	// (DefaultCertPropagation in a cluster; tests may use 0).
	CertPropagation time.Duration
	// OperatorNamespace is the namespace the operator runs in: the
	// NetworkPolicy admits it to the nodes' admin port.
	OperatorNamespace string
	// now is the clock of certificate lifetimes; nil means time.Now.
	now func() time.Time
}

// The operator only patches what it changes, so it needs no update verbs.
// +kubebuilder:rbac:groups=buytracker.dev,resources=buytrackers,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=buytracker.dev,resources=buytrackers/status,verbs=get;patch
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;patch;delete
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses,verbs=get
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;patch;delete

// Reconcile brings one BuyTracker one step closer to its spec: children
// first, then at most one membership, scaling or rollout step, then status,
// written once.
func (r *BuyTrackerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	var bt buytrackerv1alpha1.BuyTracker
	if err := r.Get(ctx, req.NamespacedName, &bt); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !bt.DeletionTimestamp.IsZero() {
		// Every child has a controller reference: the garbage collector
		// deletes them, and the volumes go or stay as storage.whenDeleted
		// says.
		return ctrl.Result{}, nil
	}
	var (
		view      *clusterView
		tlsStatus *buytrackerv1alpha1.TLSStatus
		certCond  *metav1.Condition
		volumes   *metav1.Condition
		restore   *restoreReport
		quorumRep *quorumReport
		next      = wait(buytrackerv1alpha1.ReasonWaitingForLeader, "reconciling children")
	)
	defer func() {
		serr := r.writeStatus(ctx, &bt, passReport{view: view, tls: tlsStatus, certificates: certCond, volumes: volumes,
			restore: restore, quorum: quorumRep, next: next}, err)
		switch {
		case apierrors.IsConflict(serr):
			// The cache held an older BuyTracker than the server: look
			// again soon, from a fresher copy, rather than report an error.
			logf.FromContext(ctx).V(1).Info("BuyTracker changed since it was read; observing again", "error", serr)
			if err == nil && (result.RequeueAfter == 0 || result.RequeueAfter > r.intervals().Progress) {
				result.RequeueAfter = r.intervals().Progress
			}
		case serr != nil:
			err = errors.Join(err, serr)
		}
	}()

	n := namesOf(&bt, r.ClusterDomain)
	initial, err := r.reconcileInitialReplicas(ctx, &bt, n)
	if err != nil {
		return ctrl.Result{}, err
	}
	// A cluster started from a backup: nothing else is made until the
	// backup was read and verified.
	if restore, err = r.reconcileRestore(ctx, &bt, n); err != nil {
		return ctrl.Result{}, err
	}
	if restore != nil && restore.hold {
		next = wait(restore.condition.Reason, "%s", restore.condition.Message)
		return ctrl.Result{RequeueAfter: restore.requeue(r.intervals())}, nil
	}
	token, err := r.reconcileAdminSecret(ctx, &bt, n)
	if err != nil {
		return ctrl.Result{}, err
	}
	certs, err := r.reconcileCertificates(ctx, &bt, n, initial)
	if err != nil {
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			return ctrl.Result{}, err
		}
		// A certificate Secret changed, or appeared, since it was read
		// (the cache lags behind this controller's own writes): look
		// again soon rather than report an error.
		logf.FromContext(ctx).V(1).Info("Certificate Secret changed since it was read; observing again", "error", err)
		return ctrl.Result{RequeueAfter: r.intervals().Progress}, nil
	}
	tlsStatus, certCond = certs.status, certs.condition
	if certs.hold != "" {
		next = wait(buytrackerv1alpha1.ReasonWaitingForCertificates, "%s", certs.hold)
		return ctrl.Result{RequeueAfter: r.intervals().Wait}, nil
	}
	admin := adminCredentials{token: token, caBundle: certs.bundle}
	if err := r.reconcileServices(ctx, &bt, n); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reconcileNetworkPolicy(ctx, &bt, n); err != nil {
		return ctrl.Result{}, err
	}
	// Before the StatefulSet, which a size change replaces: the claims grow
	// while it does.
	claims, err := r.memberClaims(ctx, &bt, n)
	if err != nil {
		return ctrl.Result{}, err
	}
	vc, err := r.reconcileVolumes(ctx, &bt, claims)
	if err != nil {
		return ctrl.Result{}, err
	}
	volumes = &vc
	sts, err := r.reconcileStatefulSet(ctx, &bt, n, initial)
	if err != nil {
		return ctrl.Result{}, err
	}
	if sts == nil {
		next = wait(buytrackerv1alpha1.ReasonStorageChange, "waiting for the old StatefulSet to go before creating its replacement")
		return ctrl.Result{RequeueAfter: r.intervals().Wait}, nil
	}
	v, err := r.observe(ctx, &bt, n, sts, claims, admin)
	if err != nil {
		return ctrl.Result{}, err
	}
	view = &v
	if err := r.reconcileClusterState(ctx, &bt, n, view); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reconcileDisruptionBudget(ctx, &bt, n, budgetVoters(&bt, v)); err != nil {
		return ctrl.Result{}, err
	}
	qr := r.reconcileQuorum(ctx, &bt, n, v, admin)
	quorumRep = &qr
	if qr.acted {
		next = wait(buytrackerv1alpha1.ReasonWaitingForLeader, "%s", qr.recovery.Message)
		return ctrl.Result{RequeueAfter: r.intervals().Progress}, nil
	}
	next = planNext(v)
	logf.FromContext(ctx).V(1).Info("Planned step", "action", next.action, "phase", next.phase, "note", next.note)
	if err := r.execute(ctx, &bt, n, sts, v, next, admin); err != nil {
		return ctrl.Result{}, err
	}
	after := r.intervals().Steady
	switch {
	case next.action != actionWait:
		after = r.intervals().Progress
	case next.phase != buytrackerv1alpha1.ReasonReconciled:
		after = r.intervals().Wait
	}
	if certs.requeue > 0 {
		after = min(after, certs.requeue)
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// passReport is what one pass learnt, for the status written at its end;
// nil parts were not reached and keep what the status said.
type passReport struct {
	view         *clusterView
	tls          *buytrackerv1alpha1.TLSStatus
	certificates *metav1.Condition
	volumes      *metav1.Condition
	restore      *restoreReport
	quorum       *quorumReport
	next         step
}

// writeStatus patches the status when this pass changed it, and only then.
func (r *BuyTrackerReconciler) writeStatus(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, p passReport, loopErr error) error {
	status := nextStatus(bt, p.view, p.next, loopErr)
	if p.tls != nil {
		status.TLS = p.tls
	}
	if p.volumes != nil {
		meta.SetStatusCondition(&status.Conditions, *p.volumes)
	}
	if p.certificates != nil {
		meta.SetStatusCondition(&status.Conditions, *p.certificates)
	}
	applyRestore(bt, &status, p.restore)
	if p.quorum != nil {
		meta.SetStatusCondition(&status.Conditions, p.quorum.condition)
		status.QuorumRecovery = p.quorum.recovery
	}
	if equality.Semantic.DeepEqual(status, bt.Status) {
		return nil
	}
	// The optimistic lock makes the patch fail with a conflict when bt is
	// not the latest version (the cache lags behind this controller's own
	// writes): the Events below compare with the status being replaced,
	// and a stale copy would record changes that did not happen and miss
	// ones that did.
	patch := client.MergeFromWithOptions(bt.DeepCopy(), client.MergeFromWithOptimisticLock{})
	previous := bt.Status
	bt.Status = status
	if err := r.Status().Patch(ctx, bt, patch); err != nil {
		return fmt.Errorf("write status of buytracker %s: %w", bt.Name, err)
	}
	r.recordHealthChanges(bt, previous.Conditions, status.Conditions)
	r.recordReplacedMembers(bt, previous.Members, status.Members)
	r.recordOutOfServiceMembers(bt, previous.Members, status.Members)

	return nil
}

func (r *BuyTrackerReconciler) event(bt *buytrackerv1alpha1.BuyTracker, eventType, reason, action, format string, args ...any) {
	r.Recorder.Eventf(bt, nil, eventType, reason, action, format, args...)
}

func (r *BuyTrackerReconciler) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// adminBudget is AdminBudget with DefaultAdminBudget in its zero fields.
func (r *BuyTrackerReconciler) adminBudget() AdminBudget {
	b := r.AdminBudget
	b.Observe = cmp.Or(b.Observe, DefaultAdminBudget.Observe)
	b.Read = cmp.Or(b.Read, DefaultAdminBudget.Read)
	b.Change = cmp.Or(b.Change, DefaultAdminBudget.Change)
	return b
}

func (r *BuyTrackerReconciler) workers() int {
	if r.Workers <= 0 {
		return DefaultWorkers
	}
	return r.Workers
}

func (r *BuyTrackerReconciler) intervals() Intervals {
	return r.Intervals.orDefault()
}

// SetupWithManager registers the reconciler: it runs on changes of a
// BuyTracker's spec or annotations, of its children and of its pods.
//
// cert-manager's Certificates are watched when the API server serves them
// at start-up; without them (installed later) the pass polls them instead
// while they are not Ready.
func (r *BuyTrackerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr)
	switch _, err := mgr.GetRESTMapper().RESTMapping(certificateGVK.GroupKind(), certificateGVK.Version); {
	case err == nil:
		b = b.Owns(newCertificate())
	case meta.IsNoMatchError(err):
		mgr.GetLogger().Info("cert-manager's Certificates are not served: BuyTrackers that name an issuer report CertManagerMissing until they are", "kind", certificateGVK.String())
	default:
		return fmt.Errorf("look up %s: %w", certificateGVK, err)
	}
	return b.
		// Annotations too: buytracker.dev/rotate-ca asks for a CA rotation.
		For(&buytrackerv1alpha1.BuyTracker{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.Secret{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&batchv1.Job{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podOwner)).
		Named("buytracker").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.workers()}).
		Complete(r)
}

// podOwner maps a pod to its BuyTracker through the instance label.
func podOwner(_ context.Context, obj client.Object) []reconcile.Request {
	l := obj.GetLabels()
	if l[labelName] != "buytracker" || l[labelInstance] == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: l[labelInstance]}}}
}

// orDefault is iv, or DefaultIntervals when iv is unset (the zero value).
func (iv Intervals) orDefault() Intervals {
	if iv == (Intervals{}) {
		return DefaultIntervals
	}
	return iv
}

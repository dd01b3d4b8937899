package controllers

import (
	"context"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/pki"
)

// cert-manager's Certificates are handled as unstructured objects: the
// operator sets a dozen fields and reads two, and cert-manager's Go module
// would bring the SDK of every cloud its ACME solvers speak to.
var certificateGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}

// What a member's Certificate asks cert-manager for. The lifetimes are the
// operator's own (90 days, renewed with 30 left); the key is ECDSA P-256,
// as the operator's own (the node takes any key crypto/tls loads: ECDSA,
// RSA or Ed25519), and new at every renewal.
var (
	certManagerDuration    = (&metav1.Duration{Duration: memberValidity}).Duration.String()
	certManagerRenewBefore = (&metav1.Duration{Duration: memberValidity / 3}).Duration.String()
	certManagerUsages      = []any{"digital signature", "server auth", "client auth"}
	certManagerPrivateKey  = map[string]any{"algorithm": "ECDSA", "size": int64(256), "encoding": "PKCS8", "rotationPolicy": "Always"}
)

// newCertificate returns an empty Certificate object to read into.
func newCertificate() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(certificateGVK)
	return u
}

// desiredCertificate is the Certificate of one member: it writes the
// Secret the pods already mount, for the member's ID and stable names.
func desiredCertificate(bt *buytrackerv1alpha1.BuyTracker, n clusterNames, ref *buytrackerv1alpha1.IssuerReference, pod string) *unstructured.Unstructured {
	u := newCertificate()
	m := childMeta(bt, n, n.memberSecret(pod))
	u.SetName(m.Name)
	u.SetNamespace(m.Namespace)
	u.SetLabels(m.Labels)
	u.SetOwnerReferences(m.OwnerReferences)
	var dnsNames []any
	for _, name := range memberDNSNames(n, pod) {
		dnsNames = append(dnsNames, name)
	}
	labels := map[string]any{}
	for k, v := range n.labels() {
		labels[k] = v
	}
	u.Object["spec"] = map[string]any{
		"secretName": n.memberSecret(pod),
		// The labels put the Secret in the operator's cache, which sees
		// only objects labelled as a BuyTracker's.
		"secretTemplate": map[string]any{"labels": labels},
		"commonName":     pod,
		"dnsNames":       dnsNames,
		"usages":         slices.Clone(certManagerUsages),
		"duration":       certManagerDuration,
		"renewBefore":    certManagerRenewBefore,
		"privateKey":     copyMap(certManagerPrivateKey),
		"issuerRef":      map[string]any{"name": ref.Name, "kind": ref.Kind, "group": ref.Group},
	}
	return u
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// certificatesCondition is what the certificate step reports in
// CertificatesReady.
func certificatesCondition(bt *buytrackerv1alpha1.BuyTracker, status metav1.ConditionStatus, reason, format string, args ...any) *metav1.Condition {
	return &metav1.Condition{Type: buytrackerv1alpha1.ConditionCertificatesReady, Status: status, Reason: reason,
		Message: fmt.Sprintf(format, args...), ObservedGeneration: bt.Generation}
}

// reconcileIssuedCertificates keeps one cert-manager Certificate per
// member, owned by the BuyTracker, and reports whether each is Ready. It
// issues, renews and rotates nothing itself. The operator's admin calls
// trust the union of the ca.crt of the member Secrets: each member trusts
// its own, and during a rotation by the issuer some hold the new CA and
// some the old.
func (r *BuyTrackerReconciler) reconcileIssuedCertificates(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, initial int32, ref *buytrackerv1alpha1.IssuerReference) (certState, error) {
	issuer := ref.Kind + "/" + ref.Name
	var list unstructured.UnstructuredList
	list.SetGroupVersionKind(certificateGVK.GroupVersion().WithKind("CertificateList"))
	if err := r.List(ctx, &list, client.InNamespace(bt.Namespace), client.MatchingLabels(n.selectorLabels())); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			cond := certificatesCondition(bt, metav1.ConditionFalse, buytrackerv1alpha1.ReasonCertManagerMissing,
				"spec.peerTLS.issuerRef names %s, but the API server does not serve cert-manager's Certificates (%s): install cert-manager; nothing is created until then", issuer, certificateGVK.GroupVersion())
			return certState{condition: cond, hold: cond.Message, status: &buytrackerv1alpha1.TLSStatus{Issuer: issuer}}, nil
		}
		return certState{}, fmt.Errorf("list certificates: %w", err)
	}
	existing := map[string]*unstructured.Unstructured{}
	for i := range list.Items {
		c := &list.Items[i]
		if pod, ok := strings.CutSuffix(c.GetName(), "-tls"); ok && metav1.IsControlledBy(c, bt) {
			if o, ok := n.ordinal(pod); ok && o < maxMembers {
				existing[pod] = c
			}
		}
	}
	pods := wantedMembers(bt, initial, n)
	for pod := range existing {
		if !slices.Contains(pods, pod) {
			// A member that went keeps its Certificate, as it keeps its
			// Secret in the operator's own mode: a pod that comes back
			// finds a valid certificate.
			pods = append(pods, pod)
		}
	}
	slices.Sort(pods)
	var created, changed []string
	certs := map[string]*unstructured.Unstructured{}
	for _, pod := range pods {
		desired := desiredCertificate(bt, n, ref, pod)
		c, wrote, err := r.applyCertificate(ctx, existing[pod], desired)
		if err != nil {
			return certState{}, err
		}
		certs[pod] = c
		switch {
		case wrote && existing[pod] == nil:
			created = append(created, pod)
		case wrote:
			changed = append(changed, pod)
		}
	}
	if len(created) > 0 {
		r.event(bt, corev1.EventTypeNormal, "CertificatesCreated", "RequestCertificates", "Asked %s for the certificates of %s (cert-manager Certificates %s)", issuer, strings.Join(created, ", "), strings.Join(secretNames(n, created), ", "))
	}
	if len(changed) > 0 {
		r.event(bt, corev1.EventTypeNormal, "CertificatesChanged", "RequestCertificates", "Updated the cert-manager Certificates of %s (issuer %s)", strings.Join(changed, ", "), issuer)
	}

	secrets, err := r.issuedSecrets(ctx, bt, n)
	if err != nil {
		return certState{}, err
	}
	state := certState{status: &buytrackerv1alpha1.TLSStatus{Issuer: issuer}}
	var (
		bundle            []byte
		firstEnd          time.Time
		notReady, waiting []string
	)
	for _, pod := range pods {
		ready, why, notAfter := certificateReady(certs[pod])
		if !ready {
			notReady = append(notReady, fmt.Sprintf("%s (%s)", pod, why))
		}
		if !notAfter.IsZero() && (firstEnd.IsZero() || notAfter.Before(firstEnd)) {
			firstEnd = notAfter
		}
		if s := secrets[pod]; s != nil {
			bundle = appendCAs(bundle, s.Data[keyCABundle])
			if err := r.ownIssuedSecret(ctx, bt, s); err != nil {
				return certState{}, err
			}
		} else if o, _ := n.ordinal(pod); o < initial {
			waiting = append(waiting, pod)
		}
	}
	if len(waiting) > 0 {
		missing, err := r.statefulSetMissing(ctx, bt, n)
		if err != nil {
			return certState{}, err
		}
		if missing {
			state.hold = fmt.Sprintf("waiting for %s to issue the certificates of %s (Secrets %s) before creating the StatefulSet",
				issuer, strings.Join(waiting, ", "), strings.Join(secretNames(n, waiting), ", "))
		}
	}
	state.bundle = bundle
	if !firstEnd.IsZero() {
		state.status.MembersNotAfter = &metav1.Time{Time: firstEnd.UTC()}
	}
	if len(notReady) > 0 {
		state.condition = certificatesCondition(bt, metav1.ConditionFalse, buytrackerv1alpha1.ReasonCertManagerNotReady,
			"cert-manager (%s) issues the member certificates; not Ready: %s", issuer, strings.Join(notReady, "; "))
		state.requeue = r.intervals().Wait
	} else {
		state.condition = certificatesCondition(bt, metav1.ConditionTrue, buytrackerv1alpha1.ReasonCertManagerReady,
			"cert-manager (%s) issues the member certificates; all %d Certificates are Ready", issuer, len(pods))
	}
	return state, nil
}

// wantedMembers are the pods that need a certificate: every ordinal the
// cluster has or is about to have.
func wantedMembers(bt *buytrackerv1alpha1.BuyTracker, initial int32, n clusterNames) []string {
	var pods []string
	for i := range min(max(bt.DesiredReplicas(), bt.Status.Replicas, initial), maxMembers) {
		pods = append(pods, n.pod(i))
	}
	return pods
}

func secretNames(n clusterNames, pods []string) []string {
	out := make([]string, len(pods))
	for i, pod := range pods {
		out[i] = n.memberSecret(pod)
	}
	return out
}

// applyCertificate writes desired by server-side apply when existing (the
// Certificate read, or nil) does not hold every field of it; it reports
// whether it wrote. Fields set by others (cert-manager sets none in spec)
// are kept. The comparison is of values, not of the applied configuration
// (client-go has no Extract for a custom resource whose types the operator
// does not import): a field the operator owns and no longer sets would go
// only with the next apply.
func (r *BuyTrackerReconciler) applyCertificate(ctx context.Context, existing, desired *unstructured.Unstructured) (*unstructured.Unstructured, bool, error) {
	if existing != nil {
		existing = existing.DeepCopy()
		if err := adoptLegacyFields(ctx, r.Client, existing); err != nil {
			return nil, false, err
		}
		want := desired.Object["spec"].(map[string]any)
		have, _, _ := unstructured.NestedMap(existing.Object, "spec")
		same := isSubset(desired.GetLabels(), existing.GetLabels()) &&
			equality.Semantic.DeepEqual(desired.GetOwnerReferences(), existing.GetOwnerReferences())
		for k, v := range want {
			same = same && equality.Semantic.DeepEqual(v, have[k])
		}
		if same {
			return existing, false, nil
		}
	}
	c := desired.DeepCopy()
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(c), client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
		return nil, false, fmt.Errorf("apply certificate %s: %w", c.GetName(), err)
	}
	return c, true, nil
}

// certificateReady reads a Certificate's Ready condition and notAfter; why
// is cert-manager's reason and message when it is not Ready.
func certificateReady(c *unstructured.Unstructured) (ready bool, why string, notAfter time.Time) {
	if s, ok, _ := unstructured.NestedString(c.Object, "status", "notAfter"); ok {
		notAfter, _ = time.Parse(time.RFC3339, s)
	}
	conditions, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
	for _, raw := range conditions {
		cond, ok := raw.(map[string]any)
		if !ok || cond["type"] != "Ready" {
			continue
		}
		if cond["status"] == string(metav1.ConditionTrue) {
			return true, "", notAfter
		}
		reason, _ := cond["reason"].(string)
		message, _ := cond["message"].(string)
		return false, cut(strings.TrimSpace(reason+": "+message), 256), notAfter
	}
	return false, "not issued yet", notAfter
}

// issuedSecrets returns, by pod name, the member Secrets that exist (from
// the cache: cert-manager writes them with the labels the Certificate's
// secretTemplate gives).
func (r *BuyTrackerReconciler) issuedSecrets(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames) (map[string]*corev1.Secret, error) {
	return r.listMemberSecrets(ctx, bt, n, func(s *corev1.Secret) bool { return len(s.Data[keyTLSCert]) > 0 })
}

// ownIssuedSecret gives a member Secret cert-manager wrote an owner
// reference to the BuyTracker, so that it goes with it (cert-manager
// leaves Secrets behind by default). Not a controller reference: with
// --enable-certificate-owner-ref cert-manager makes its Certificate the
// Secret's controller, and an object has at most one. A Secret the
// operator issued before (controlled by the BuyTracker) is made so too.
func (r *BuyTrackerReconciler) ownIssuedSecret(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, s *corev1.Secret) error {
	ref := *metav1.NewControllerRef(bt, buytrackerv1alpha1.GroupVersion.WithKind("BuyTracker"))
	ref.Controller, ref.BlockOwnerDeletion = nil, nil
	refs := slices.DeleteFunc(slices.Clone(s.OwnerReferences), func(o metav1.OwnerReference) bool { return o.UID == bt.UID })
	refs = append(refs, ref)
	if equality.Semantic.DeepEqual(refs, s.OwnerReferences) {
		return nil
	}
	patched := s.DeepCopy()
	patch := client.MergeFromWithOptions(s.DeepCopy(), client.MergeFromWithOptimisticLock{})
	patched.OwnerReferences = refs
	if err := r.Patch(ctx, patched, patch); err != nil {
		return fmt.Errorf("set the owner of secret %s: %w", s.Name, err)
	}
	return nil
}

func (r *BuyTrackerReconciler) statefulSetMissing(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames) (bool, error) {
	var sts appsv1.StatefulSet
	err := r.Get(ctx, client.ObjectKey{Namespace: bt.Namespace, Name: n.statefulSet()}, &sts)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("get statefulset %s: %w", n.statefulSet(), err)
	}
	return false, nil
}

// appendCAs adds to bundle the certificates of more that it lacks; a
// ca.crt that is not PEM certificates adds nothing (its member refuses it
// too).
func appendCAs(bundle, more []byte) []byte {
	have, _ := pki.ParseCertificates(bundle)
	add, err := pki.ParseCertificates(more)
	if err != nil {
		return bundle
	}
	for _, c := range add {
		if !slices.ContainsFunc(have, c.Equal) {
			bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
			have = append(have, c)
		}
	}
	return bundle
}

// releaseCertificates deletes the Certificates of a BuyTracker that no
// longer names an issuer, so that cert-manager stops renewing the Secrets
// the operator now writes. It looks only when the status says cert-manager
// issued before: a BuyTracker that never named an issuer costs no request.
func (r *BuyTrackerReconciler) releaseCertificates(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames) error {
	if bt.Status.TLS == nil || bt.Status.TLS.Issuer == "" {
		return nil
	}
	var list unstructured.UnstructuredList
	list.SetGroupVersionKind(certificateGVK.GroupVersion().WithKind("CertificateList"))
	if err := r.List(ctx, &list, client.InNamespace(bt.Namespace), client.MatchingLabels(n.selectorLabels())); err != nil {
		if meta.IsNoMatchError(err) {
			return nil
		}
		return fmt.Errorf("list certificates: %w", err)
	}
	var deleted []string
	for i := range list.Items {
		c := &list.Items[i]
		if !metav1.IsControlledBy(c, bt) {
			continue
		}
		if err := r.Delete(ctx, c, client.Preconditions{UID: ptr.To(c.GetUID())}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete certificate %s: %w", c.GetName(), err)
		}
		deleted = append(deleted, c.GetName())
	}
	if len(deleted) > 0 {
		r.event(bt, corev1.EventTypeNormal, "CertificatesDeleted", "IssueCertificates", "spec.peerTLS.issuerRef is unset: deleted the cert-manager Certificates %s; the operator issues the member certificates", strings.Join(deleted, ", "))
	}
	return nil
}

package controllers

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/pki"
)

// The members' certificates: one CA per BuyTracker (Secret <name>-ca) and
// one certificate per member (Secret <pod>-tls), both in cert-manager's
// layout, so that cert-manager could issue them instead.
const (
	keyCABundle = "ca.crt"
	keyTLSCert  = corev1.TLSCertKey
	keyTLSKey   = corev1.TLSPrivateKeyKey
	// While a rotation publishes a new CA, the CA Secret holds it under
	// these keys; it issues nothing yet.
	keyNextCACert = "next-ca.crt"
	keyNextCAKey  = "next-ca.key"

	caValidity     = 10 * 365 * 24 * time.Hour
	memberValidity = 90 * 24 * time.Hour

	// annotationCARotation, on the CA Secret, is the rotate-ca value the
	// last rotation was started for; annotationCARotationStep is the step
	// it is at, absent when none is under way. Keeping them on the Secret
	// lets a restarted operator carry on where the last one stopped.
	annotationCARotation     = "buytracker.dev/ca-rotation"
	annotationCARotationStep = "buytracker.dev/ca-rotation-step"
	// annotationWrittenAt, on a member Secret, is when the operator last
	// changed it: a step of a rotation waits until every pod can have read
	// the last change.
	annotationWrittenAt = "buytracker.dev/written-at"
)

// DefaultCertPropagation is how long after its last change a member Secret
// is taken to be seen by its pod: the kubelet refreshes Secret volumes on
// its sync period (one minute, plus jitter) and the node reloads changed
// files without a restart.
const DefaultCertPropagation = 2 * time.Minute

// certState is what the certificate step hands to the rest of the pass.
type certState struct {
	// bundle is the CAs the operator trusts when it calls a node.
	bundle []byte
	status *buytrackerv1alpha1.TLSStatus
	// requeue is how soon the step wants to run again (0: no need).
	requeue time.Duration
	// condition is the CertificatesReady condition.
	condition *metav1.Condition
	// hold, when set, says why the pass must stop before the StatefulSet:
	// a pod would start without its certificate.
	hold string
}

// authority is the CA Secret, parsed.
type authority struct {
	secret   *corev1.Secret
	cert     *x509.Certificate
	certPEM  []byte
	keyPEM   []byte
	bundle   []byte
	rotation string // the step of a rotation under way, or ""
}

// reconcileCertificates keeps a CA and a certificate per member, renews
// member certificates that are in their last third of life, and moves a
// CA rotation on by at most one step: publish the new CA next to the old,
// re-issue every member from it, drop the old one. Each step starts only
// once every member Secret has the previous one and the pods had time to
// read it.
//
// When spec.peerTLS.issuerRef names an issuer, cert-manager issues them
// instead (reconcileIssuedCertificates).
func (r *BuyTrackerReconciler) reconcileCertificates(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, initial int32) (certState, error) {
	if ref := bt.PeerIssuer(); ref != nil {
		return r.reconcileIssuedCertificates(ctx, bt, n, initial, ref)
	}
	if err := r.releaseCertificates(ctx, bt, n); err != nil {
		return certState{}, err
	}
	state, err := r.reconcileOwnCertificates(ctx, bt, n, initial)
	if err == nil {
		state.condition = certificatesCondition(bt, metav1.ConditionTrue, buytrackerv1alpha1.ReasonIssuedByOperator,
			"the operator issues the member certificates from its CA in Secret %s", n.caSecret())
	}
	return state, err
}

// reconcileOwnCertificates issues the certificates from the operator's CA.
func (r *BuyTrackerReconciler) reconcileOwnCertificates(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, initial int32) (certState, error) {
	now := r.clock()
	ca, err := r.reconcileCA(ctx, bt, n, now)
	if err != nil {
		return certState{}, err
	}
	if ca.rotation == "" && (bt.Annotations[buytrackerv1alpha1.AnnotationRotateCA] != ca.secret.Annotations[annotationCARotation] || inLastThird(ca.cert, now)) {
		if ca, err = r.startCARotation(ctx, bt, n, ca, now); err != nil {
			return certState{}, err
		}
	}
	members, err := r.memberSecrets(ctx, bt, n, initial)
	if err != nil {
		return certState{}, err
	}
	var (
		issued    []string
		lastWrite time.Time
		firstEnd  time.Time
	)
	for _, pod := range sortedKeys(members) {
		s, wrote, err := r.reconcileMemberSecret(ctx, bt, n, ca, pod, members[pod], now)
		if err != nil {
			return certState{}, err
		}
		if wrote {
			issued = append(issued, pod)
		}
		if t, err := time.Parse(time.RFC3339, s.Annotations[annotationWrittenAt]); err == nil && t.After(lastWrite) {
			lastWrite = t
		}
		if c, err := parseCertPEM(s.Data[keyTLSCert]); err == nil && (firstEnd.IsZero() || c.NotAfter.Before(firstEnd)) {
			firstEnd = c.NotAfter
		}
	}
	if len(issued) > 0 {
		r.event(bt, corev1.EventTypeNormal, "CertificatesUpdated", "IssueCertificates", "Updated the member certificate Secrets of %s", strings.Join(issued, ", "))
	}
	state := certState{bundle: ca.bundle, status: tlsStatus(n, ca, firstEnd)}
	if ca.rotation == "" {
		return state, nil
	}
	if wait := lastWrite.Add(r.CertPropagation).Sub(now); wait > 0 {
		state.requeue = wait
		return state, nil
	}
	if ca, err = r.advanceCARotation(ctx, bt, n, ca); err != nil {
		return certState{}, err
	}
	state.bundle, state.status = ca.bundle, tlsStatus(n, ca, firstEnd)
	state.requeue = r.intervals().Progress
	return state, nil
}

// reconcileCA returns the CA, creating it the first time. A CA Secret is
// never replaced: every member trusts it.
func (r *BuyTrackerReconciler) reconcileCA(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, now time.Time) (*authority, error) {
	var s corev1.Secret
	// Read from the API server: a rotation step written by the previous
	// pass must not be missed in a lagging cache.
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: bt.Namespace, Name: n.caSecret()}, &s)
	switch {
	case err == nil:
		if _, err := parseAuthority(&s); err != nil {
			return nil, err
		}
		// Applied as it is: the labels and the owner come back if someone
		// removed them, and an older operator's Secret is adopted.
		written, err := r.patchCA(ctx, bt, n, &s, func(*corev1.Secret) {})
		if err != nil {
			return nil, err
		}
		return parseAuthority(written)
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("get secret %s: %w", n.caSecret(), err)
	}
	certPEM, keyPEM, err := pki.NewCA(caCommonName(n), now.Add(caValidity))
	if err != nil {
		return nil, err
	}
	// The rotate-ca value present at creation needs no rotation.
	desired := desiredCASecret(bt, n,
		map[string][]byte{keyTLSCert: certPEM, keyTLSKey: keyPEM, keyCABundle: certPEM},
		map[string]string{annotationCARotation: bt.Annotations[buytrackerv1alpha1.AnnotationRotateCA]})
	if _, err := applyOverRead(ctx, r.Client, &s, false, desired, appliedSecret, false); err != nil {
		return nil, err
	}
	r.event(bt, corev1.EventTypeNormal, "CACreated", "CreateCA", "Generated the cluster's CA into Secret %s", n.caSecret())
	return parseAuthority(&s)
}

// The CA Secret's keys and annotations the operator writes; an apply
// carries every one the Secret holds.
var (
	caSecretKeys        = []string{keyTLSCert, keyTLSKey, keyCABundle, keyNextCACert, keyNextCAKey}
	caSecretAnnotations = []string{annotationCARotation, annotationCARotationStep}
)

func desiredCASecret(bt *buytrackerv1alpha1.BuyTracker, n clusterNames, data map[string][]byte, annotations map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: childMeta(bt, n, n.caSecret()), Type: corev1.SecretTypeTLS, Data: data}
	s.Annotations = annotations
	return s
}

// pick returns the entries of m under keys.
func pick[V any](m map[string]V, keys ...string) map[string]V {
	out := map[string]V{}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

func parseAuthority(s *corev1.Secret) (*authority, error) {
	cert, err := parseCertPEM(s.Data[keyTLSCert])
	if err != nil {
		return nil, fmt.Errorf("secret %s: %s: %w: %w", s.Name, keyTLSCert, err, errBrokenChild)
	}
	if _, err := tls.X509KeyPair(s.Data[keyTLSCert], s.Data[keyTLSKey]); err != nil {
		return nil, fmt.Errorf("secret %s: CA certificate and key: %w: %w", s.Name, err, errBrokenChild)
	}
	if !cert.IsCA || len(s.Data[keyCABundle]) == 0 {
		return nil, fmt.Errorf("secret %s holds no CA and bundle: %w", s.Name, errBrokenChild)
	}
	a := &authority{secret: s, cert: cert, certPEM: s.Data[keyTLSCert], keyPEM: s.Data[keyTLSKey],
		bundle: s.Data[keyCABundle], rotation: s.Annotations[annotationCARotationStep]}
	switch a.rotation {
	case "", buytrackerv1alpha1.CARotationReissuingMembers, buytrackerv1alpha1.CARotationDroppingOldCA:
	case buytrackerv1alpha1.CARotationPublishingBundle:
		if _, err := tls.X509KeyPair(s.Data[keyNextCACert], s.Data[keyNextCAKey]); err != nil {
			return nil, fmt.Errorf("secret %s: the next CA: %w: %w", s.Name, err, errBrokenChild)
		}
	default:
		return nil, fmt.Errorf("secret %s: unknown rotation step %q: %w", s.Name, a.rotation, errBrokenChild)
	}
	return a, nil
}

// startCARotation makes a new CA and publishes it next to the old one; the
// old one keeps issuing until every member trusts both.
func (r *BuyTrackerReconciler) startCARotation(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, ca *authority, now time.Time) (*authority, error) {
	certPEM, keyPEM, err := pki.NewCA(caCommonName(n), now.Add(caValidity))
	if err != nil {
		return nil, err
	}
	requested := bt.Annotations[buytrackerv1alpha1.AnnotationRotateCA]
	why := fmt.Sprintf("%s=%q", buytrackerv1alpha1.AnnotationRotateCA, requested)
	if requested == ca.secret.Annotations[annotationCARotation] {
		why = "the CA expires on " + ca.cert.NotAfter.UTC().Format(time.RFC3339)
	}
	s, err := r.patchCA(ctx, bt, n, ca.secret, func(s *corev1.Secret) {
		s.Data[keyNextCACert], s.Data[keyNextCAKey] = certPEM, keyPEM
		s.Data[keyCABundle] = concatPEM(ca.certPEM, certPEM)
		s.Annotations[annotationCARotation] = requested
		s.Annotations[annotationCARotationStep] = buytrackerv1alpha1.CARotationPublishingBundle
	})
	if err != nil {
		return nil, err
	}
	r.event(bt, corev1.EventTypeNormal, "CARotationStarted", "RotateCA", "Rotating the CA (%s): publishing the new CA next to the old one to every member", why)
	return parseAuthority(s)
}

// advanceCARotation takes the next step once every member is in step with
// the current one.
func (r *BuyTrackerReconciler) advanceCARotation(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, ca *authority) (*authority, error) {
	var (
		mutate       func(*corev1.Secret)
		reason, note string
	)
	switch ca.rotation {
	case buytrackerv1alpha1.CARotationPublishingBundle:
		mutate = func(s *corev1.Secret) {
			s.Data[keyTLSCert], s.Data[keyTLSKey] = s.Data[keyNextCACert], s.Data[keyNextCAKey]
			delete(s.Data, keyNextCACert)
			delete(s.Data, keyNextCAKey)
			s.Annotations[annotationCARotationStep] = buytrackerv1alpha1.CARotationReissuingMembers
		}
		reason, note = "CARotationReissuing", "Every member trusts the old and the new CA: re-issuing member certificates from the new CA"
	case buytrackerv1alpha1.CARotationReissuingMembers:
		mutate = func(s *corev1.Secret) {
			s.Data[keyCABundle] = s.Data[keyTLSCert]
			s.Annotations[annotationCARotationStep] = buytrackerv1alpha1.CARotationDroppingOldCA
		}
		reason, note = "CARotationDroppingOldCA", "Every member has a certificate of the new CA: dropping the old CA from the bundle"
	default:
		mutate = func(s *corev1.Secret) { delete(s.Annotations, annotationCARotationStep) }
		reason, note = "CARotated", "The CA is rotated: every member trusts and holds a certificate of the new CA only"
	}
	s, err := r.patchCA(ctx, bt, n, ca.secret, mutate)
	if err != nil {
		return nil, err
	}
	r.event(bt, corev1.EventTypeNormal, reason, "RotateCA", "%s", note)
	return parseAuthority(s)
}

// patchCA applies the CA Secret as current holds it, changed by mutate,
// over current's resourceVersion (a rotation step never writes over a
// change it has not read); it returns the Secret as written.
func (r *BuyTrackerReconciler) patchCA(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, current *corev1.Secret, mutate func(*corev1.Secret)) (*corev1.Secret, error) {
	desired := desiredCASecret(bt, n, pick(current.Data, caSecretKeys...), pick(current.Annotations, caSecretAnnotations...))
	mutate(desired)
	s := current.DeepCopy()
	if _, err := applyOverRead(ctx, r.Client, s, true, desired, appliedSecret, true); err != nil {
		return nil, err
	}
	return s, nil
}

// memberSecrets returns, by pod name, the member Secrets that exist and nil
// for the members that need one: every ordinal the cluster has or is about
// to have. Secrets of members that went stay, and are kept current, so
// that a pod coming back finds a valid certificate. A Secret the BuyTracker
// owns without controlling it was written by cert-manager while it issued
// (spec.peerTLS.issuerRef); the operator takes it back.
func (r *BuyTrackerReconciler) memberSecrets(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, initial int32) (map[string]*corev1.Secret, error) {
	out, err := r.listMemberSecrets(ctx, bt, n, func(s *corev1.Secret) bool { return ownedBy(s, bt) })
	if err != nil {
		return nil, err
	}
	for _, pod := range wantedMembers(bt, initial, n) {
		if _, ok := out[pod]; !ok {
			out[pod] = nil
		}
	}
	return out, nil
}

// listMemberSecrets returns, by pod name, the Secrets named <pod>-tls of the
// cluster's members (from the cache, by the cluster's labels) that keep
// says to keep.
func (r *BuyTrackerReconciler) listMemberSecrets(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, keep func(*corev1.Secret) bool) (map[string]*corev1.Secret, error) {
	var list corev1.SecretList
	if err := r.List(ctx, &list, client.InNamespace(bt.Namespace), client.MatchingLabels(n.selectorLabels())); err != nil {
		return nil, fmt.Errorf("list member secrets: %w", err)
	}
	out := map[string]*corev1.Secret{}
	for i := range list.Items {
		s := &list.Items[i]
		if pod, ok := strings.CutSuffix(s.Name, "-tls"); ok {
			if o, ok := n.ordinal(pod); ok && o < maxMembers && keep(s) {
				out[pod] = s
			}
		}
	}
	return out, nil
}

// ownedBy reports whether obj has an owner reference to bt, controller or
// not.
func ownedBy(obj metav1.Object, bt *buytrackerv1alpha1.BuyTracker) bool {
	return slices.ContainsFunc(obj.GetOwnerReferences(), func(o metav1.OwnerReference) bool { return o.UID == bt.UID })
}

// reconcileMemberSecret makes the member's Secret trust the CA's bundle
// and hold a certificate of the issuing CA for the member's names that is
// not in its last third of life; it reports whether it wrote.
func (r *BuyTrackerReconciler) reconcileMemberSecret(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, ca *authority, pod string, existing *corev1.Secret, now time.Time) (*corev1.Secret, bool, error) {
	names := memberDNSNames(n, pod)
	if existing != nil && metav1.IsControlledBy(existing, bt) && bytes.Equal(existing.Data[keyCABundle], ca.bundle) && memberCertCurrent(existing.Data, ca.cert, pod, names, now) {
		// Applied as it is: its data and the time it was written stay;
		// the labels and the owner come back if someone removed them, and
		// an older operator's Secret is adopted.
		s := existing.DeepCopy()
		desired := desiredMemberSecret(bt, n, pod, pick(existing.Data, keyCABundle, keyTLSCert, keyTLSKey), pick(existing.Annotations, annotationWrittenAt))
		if _, err := applyOverRead(ctx, r.Client, s, true, desired, appliedSecret, true); err != nil {
			return nil, false, err
		}
		return s, false, nil
	}
	data := map[string][]byte{keyCABundle: ca.bundle}
	if existing != nil && memberCertCurrent(existing.Data, ca.cert, pod, names, now) {
		data[keyTLSCert], data[keyTLSKey] = existing.Data[keyTLSCert], existing.Data[keyTLSKey]
	} else {
		// A member certificate never outlives its CA (the CA rotates in
		// its last third of life, long before that matters).
		certPEM, keyPEM, err := pki.IssueMember(ca.certPEM, ca.keyPEM, pod, names, nil, minTime(now.Add(memberValidity), ca.cert.NotAfter))
		if err != nil {
			return nil, false, err
		}
		data[keyTLSCert], data[keyTLSKey] = certPEM, keyPEM
	}
	// Controlled by the BuyTracker again if cert-manager wrote it last.
	desired := desiredMemberSecret(bt, n, pod, data, map[string]string{annotationWrittenAt: now.UTC().Format(time.RFC3339)})
	s := &corev1.Secret{}
	if existing == nil {
		if err := r.confirmAbsent(ctx, client.ObjectKeyFromObject(desired), &corev1.Secret{}); err != nil {
			return nil, false, err
		}
	} else {
		s = existing.DeepCopy()
	}
	if _, err := applyOverRead(ctx, r.Client, s, existing != nil, desired, appliedSecret, true); err != nil {
		return nil, false, err
	}
	return s, true, nil
}

func desiredMemberSecret(bt *buytrackerv1alpha1.BuyTracker, n clusterNames, pod string, data map[string][]byte, annotations map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: childMeta(bt, n, n.memberSecret(pod)), Type: corev1.SecretTypeTLS, Data: data}
	s.Annotations = annotations
	return s
}

// memberCertCurrent reports whether data holds a certificate and matching
// key, issued by issuer for exactly the member's id and names, with more
// than a third of its life left.
func memberCertCurrent(data map[string][]byte, issuer *x509.Certificate, id string, names []string, now time.Time) bool {
	if _, err := tls.X509KeyPair(data[keyTLSCert], data[keyTLSKey]); err != nil {
		return false
	}
	cert, err := parseCertPEM(data[keyTLSCert])
	if err != nil || cert.CheckSignatureFrom(issuer) != nil || now.Before(cert.NotBefore) || inLastThird(cert, now) {
		return false
	}
	have := slices.Sorted(slices.Values(cert.DNSNames))
	return cert.Subject.CommonName == id && slices.Equal(have, names)
}

// inLastThird reports whether less than a third of cert's life remains.
func inLastThird(cert *x509.Certificate, now time.Time) bool {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Sub(now) < life/3
}

// memberDNSNames are the names a member is reached at, sorted; the first
// label of each is its server ID.
func memberDNSNames(n clusterNames, pod string) []string {
	short := fmt.Sprintf("%s.%s.%s.svc", pod, n.peerService(), n.namespace)
	return slices.Sorted(slices.Values([]string{short, n.host(pod)}))
}

func caCommonName(n clusterNames) string {
	return fmt.Sprintf("buytracker %s/%s CA", n.namespace, n.name)
}

func tlsStatus(n clusterNames, ca *authority, membersNotAfter time.Time) *buytrackerv1alpha1.TLSStatus {
	st := &buytrackerv1alpha1.TLSStatus{
		CASecret:       n.caSecret(),
		CANotAfter:     &metav1.Time{Time: ca.cert.NotAfter.UTC()},
		CARotation:     ca.rotation,
		LastCARotation: ca.secret.Annotations[annotationCARotation],
	}
	if !membersNotAfter.IsZero() {
		st.MembersNotAfter = &metav1.Time{Time: membersNotAfter.UTC()}
	}
	return st
}

// parseCertPEM returns the first certificate of a PEM bundle.
func parseCertPEM(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

func concatPEM(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, bytes.TrimRight(p, "\n")...)
		out = append(out, '\n')
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

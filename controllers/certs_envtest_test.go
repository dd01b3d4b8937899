package controllers

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/pki"
)

// memberTLS reads the member Secrets of promo-0 .. promo-(count-1).
func (f *directFixture) memberTLS(t *testing.T, count int) map[string]*corev1.Secret {
	t.Helper()
	out := map[string]*corev1.Secret{}
	for i := range count {
		var s corev1.Secret
		f.get(t, fmt.Sprintf("promo-%d-tls", i), &s)
		out[fmt.Sprintf("promo-%d", i)] = &s
	}
	return out
}

// verifyMember checks a member's certificate against a PEM bundle, for the
// name the member is dialled at, as a server and as a client.
func verifyMember(n clusterNames, pod string, s *corev1.Secret, bundle []byte) error {
	cert, err := parseCertPEM(s.Data[keyTLSCert])
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return fmt.Errorf("no certificate in the bundle")
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: n.host(pod), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return fmt.Errorf("%s as %v: %w", pod, usage, err)
		}
	}
	if !pki.NamesID(cert, pod) {
		return fmt.Errorf("%s: certificate does not name its ID", pod)
	}
	return nil
}

// membersTrustEachOther fails the test unless every member accepts every
// other member's certificate with its own bundle, and the operator accepts
// them all with the CA Secret's: the invariant a rotation must keep at
// every step.
func (f *directFixture) membersTrustEachOther(t *testing.T, count int, when string) {
	t.Helper()
	var ca corev1.Secret
	f.get(t, "promo-ca", &ca)
	members := f.memberTLS(t, count)
	n := namesOf(f.buyTracker(t), "cluster.local")
	for a, sa := range members {
		for b, sb := range members {
			if err := verifyMember(n, b, sb, sa.Data[keyCABundle]); err != nil {
				t.Fatalf("%s: %s does not accept %s: %v", when, a, b, err)
			}
		}
		if err := verifyMember(n, a, sa, ca.Data[keyCABundle]); err != nil {
			t.Fatalf("%s: the operator does not accept %s: %v", when, a, err)
		}
	}
}

func TestReconcileIssuesACAAndACertificatePerMember(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	f.pass(t)
	var ca corev1.Secret
	f.get(t, "promo-ca", &ca)
	expect(t, "CA secret type", ca.Type, corev1.SecretTypeTLS)
	caCert, err := parseCertPEM(ca.Data[keyTLSCert])
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "bundle is the CA", ca.Data[keyCABundle], ca.Data[keyTLSCert])
	if !caCert.IsCA || time.Until(caCert.NotAfter) < caValidity-time.Hour {
		t.Errorf("CA: IsCA %v, valid until %v, want about 10 years", caCert.IsCA, caCert.NotAfter)
	}
	members := f.memberTLS(t, 3)
	for pod, s := range members {
		expect(t, pod+" type", s.Type, corev1.SecretTypeTLS)
		expect(t, pod+" ca.crt", s.Data[keyCABundle], ca.Data[keyCABundle])
		cert, err := parseCertPEM(s.Data[keyTLSCert])
		if err != nil {
			t.Fatal(err)
		}
		expect(t, pod+" common name", cert.Subject.CommonName, pod)
		expect(t, pod+" DNS names", slices.Sorted(slices.Values(cert.DNSNames)), memberDNSNames(namesOf(f.buyTracker(t), "cluster.local"), pod))
		if life := time.Until(cert.NotAfter); life < memberValidity-time.Hour || life > memberValidity {
			t.Errorf("%s valid for %v, want 90 days", pod, life)
		}
	}
	f.membersTrustEachOther(t, 3, "after creation")
	var none corev1.Secret
	if err := f.s.client.Get(context.Background(), client.ObjectKey{Namespace: f.key.Namespace, Name: "promo-3-tls"}, &none); err == nil {
		t.Error("a certificate for promo-3, which a three-member cluster does not have")
	}
	bt := f.buyTracker(t)
	if bt.Status.TLS == nil || bt.Status.TLS.CASecret != "promo-ca" || bt.Status.TLS.CANotAfter == nil || bt.Status.TLS.MembersNotAfter == nil {
		t.Fatalf("status.tls %+v", bt.Status.TLS)
	}
	sts := f.children(t)["StatefulSet/promo"].(*appsv1.StatefulSet)
	if args := sts.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--cluster-id="+string(bt.UID)) {
		t.Errorf("no --cluster-id=%s in %v", bt.UID, args)
	}

	// Growing to five issues two more before the StatefulSet grows.
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Replicas = ptr.To[int32](5) })
	f.pass(t)
	f.membersTrustEachOther(t, 5, "after scaling to five")
}

func TestReconcileRenewsMemberCertificatesInTheirLastThird(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	f.pass(t)
	before := f.memberTLS(t, 3)
	// Two months later less than a third of the 90 days is left.
	f.r.now = func() time.Time { return time.Now().Add(61 * 24 * time.Hour) }
	f.pass(t)
	after := f.memberTLS(t, 3)
	for pod := range before {
		if bytes.Equal(before[pod].Data[keyTLSCert], after[pod].Data[keyTLSCert]) || bytes.Equal(before[pod].Data[keyTLSKey], after[pod].Data[keyTLSKey]) {
			t.Errorf("%s: certificate or key not renewed", pod)
		}
		expect(t, pod+" bundle kept", after[pod].Data[keyCABundle], before[pod].Data[keyCABundle])
	}
	f.membersTrustEachOther(t, 3, "after renewal")
	if !slices.ContainsFunc(drain(f.r.Recorder.(*events.FakeRecorder)), func(e string) bool { return strings.Contains(e, "CertificatesUpdated") }) {
		t.Error("no CertificatesUpdated event")
	}
	// Renewed certificates are not renewed again.
	f.pass(t)
	expect(t, "second renewal", f.memberTLS(t, 3)["promo-0"].ResourceVersion, after["promo-0"].ResourceVersion)
}

func TestCARotationPublishesTheNewCABeforeUsingItAndDropsTheOldOneLast(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	f.pass(t)
	var ca corev1.Secret
	f.get(t, "promo-ca", &ca)
	oldCA := ca.Data[keyTLSCert]
	recorder := f.r.Recorder.(*events.FakeRecorder)
	drain(recorder)

	// With the pods given an hour to see a change, the rotation publishes
	// the bundle and then waits.
	f.r.CertPropagation = time.Hour
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) {
		bt.Annotations[buytrackerv1alpha1.AnnotationRotateCA] = "2026-11"
	})
	for range 2 {
		f.pass(t)
		f.membersTrustEachOther(t, 3, "publishing")
		f.get(t, "promo-ca", &ca)
		expect(t, "issuing CA while publishing", ca.Data[keyTLSCert], oldCA)
		for pod, s := range f.memberTLS(t, 3) {
			if n := bytes.Count(s.Data[keyCABundle], []byte("BEGIN CERTIFICATE")); n != 2 {
				t.Fatalf("%s trusts %d CAs, want the old and the new", pod, n)
			}
			if err := verifyMember(namesOf(f.buyTracker(t), "cluster.local"), pod, s, oldCA); err != nil {
				t.Fatalf("%s re-issued before every member trusts the new CA: %v", pod, err)
			}
		}
		st := f.buyTracker(t).Status.TLS
		expect(t, "status step", st.CARotation, buytrackerv1alpha1.CARotationPublishingBundle)
		expect(t, "status rotation", st.LastCARotation, "2026-11")
	}

	// Once the pods had the time, each pass takes one step.
	f.r.CertPropagation = 0
	steps := []string{}
	for range 4 {
		f.pass(t)
		f.membersTrustEachOther(t, 3, fmt.Sprintf("after step %d", len(steps)))
		steps = append(steps, f.buyTracker(t).Status.TLS.CARotation)
	}
	expect(t, "steps", steps, []string{
		buytrackerv1alpha1.CARotationReissuingMembers, buytrackerv1alpha1.CARotationDroppingOldCA, "", "",
	})
	f.get(t, "promo-ca", &ca)
	if bytes.Equal(ca.Data[keyTLSCert], oldCA) || !bytes.Equal(ca.Data[keyCABundle], ca.Data[keyTLSCert]) {
		t.Fatal("the CA Secret does not hold the new CA alone")
	}
	if _, ok := ca.Data[keyNextCACert]; ok {
		t.Error("the next CA is still in the CA Secret")
	}
	for pod, s := range f.memberTLS(t, 3) {
		expect(t, pod+" bundle", s.Data[keyCABundle], ca.Data[keyTLSCert])
		if err := verifyMember(namesOf(f.buyTracker(t), "cluster.local"), pod, s, oldCA); err == nil {
			t.Errorf("%s still holds a certificate of the old CA", pod)
		}
	}
	var reasons []string
	for _, e := range drain(recorder) {
		for _, r := range []string{"CARotationStarted", "CARotationReissuing", "CARotationDroppingOldCA", "CARotated"} {
			if strings.Contains(e, " "+r+" ") {
				reasons = append(reasons, r)
			}
		}
	}
	expect(t, "rotation events", reasons, []string{"CARotationStarted", "CARotationReissuing", "CARotationDroppingOldCA", "CARotated"})

	// The same annotation value asks for nothing more.
	f.pass(t)
	var again corev1.Secret
	f.get(t, "promo-ca", &again)
	expect(t, "CA after another pass", again.ResourceVersion, ca.ResourceVersion)
}

func TestABrokenCASecretIsReportedNotReplaced(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	f.pass(t)
	var ca corev1.Secret
	f.get(t, "promo-ca", &ca)
	ca.Data[keyTLSKey] = []byte("lost")
	if err := f.s.client.Update(context.Background(), &ca); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: f.key}); err == nil || !strings.Contains(err.Error(), "promo-ca") {
		t.Fatalf("reconcile: %v, want an error naming promo-ca", err)
	}
	var after corev1.Secret
	f.get(t, "promo-ca", &after)
	expect(t, "CA key", string(after.Data[keyTLSKey]), "lost")
}

// secretsNotYetCached lists no Secrets, the way the manager's cache does
// for a moment after the controller created them.
type secretsNotYetCached struct{ client.Client }

func (c secretsNotYetCached) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*corev1.SecretList); ok {
		return nil
	}
	return c.Client.List(ctx, list, opts...)
}

func TestAMemberSecretTheCacheHasNotSeenYetIsLookedAtAgainNotReported(t *testing.T) {
	f := newDirectFixture(t, buytrackerv1alpha1.BuyTrackerSpec{})
	f.pass(t)
	before := f.memberTLS(t, 3)
	lagging := *f.r
	lagging.Client = secretsNotYetCached{f.s.client}
	result, err := lagging.Reconcile(context.Background(), ctrl.Request{NamespacedName: f.key})
	if err != nil {
		t.Fatalf("reconcile with a lagging cache: %v", err)
	}
	expect(t, "requeue", result.RequeueAfter, lagging.intervals().Progress)
	for pod, s := range f.memberTLS(t, 3) {
		expect(t, pod+" unchanged", s.ResourceVersion, before[pod].ResourceVersion)
	}
	if c := f.buyTracker(t).Status.Conditions; len(c) > 0 {
		for _, cond := range c {
			if cond.Reason == buytrackerv1alpha1.ReasonReconcileError {
				t.Errorf("condition %s reports an error: %s", cond.Type, cond.Message)
			}
		}
	}
}

package controllers

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/pki"
)

func issuerSpec(name string) buytrackerv1alpha1.BuyTrackerSpec {
	return buytrackerv1alpha1.BuyTrackerSpec{PeerTLS: &buytrackerv1alpha1.PeerTLSSpec{
		IssuerRef: &buytrackerv1alpha1.IssuerReference{Name: name}}}
}

// certificate reads the cert-manager Certificate name, or returns nil.
func (f *directFixture) certificate(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	c := newCertificate()
	err := f.s.client.Get(context.Background(), client.ObjectKey{Namespace: f.key.Namespace, Name: name}, c)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get certificate %s: %v", name, err)
	}
	return c
}

// exists reports whether the object name of obj's type exists.
func (f *directFixture) exists(t *testing.T, name string, obj client.Object) bool {
	t.Helper()
	err := f.s.client.Get(context.Background(), client.ObjectKey{Namespace: f.key.Namespace, Name: name}, obj)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("get %T %s: %v", obj, name, err)
	}
	return err == nil
}

// issueAsCertManager does what cert-manager does for a Certificate: writes
// its Secret (a certificate of ca for the Certificate's commonName and
// dnsNames, the labels of its secretTemplate) and sets it Ready.
func (f *directFixture) issueAsCertManager(t *testing.T, name string, caCert, caKey []byte) {
	t.Helper()
	ctx := context.Background()
	c := f.certificate(t, name)
	spec := c.Object["spec"].(map[string]any)
	var dns []string
	for _, d := range spec["dnsNames"].([]any) {
		dns = append(dns, d.(string))
	}
	certPEM, keyPEM, err := pki.IssueMember(caCert, caKey, spec["commonName"].(string), dns, nil, time.Now().Add(memberValidity))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	tmpl, _, _ := unstructured.NestedStringMap(c.Object, "spec", "secretTemplate", "labels")
	for k, v := range tmpl {
		labels[k] = v
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: spec["secretName"].(string), Namespace: f.key.Namespace, Labels: labels,
			Annotations: map[string]string{"cert-manager.io/certificate-name": name}},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{keyCABundle: caCert, keyTLSCert: certPEM, keyTLSKey: keyPEM},
	}
	if err := f.s.client.Create(ctx, s); err != nil {
		t.Fatalf("create secret %s: %v", s.Name, err)
	}
	f.setCertificateReady(t, name, metav1.ConditionTrue, "Ready", "Certificate is up to date and has not expired")
}

func (f *directFixture) setCertificateReady(t *testing.T, name string, status metav1.ConditionStatus, reason, message string) {
	t.Helper()
	c := f.certificate(t, name)
	patch := client.MergeFrom(c.DeepCopy())
	c.Object["status"] = map[string]any{
		"conditions": []any{map[string]any{"type": "Ready", "status": string(status), "reason": reason, "message": message,
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}},
		"notAfter": time.Now().Add(memberValidity).UTC().Format(time.RFC3339),
	}
	if err := f.s.client.Status().Patch(context.Background(), c, patch); err != nil {
		t.Fatalf("set the status of certificate %s: %v", name, err)
	}
}

func TestAnIssuerRefGetsOneCertManagerCertificatePerMemberAndNoCA(t *testing.T) {
	f := newDirectFixture(t, issuerSpec("promo-issuer"))
	f.pass(t)
	bt := f.buyTracker(t)
	n := namesOf(bt, "cluster.local")
	expect(t, "defaulted issuer kind", bt.Spec.PeerTLS.IssuerRef.Kind, "Issuer")
	expect(t, "defaulted issuer group", bt.Spec.PeerTLS.IssuerRef.Group, "cert-manager.io")

	for i := range 3 {
		pod := fmt.Sprintf("promo-%d", i)
		c := f.certificate(t, pod+"-tls")
		if c == nil {
			t.Fatalf("no Certificate %s-tls", pod)
		}
		refs := c.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != bt.UID || !ptr.Deref(refs[0].Controller, false) {
			t.Errorf("%s: owner references %+v, want the BuyTracker as controller", c.GetName(), refs)
		}
		spec := c.Object["spec"].(map[string]any)
		expect(t, pod+" secretName", spec["secretName"], any(pod+"-tls"))
		expect(t, pod+" commonName", spec["commonName"], any(pod))
		expect(t, pod+" dnsNames", spec["dnsNames"], any([]any{
			pod + ".promo-peers." + f.key.Namespace + ".svc", pod + ".promo-peers." + f.key.Namespace + ".svc.cluster.local"}))
		expect(t, pod+" usages", spec["usages"], any([]any{"digital signature", "server auth", "client auth"}))
		expect(t, pod+" issuerRef", spec["issuerRef"], any(map[string]any{"name": "promo-issuer", "kind": "Issuer", "group": "cert-manager.io"}))
		expect(t, pod+" duration", spec["duration"], any("2160h0m0s"))
		expect(t, pod+" renewBefore", spec["renewBefore"], any("720h0m0s"))
		expect(t, pod+" private key", spec["privateKey"], any(map[string]any{"algorithm": "ECDSA", "size": int64(256), "encoding": "PKCS8", "rotationPolicy": "Always"}))
		expect(t, pod+" secret labels", spec["secretTemplate"].(map[string]any)["labels"].(map[string]any)[labelInstance], any("promo"))
	}
	if f.certificate(t, "promo-3-tls") != nil {
		t.Error("a Certificate for promo-3, which a three-member cluster does not have")
	}
	// Applied by the operator: another writer's change of a field it sets
	// is undone at the next pass.
	c := f.certificate(t, "promo-0-tls")
	expect(t, "Certificate appliers", appliers(c), []string{fieldManager})
	edit := client.MergeFrom(c.DeepCopy())
	if err := unstructured.SetNestedField(c.Object, "promo-0-other", "spec", "commonName"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.client.Patch(context.Background(), c, edit, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatalf("edit certificate: %v", err)
	}
	f.pass(t)
	expect(t, "commonName after another writer's edit", f.certificate(t, "promo-0-tls").Object["spec"].(map[string]any)["commonName"], any("promo-0"))
	if f.exists(t, "promo-ca", &corev1.Secret{}) {
		t.Error("the operator made its own CA Secret promo-ca although cert-manager issues")
	}
	// Nothing issued yet: the StatefulSet waits, so no pod starts without
	// its certificate.
	if f.exists(t, "promo", &appsv1.StatefulSet{}) {
		t.Error("StatefulSet created before cert-manager issued the members' certificates")
	}
	if c := f.condition(t, buytrackerv1alpha1.ConditionCertificatesReady); c.Status != metav1.ConditionFalse || c.Reason != buytrackerv1alpha1.ReasonCertManagerNotReady ||
		!strings.Contains(c.Message, "promo-0 (not issued yet)") {
		t.Errorf("CertificatesReady before issuing: %+v", c)
	}
	if c := f.condition(t, buytrackerv1alpha1.ConditionProgressing); c.Reason != buytrackerv1alpha1.ReasonWaitingForCertificates {
		t.Errorf("Progressing before issuing: %+v", c)
	}

	caCert, caKey, err := pki.NewCA("test issuer CA", time.Now().Add(caValidity))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		f.issueAsCertManager(t, fmt.Sprintf("promo-%d-tls", i), caCert, caKey)
	}
	f.pass(t)
	f.pass(t)
	if c := f.condition(t, buytrackerv1alpha1.ConditionCertificatesReady); c.Status != metav1.ConditionTrue || c.Reason != buytrackerv1alpha1.ReasonCertManagerReady {
		t.Errorf("CertificatesReady once issued: %+v", c)
	}
	st := f.buyTracker(t).Status.TLS
	if st == nil || st.Issuer != "Issuer/promo-issuer" || st.CASecret != "" || st.MembersNotAfter == nil {
		t.Errorf("status.tls %+v, want issuer Issuer/promo-issuer, no CA Secret, membersNotAfter", st)
	}
	if f.exists(t, "promo-ca", &corev1.Secret{}) {
		t.Error("the operator made its own CA Secret promo-ca although cert-manager issues")
	}
	// The pods mount the Secrets cert-manager writes, as they mount the
	// operator's own.
	var set appsv1.StatefulSet
	f.get(t, "promo", &set)
	projected := set.Spec.Template.Spec.Volumes[0].Projected
	var mounted []string
	for _, src := range projected.Sources {
		if src.Secret != nil {
			mounted = append(mounted, src.Secret.Name)
		}
	}
	for i := range 3 {
		if !slices.Contains(mounted, fmt.Sprintf("promo-%d-tls", i)) {
			t.Errorf("StatefulSet does not mount promo-%d-tls: %v", i, mounted)
		}
	}
	if args := set.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--tls-dir=/etc/buytracker/tls/$(POD_NAME)") {
		t.Errorf("no --tls-dir in %v", args)
	}
	// cert-manager's Secrets go with the BuyTracker: an owner reference
	// that is not a controller one (cert-manager may make its Certificate
	// the controller).
	for i := range 3 {
		var s corev1.Secret
		f.get(t, fmt.Sprintf("promo-%d-tls", i), &s)
		refs := s.OwnerReferences
		if len(refs) != 1 || refs[0].UID != bt.UID || ptr.Deref(refs[0].Controller, false) {
			t.Errorf("secret %s owner references %+v, want one non-controller reference to the BuyTracker", s.Name, refs)
		}
		if err := verifyMember(n, fmt.Sprintf("promo-%d", i), &s, caCert); err != nil {
			t.Error(err)
		}
	}

	// A Certificate cert-manager cannot issue is reported by name, with
	// cert-manager's reason.
	f.setCertificateReady(t, "promo-1-tls", metav1.ConditionFalse, "Issuing", "Issuing certificate as Secret was previously issued by a different issuer")
	f.pass(t)
	if c := f.condition(t, buytrackerv1alpha1.ConditionCertificatesReady); c.Status != metav1.ConditionFalse || c.Reason != buytrackerv1alpha1.ReasonCertManagerNotReady ||
		!strings.Contains(c.Message, "promo-1 (Issuing: Issuing certificate as Secret was previously issued by a different issuer)") ||
		strings.Contains(c.Message, "promo-0") {
		t.Errorf("CertificatesReady with promo-1 not Ready: %+v", c)
	}
	recorder := f.r.Recorder.(*events.FakeRecorder)
	if !drainContains(recorder, "CertificatesNotReady") {
		t.Error("no CertificatesNotReady Event")
	}

	// Scaling up asks for the new members' Certificates before the
	// StatefulSet grows.
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.Replicas = ptr.To[int32](5) })
	f.pass(t)
	for _, name := range []string{"promo-3-tls", "promo-4-tls"} {
		if f.certificate(t, name) == nil {
			t.Errorf("no Certificate %s after scaling to 5", name)
		}
	}
	if f.exists(t, "promo-ca", &corev1.Secret{}) {
		t.Error("promo-ca appeared")
	}
}

// drainContains reads every Event recorded so far and reports whether one
// has reason.
func drainContains(r *events.FakeRecorder, reason string) bool {
	found := false
	for {
		select {
		case e := <-r.Events:
			found = found || strings.Contains(e, " "+reason+" ")
		default:
			return found
		}
	}
}

func TestUnsettingTheIssuerRefHandsTheCertificatesBackToTheOperator(t *testing.T) {
	f := newDirectFixture(t, issuerSpec("promo-issuer"))
	f.pass(t)
	caCert, caKey, err := pki.NewCA("test issuer CA", time.Now().Add(caValidity))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		f.issueAsCertManager(t, fmt.Sprintf("promo-%d-tls", i), caCert, caKey)
	}
	f.pass(t)
	f.update(t, func(bt *buytrackerv1alpha1.BuyTracker) { bt.Spec.PeerTLS = nil })
	f.pass(t)
	for i := range 3 {
		if f.certificate(t, fmt.Sprintf("promo-%d-tls", i)) != nil {
			t.Errorf("Certificate promo-%d-tls still there: cert-manager would keep writing the Secret", i)
		}
	}
	if c := f.condition(t, buytrackerv1alpha1.ConditionCertificatesReady); c.Status != metav1.ConditionTrue || c.Reason != buytrackerv1alpha1.ReasonIssuedByOperator {
		t.Errorf("CertificatesReady after unsetting the issuer: %+v", c)
	}
	// The operator's CA issues again, into the same Secrets, which it
	// controls again.
	bt := f.buyTracker(t)
	for pod, s := range f.memberTLS(t, 3) {
		if !metav1.IsControlledBy(s, bt) {
			t.Errorf("%s: owner references %+v, want the BuyTracker as controller", s.Name, s.OwnerReferences)
		}
		if err := verifyMember(namesOf(bt, "cluster.local"), pod, s, caCert); err == nil {
			t.Errorf("%s still holds the issuer's certificate", s.Name)
		}
	}
	f.membersTrustEachOther(t, 3, "after taking the certificates back")
}

// TestWithoutCertManagerAnIssuerRefIsReportedAndNothingIsCreated runs its
// own API server, which does not serve cert-manager's Certificates.
func TestWithoutCertManagerAnIssuerRefIsReportedAndNothingIsCreated(t *testing.T) {
	s := needAPIServer(t)
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: envtestAssets(),
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start a second API server: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop the second API server: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: s.scheme})
	if err != nil {
		t.Fatal(err)
	}
	own := &apiServer{cfg: cfg, scheme: s.scheme, client: c}
	f := newDirectFixtureOn(t, own, own.newNamespace(t), issuerSpec("promo-issuer"))
	f.pass(t)
	c1 := f.condition(t, buytrackerv1alpha1.ConditionCertificatesReady)
	if c1.Status != metav1.ConditionFalse || c1.Reason != buytrackerv1alpha1.ReasonCertManagerMissing || !strings.Contains(c1.Message, "Issuer/promo-issuer") {
		t.Errorf("CertificatesReady without cert-manager: %+v", c1)
	}
	if c := f.condition(t, buytrackerv1alpha1.ConditionProgressing); c.Reason != buytrackerv1alpha1.ReasonWaitingForCertificates {
		t.Errorf("Progressing without cert-manager: %+v", c)
	}
	for name, obj := range map[string]client.Object{
		"promo": &appsv1.StatefulSet{}, "promo-peers": &corev1.Service{}, "promo-ca": &corev1.Secret{}, "promo-0-tls": &corev1.Secret{},
	} {
		if f.exists(t, name, obj) {
			t.Errorf("%T %s created without cert-manager", obj, name)
		}
	}
	if !drainContains(f.r.Recorder.(*events.FakeRecorder), "CertManagerMissing") {
		t.Error("no CertManagerMissing Event")
	}

	// Once cert-manager is installed, the next pass asks it for the
	// certificates.
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{filepath.Join("testdata", "crds")}, ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("install cert-manager's Certificate CRD: %v", err)
	}
	eventually(t, 20*time.Second, "Certificates once cert-manager's CRD is installed", func() error {
		if _, err := f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: f.key}); err != nil {
			return err
		}
		if f.certificate(t, "promo-0-tls") == nil {
			return fmt.Errorf("no Certificate promo-0-tls; CertificatesReady %+v", f.condition(t, buytrackerv1alpha1.ConditionCertificatesReady))
		}
		return nil
	})
	if c := f.condition(t, buytrackerv1alpha1.ConditionCertificatesReady); c.Reason != buytrackerv1alpha1.ReasonCertManagerNotReady {
		t.Errorf("CertificatesReady once cert-manager is there: %+v", c)
	}
}

package cli

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/cmd/kubectl-buytracker/internal/podconn"
)

// What the operator names and labels (controllers/names.go, secret.go,
// certs.go and statefulset.go); the plugin reads these, never writes them.
const (
	labelName       = "app.kubernetes.io/name"
	labelInstance   = "app.kubernetes.io/instance"
	adminTokenKey   = "token"
	caBundleKey     = "ca.crt"
	nodeContainer   = "node"
	buyTrackersRes  = "buytrackers"
	backupsResource = "buytrackerbackups"
)

func adminSecretName(bt string) string   { return bt + "-admin-token" }
func caSecretName(bt string) string      { return bt + "-ca" }
func memberSecretName(pod string) string { return pod + "-tls" }

// kube is the API server as the plugin uses it, with the user's own
// credentials and RBAC.
type kube struct {
	config     *rest.Config
	core       kubernetes.Interface
	buytracker rest.Interface
	namespace  string
	// dialer reaches the members' admin port; port-forward unless a test
	// gave another.
	dialer podconn.Dialer
	closer func() error
}

func newKube(config *rest.Config, namespace string, dialer podconn.Dialer) (*kube, error) {
	core, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, fmt.Errorf("client of the core API: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := buytrackerv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	btConfig := rest.CopyConfig(config)
	btConfig.GroupVersion = &buytrackerv1alpha1.GroupVersion
	btConfig.APIPath = "/apis"
	btConfig.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if btConfig.UserAgent == "" {
		btConfig.UserAgent = "kubectl-buytracker"
	}
	bt, err := rest.RESTClientFor(btConfig)
	if err != nil {
		return nil, fmt.Errorf("client of %s: %w", buytrackerv1alpha1.GroupVersion, err)
	}
	k := &kube{config: config, core: core, buytracker: bt, namespace: namespace, dialer: dialer, closer: func() error { return nil }}
	if k.dialer == nil {
		pf := podconn.NewPortForward(config, core.CoreV1().RESTClient(), namespace, podconn.AdminPort)
		k.dialer, k.closer = pf, pf.Close
	}
	return k, nil
}

func (k *kube) Close() error { return k.closer() }

func (k *kube) getBuyTracker(ctx context.Context, name string) (*buytrackerv1alpha1.BuyTracker, error) {
	var bt buytrackerv1alpha1.BuyTracker
	err := k.buytracker.Get().Namespace(k.namespace).Resource(buyTrackersRes).Name(name).Do(ctx).Into(&bt)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("BuyTracker %s/%s not found", k.namespace, name)
	case err != nil:
		return nil, fmt.Errorf("get BuyTracker %s/%s: %w", k.namespace, name, err)
	}
	return &bt, nil
}

// memberPods lists the BuyTracker's pods by the labels the operator gives
// them.
func (k *kube) memberPods(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker) ([]corev1.Pod, error) {
	sel := labels.SelectorFromSet(labels.Set{labelName: "buytracker", labelInstance: bt.Name})
	list, err := k.core.CoreV1().Pods(bt.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list the pods of BuyTracker %s/%s: %w", bt.Namespace, bt.Name, err)
	}
	return list.Items, nil
}

// credentials reads the admin token and the CA bundle the members'
// certificates chain to: the CA Secret's ca.crt when the operator issues,
// every member Secret's ca.crt when cert-manager does (the operator trusts
// the same). They stay in memory.
func (k *kube) credentials(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, pods []corev1.Pod) (podconn.Credentials, error) {
	token, err := k.secretKey(ctx, adminSecretName(bt.Name), adminTokenKey)
	if err != nil {
		return podconn.Credentials{}, err
	}
	var bundle []byte
	if bt.Spec.PeerTLS != nil && bt.Spec.PeerTLS.IssuerRef != nil {
		var errs []error
		for _, p := range pods {
			ca, err := k.secretKey(ctx, memberSecretName(p.Name), caBundleKey)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			bundle = append(append(bundle, ca...), '\n')
		}
		if len(bundle) == 0 {
			return podconn.Credentials{}, fmt.Errorf("no member Secret's %s could be read: %w", caBundleKey, errors.Join(errs...))
		}
	} else if bundle, err = k.secretKey(ctx, caSecretName(bt.Name), caBundleKey); err != nil {
		return podconn.Credentials{}, err
	}
	return podconn.Credentials{Token: string(token), CABundle: bundle}, nil
}

func (k *kube) secretKey(ctx context.Context, name, key string) ([]byte, error) {
	s, err := k.core.CoreV1().Secrets(k.namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("read Secret %s/%s: forbidden; the admin API needs `get` on it (docs/plugin.md, RBAC): %w", k.namespace, name, err)
	case err != nil:
		return nil, fmt.Errorf("read Secret %s/%s: %w", k.namespace, name, err)
	}
	v := s.Data[key]
	if len(v) == 0 {
		return nil, fmt.Errorf("secret %s/%s has no %q key", k.namespace, name, key)
	}
	return v, nil
}

// adminClients returns the factory of the members' admin API clients.
func (k *kube) adminClients(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, pods []corev1.Pod) (*podconn.AdminClients, error) {
	creds, err := k.credentials(ctx, bt, pods)
	if err != nil {
		return nil, err
	}
	return podconn.NewAdminClients(k.dialer, creds)
}

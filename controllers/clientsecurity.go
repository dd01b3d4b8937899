package controllers

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// Where the node finds the client port's certificate and the client tokens,
// inside the credentials volume. The Secrets are the user's: the operator
// only names them in the pod template (it never reads them), and the node
// re-reads both files when the kubelet refreshes them.
const (
	clientTLSSubdir = "client-tls"
	clientTLSDir    = credentialsDir + "/" + clientTLSSubdir
	// clientAuthKey is the key of the client-auth Secret, and the file's
	// name: the node's --client-auth-file format.
	clientAuthKey  = "client-auth.json"
	clientAuthPath = credentialsDir + "/" + clientAuthKey
)

// clientCredentialSources are the projected-volume sources of the client
// port's certificate and the client tokens; none when the spec sets neither,
// so that the pod template of a BuyTracker without them does not change.
// They are not optional: a pod whose Secret is missing does not start (the
// kubelet says why in the pod's Events), which is better than a node that
// silently serves plain HTTP or refuses every token.
func clientCredentialSources(bt *buytrackerv1alpha1.BuyTracker) []corev1.VolumeProjection {
	var sources []corev1.VolumeProjection
	if bt.Spec.TLS != nil {
		sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: bt.Spec.TLS.SecretName},
			Items: []corev1.KeyToPath{
				{Key: keyTLSCert, Path: clientTLSSubdir + "/" + keyTLSCert},
				{Key: keyTLSKey, Path: clientTLSSubdir + "/" + keyTLSKey},
			},
		}})
	}
	if bt.Spec.ClientAuth != nil {
		sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: bt.Spec.ClientAuth.SecretName},
			Items:                []corev1.KeyToPath{{Key: clientAuthKey, Path: clientAuthKey}},
		}})
	}
	return sources
}

// clientSecurityArgs are the node flags of spec.tls, spec.clientAuth and
// spec.trustedProxies; none when they are unset.
func clientSecurityArgs(bt *buytrackerv1alpha1.BuyTracker) []string {
	var args []string
	if bt.Spec.TLS != nil {
		args = append(args, "--client-tls-dir="+clientTLSDir)
	}
	if bt.Spec.ClientAuth != nil {
		args = append(args, "--client-auth-file="+clientAuthPath)
		if bt.Spec.ClientAuth.RequireEverywhere {
			args = append(args, "--client-auth-required")
		}
	}
	if len(bt.Spec.TrustedProxies) > 0 {
		proxies := make([]string, len(bt.Spec.TrustedProxies))
		for i, p := range bt.Spec.TrustedProxies {
			proxies[i] = string(p)
		}
		args = append(args, "--trusted-proxies="+strings.Join(proxies, ","))
	}
	return args
}

// clientScheme is the scheme of the node's client port.
func clientScheme(bt *buytrackerv1alpha1.BuyTracker) string {
	if bt.Spec.TLS != nil {
		return "https"
	}
	return "http"
}

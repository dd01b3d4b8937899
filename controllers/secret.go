package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// adminTokenKey is the Secret key holding the admin API's bearer token; the
// pods see it as the file adminTokenPath.
const (
	adminTokenKey  = "token"
	credentialsDir = "/etc/buytracker"
	adminTokenFile = "admin-token"
	adminTokenPath = credentialsDir + "/" + adminTokenFile
)

// newAdminToken returns 32 random bytes, hex encoded.
func newAdminToken() ([]byte, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate admin token: %w", err)
	}
	return []byte(hex.EncodeToString(raw)), nil
}

func desiredAdminSecret(bt *buytrackerv1alpha1.BuyTracker, n clusterNames, token []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: childMeta(bt, n, n.adminSecret()),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{adminTokenKey: token},
	}
}

// reconcileAdminSecret returns the admin token, creating the Secret with a
// fresh token the first time. An existing token is never replaced: every
// running node has read it.
func (r *BuyTrackerReconciler) reconcileAdminSecret(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames) (string, error) {
	var s corev1.Secret
	err := r.Get(ctx, types.NamespacedName{Namespace: bt.Namespace, Name: n.adminSecret()}, &s)
	switch {
	case err == nil:
		token := s.Data[adminTokenKey]
		if len(token) == 0 {
			return "", fmt.Errorf("secret %s has no %q key: %w", n.adminSecret(), adminTokenKey, errBrokenChild)
		}
		return string(token), nil
	case !apierrors.IsNotFound(err):
		return "", fmt.Errorf("get secret %s: %w", n.adminSecret(), err)
	}
	token, err := newAdminToken()
	if err != nil {
		return "", err
	}
	if err := r.Create(ctx, desiredAdminSecret(bt, n, token)); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// The cache had not seen it yet: keep the stored token.
			return "", fmt.Errorf("secret %s appeared meanwhile: %w", n.adminSecret(), err)
		}
		return "", fmt.Errorf("create secret %s: %w", n.adminSecret(), err)
	}
	r.event(bt, corev1.EventTypeNormal, "AdminTokenCreated", "Create", "Generated the admin token into Secret %s", n.adminSecret())
	return string(token), nil
}

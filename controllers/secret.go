package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

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

// appliedSecret is the part of a Secret the operator applied.
func appliedSecret(s *corev1.Secret, manager string) (any, error) {
	return corev1ac.ExtractSecret(s, manager)
}

// reconcileAdminSecret returns the admin token, creating the Secret with a
// fresh token the first time. An existing token is never replaced: every
// running node has read it; the apply carries the token the Secret holds.
// A Secret of that name the BuyTracker does not control (made by someone
// else) is only read.
func (r *BuyTrackerReconciler) reconcileAdminSecret(ctx context.Context, bt *buytrackerv1alpha1.BuyTracker, n clusterNames) (string, error) {
	var s corev1.Secret
	key := types.NamespacedName{Namespace: bt.Namespace, Name: n.adminSecret()}
	err := r.Get(ctx, key, &s)
	switch {
	case err == nil:
		token := s.Data[adminTokenKey]
		if len(token) == 0 {
			return "", fmt.Errorf("secret %s has no %q key: %w", n.adminSecret(), adminTokenKey, errBrokenChild)
		}
		if metav1.IsControlledBy(&s, bt) {
			if _, err := applyOverRead(ctx, r.Client, &s, true, desiredAdminSecret(bt, n, token), appliedSecret, true); err != nil {
				return "", err
			}
		}
		return string(token), nil
	case !apierrors.IsNotFound(err):
		return "", fmt.Errorf("get secret %s: %w", n.adminSecret(), err)
	}
	if err := r.confirmAbsent(ctx, key, &corev1.Secret{}); err != nil {
		return "", err
	}
	token, err := newAdminToken()
	if err != nil {
		return "", err
	}
	if _, err := applyOverRead(ctx, r.Client, &s, false, desiredAdminSecret(bt, n, token), appliedSecret, false); err != nil {
		return "", err
	}
	r.event(bt, corev1.EventTypeNormal, "AdminTokenCreated", "Create", "Generated the admin token into Secret %s", n.adminSecret())
	return string(token), nil
}

// confirmAbsent asks the API server whether an object the cache does not
// have really is absent. A Secret whose data the operator generates (a
// token, a key) is applied as new only then: an apply is not a create, and
// would write fresh data over the one that every member already uses if
// the cache merely had not seen it yet. When it exists, the error is an
// AlreadyExists one: the pass looks again soon.
func (r *BuyTrackerReconciler) confirmAbsent(ctx context.Context, key client.ObjectKey, obj client.Object) error {
	err := r.APIReader.Get(ctx, key, obj)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("get %T %s: %w", obj, key, err)
	}
	gvk, _ := apiutil.GVKForObject(obj, r.Scheme())
	exists := apierrors.NewAlreadyExists(schema.GroupResource{Group: gvk.Group, Resource: strings.ToLower(gvk.Kind) + "s"}, key.Name)
	return fmt.Errorf("%T %s exists, but the cache has not seen it yet: %w", obj, key, exists)
}

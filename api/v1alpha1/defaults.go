package v1alpha1

// Defaults the API server applies through the CRD; the helpers below apply
// the same ones to objects that never went through it (unit tests).
const (
	DefaultReplicas           int32 = 3
	DefaultStorage                  = "1Gi"
	DefaultClientPort         int32 = 8080
	DefaultMaxClockSkew             = "1s"
	DefaultIdempotencyMaxKeys int64 = 1_000_000
)

// DesiredReplicas is spec.replicas, or its default when unset.
func (bt *BuyTracker) DesiredReplicas() int32 {
	if bt.Spec.Replicas == nil {
		return DefaultReplicas
	}
	return *bt.Spec.Replicas
}

// ReplacesHaltedMembers is spec.integrity.replaceHaltedMembers, true when
// unset.
func (bt *BuyTracker) ReplacesHaltedMembers() bool {
	return bt.Spec.Integrity.ReplaceHaltedMembers == nil || *bt.Spec.Integrity.ReplaceHaltedMembers
}

// Defaults of spec.peerTLS.issuerRef.
const (
	DefaultIssuerKind  = "Issuer"
	DefaultIssuerGroup = "cert-manager.io"
)

// PeerIssuer is spec.peerTLS.issuerRef with its defaults filled in, or nil
// when the operator issues the members' certificates itself.
func (bt *BuyTracker) PeerIssuer() *IssuerReference {
	if bt.Spec.PeerTLS == nil || bt.Spec.PeerTLS.IssuerRef == nil {
		return nil
	}
	ref := *bt.Spec.PeerTLS.IssuerRef
	if ref.Kind == "" {
		ref.Kind = DefaultIssuerKind
	}
	if ref.Group == "" {
		ref.Group = DefaultIssuerGroup
	}
	return &ref
}

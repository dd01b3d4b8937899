package v1alpha1

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BuyTrackerSpec is the cluster a user asks for.
type BuyTrackerSpec struct {
	// replicas is the number of Raft voters: 1, 3, 5, 7 or 9. An odd size
	// is the only useful one: an even cluster tolerates no more failures
	// than the odd size below it.
	// +kubebuilder:validation:Enum=1;3;5;7;9
	// +kubebuilder:default=3
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// image is the node image; empty means the operator's --node-image.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// imagePullPolicy of the node container.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// resources of the node container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// storage holds each node's Raft log, snapshots and records.
	// +kubebuilder:default={}
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

	// service is the client Service in front of every node.
	// +kubebuilder:default={}
	// +optional
	Service ServiceSpec `json:"service,omitempty"`

	// raft tunes the consensus timers and the clock bound; unset timers
	// keep the node's defaults.
	// +kubebuilder:default={}
	// +optional
	Raft *RaftSpec `json:"raft,omitempty"`

	// idempotency bounds the table of Idempotency-Keys every node keeps.
	// +kubebuilder:default={}
	// +optional
	Idempotency IdempotencySpec `json:"idempotency,omitempty"`

	// tls serves the client port over HTTPS with a certificate the user
	// provides; unset, the client port speaks plain HTTP.
	// +optional
	TLS *ClientTLSSpec `json:"tls,omitempty"`

	// peerTLS says who issues the certificates of the members' mutual TLS
	// (the Raft port and every member-to-member call; spec.tls is the
	// client port's). Unset, or without issuerRef: the operator runs a CA
	// of its own per BuyTracker.
	// +optional
	PeerTLS *PeerTLSSpec `json:"peerTLS,omitempty"`

	// clientAuth names the Secret of client tokens and their roles; unset,
	// POST /buy and GET /stats are open and GET /buys is refused.
	// +optional
	ClientAuth *ClientAuthSpec `json:"clientAuth,omitempty"`

	// integrity says what the operator does with a member whose ledger
	// halted (a corrupt log entry, or a state a majority of the voters
	// disagree with).
	// +kubebuilder:default={}
	// +optional
	Integrity IntegritySpec `json:"integrity,omitempty"`

	// trustedProxies are the addresses and CIDR prefixes of proxies whose
	// X-Forwarded-For names the client; from anyone else the header is
	// ignored and a purchase keeps the connection's address.
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +optional
	TrustedProxies []ProxyAddress `json:"trustedProxies,omitempty"`

	// affinity of the pods. When unset, pods prefer (but do not require)
	// different nodes, so a one-node cluster still runs every replica.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// tolerations of the pods.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// nodeSelector of the pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// topologySpreadConstraints of the pods.
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// backup says where backups of this BuyTracker go and when they are
	// taken on a schedule (BuyTrackerBackup resources take one now).
	// +optional
	Backup *BackupSpec `json:"backup,omitempty"`

	// bootstrap says how the cluster starts; set only at creation.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="bootstrap is immutable"
	// +optional
	Bootstrap *BootstrapSpec `json:"bootstrap,omitempty"`
}

// StorageSpec describes the volume each node gets.
type StorageSpec struct {
	// size of each node's volume; a positive quantity such as 1Gi.
	// +kubebuilder:default="1Gi"
	// +kubebuilder:validation:XValidation:rule="isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))",message="storage.size must be a positive quantity such as 1Gi or 500Mi"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName of the volumes; empty means the cluster's default
	// class. A change applies to volumes created afterwards.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`

	// whenDeleted says what happens to the volumes when the BuyTracker is
	// deleted: Retain (the default) keeps them and their data, Delete
	// removes them.
	// +kubebuilder:validation:Enum=Retain;Delete
	// +kubebuilder:default=Retain
	// +optional
	WhenDeleted appsv1.PersistentVolumeClaimRetentionPolicyType `json:"whenDeleted,omitempty"`
}

// ServiceSpec describes the client Service.
type ServiceSpec struct {
	// type of the client Service.
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +kubebuilder:default=ClusterIP
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`

	// port the client Service listens on; it forwards to the nodes' client
	// port 8080.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=8080
	// +optional
	Port int32 `json:"port,omitempty"`
}

// RaftSpec tunes hashicorp/raft on every node.
// +kubebuilder:validation:XValidation:rule="!has(self.heartbeatTimeout) || !has(self.electionTimeout) || duration(self.electionTimeout) >= duration(self.heartbeatTimeout)",message="raft.electionTimeout must not be shorter than raft.heartbeatTimeout"
type RaftSpec struct {
	// heartbeatTimeout is how long a follower waits for the leader before
	// it starts an election, as a duration such as 1s.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5ms')",message="raft.heartbeatTimeout must be at least 5ms"
	// +optional
	HeartbeatTimeout *metav1.Duration `json:"heartbeatTimeout,omitempty"`

	// electionTimeout is how long a candidate waits for votes, as a
	// duration such as 1s.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5ms')",message="raft.electionTimeout must be at least 5ms"
	// +optional
	ElectionTimeout *metav1.Duration `json:"electionTimeout,omitempty"`

	// snapshotThreshold is how many log entries a node writes between
	// snapshots.
	// +kubebuilder:validation:Minimum=1
	// +optional
	SnapshotThreshold *int64 `json:"snapshotThreshold,omitempty"`

	// maxClockSkew is how far the leader's clock may differ from a majority
	// of the voters' before it stops stamping purchases (they answer 503)
	// and hands leadership over; from 10ms to 1h.
	// +kubebuilder:default="1s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10ms') && duration(self) <= duration('1h')",message="raft.maxClockSkew must be from 10ms to 1h"
	// +optional
	MaxClockSkew *metav1.Duration `json:"maxClockSkew,omitempty"`
}

// IdempotencySpec bounds the Idempotency-Keys each node remembers.
type IdempotencySpec struct {
	// maxKeys is how many Idempotency-Keys each node remembers at most; past
	// it the oldest is forgotten before its 24 hours, and a retry that comes
	// after its key was forgotten is recorded again. About 190 MiB of memory
	// per million 36-character keys. Every member must use the same value: a
	// change rolls the pods, and while the roll is half done members may
	// disagree on the retry of a key one of them already forgot.
	// +kubebuilder:default=1000000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000000
	// +optional
	MaxKeys *int64 `json:"maxKeys,omitempty"`
}

// IntegritySpec says what happens to a member that is out of service for
// good.
type IntegritySpec struct {
	// replaceHaltedMembers: a member whose ledger halted is replaced the way
	// a lost volume is (its volume claim and pod are deleted; it rejoins
	// empty and copies the log from the leader), one at a time and only
	// while the others keep a quorum. False leaves the member and its volume
	// as they are, for inspection; it is still reported (condition Degraded,
	// reason MemberOutOfService).
	// +kubebuilder:default=true
	// +optional
	ReplaceHaltedMembers *bool `json:"replaceHaltedMembers,omitempty"`
}

// ClientTLSSpec names the certificate of the client port.
type ClientTLSSpec struct {
	// secretName is a Secret in the BuyTracker's namespace in cert-manager's
	// layout (tls.crt, tls.key; ca.crt is not read). Nodes re-read it when it
	// changes, without a restart. A pod does not start until it exists.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	SecretName string `json:"secretName"`
}

// PeerTLSSpec says who issues the members' certificates.
type PeerTLSSpec struct {
	// issuerRef names a cert-manager Issuer (in the BuyTracker's namespace)
	// or ClusterIssuer: the operator then creates one cert-manager
	// Certificate per member, whose Secret <pod>-tls the pods mount, and
	// issues, renews and rotates nothing itself. The issuer must fill
	// ca.crt (a CA Issuer does) with the CA that signs every member. Unset:
	// the operator issues from its own CA (Secret <name>-ca).
	// +optional
	IssuerRef *IssuerReference `json:"issuerRef,omitempty"`
}

// IssuerReference names a cert-manager issuer.
type IssuerReference struct {
	// name of the Issuer or ClusterIssuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// kind is Issuer (in the BuyTracker's namespace) or ClusterIssuer.
	// +kubebuilder:validation:Enum=Issuer;ClusterIssuer
	// +kubebuilder:default=Issuer
	// +optional
	Kind string `json:"kind,omitempty"`
	// group of the issuer: cert-manager.io, cert-manager's own issuers.
	// +kubebuilder:validation:Enum=cert-manager.io
	// +kubebuilder:default=cert-manager.io
	// +optional
	Group string `json:"group,omitempty"`
}

// ClientAuthSpec names the client tokens.
type ClientAuthSpec struct {
	// secretName is a Secret in the BuyTracker's namespace whose key
	// client-auth.json holds the tokens, their roles (write, read, export)
	// and require_auth_everywhere, in the node's format (docs/node.md,
	// "Client authentication"). Nodes re-read it when it changes, without a
	// restart. A pod does not start until it exists.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	SecretName string `json:"secretName"`

	// requireEverywhere asks for a token with the route's role on POST /buy
	// (write) and GET /stats (read) too, whatever client-auth.json's
	// require_auth_everywhere says: either one turns it on (the node's
	// --client-auth-required). Default false, so that the prototype's
	// clients keep working. Changing it rolls the pods one at a time.
	// +optional
	RequireEverywhere bool `json:"requireEverywhere,omitempty"`
}

// ProxyAddress is an IP address (10.0.0.7) or a CIDR prefix (10.0.0.0/8).
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="isIP(self) || isCIDR(self)",message="a trusted proxy must be an IP address or a CIDR prefix such as 10.0.0.0/8"
type ProxyAddress string

// BuyTrackerStatus is what the operator observed.
type BuyTrackerStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// replicas is the number of pods the StatefulSet runs.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// readyReplicas is the number of pods that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// selector is the pods' label selector, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`

	// leader is the member that leads the Raft cluster, empty when none.
	// +optional
	Leader string `json:"leader,omitempty"`

	// members is the Raft configuration as the leader reports it.
	// +listType=map
	// +listMapKey=name
	// +optional
	Members []MemberStatus `json:"members,omitempty"`

	// tls reports the cluster's certificates.
	// +optional
	TLS *TLSStatus `json:"tls,omitempty"`

	// restore reports the backup the cluster started from
	// (spec.bootstrap.fromBackup).
	// +optional
	Restore *RestoreStatus `json:"restore,omitempty"`

	// lastBackup is the newest completed BuyTrackerBackup of this
	// BuyTracker.
	// +optional
	LastBackup *LastBackupStatus `json:"lastBackup,omitempty"`

	// quorumRecovery reports the last recovery from a lost quorum
	// (annotation buytracker.dev/recover-quorum).
	// +optional
	QuorumRecovery *QuorumRecoveryStatus `json:"quorumRecovery,omitempty"`

	// conditions are Available, Progressing, Degraded, DiskPressure,
	// ClockSkew, VolumeExpansion, CertificatesReady, Restored,
	// BackupSchedule and QuorumLost.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// TLSStatus reports the certificates of the members' mutual TLS.
type TLSStatus struct {
	// issuer is the cert-manager issuer of the member certificates, as
	// Kind/name (Issuer/promo-ca, ClusterIssuer/corp); empty when the
	// operator issues them from its own CA.
	// +optional
	Issuer string `json:"issuer,omitempty"`
	// caSecret names the Secret holding the cluster's CA (only when the
	// operator issues).
	// +optional
	CASecret string `json:"caSecret,omitempty"`
	// caNotAfter is when the CA that issues member certificates expires.
	// +optional
	CANotAfter *metav1.Time `json:"caNotAfter,omitempty"`
	// membersNotAfter is when the first member certificate expires; the
	// operator (or cert-manager) renews each once less than a third of its
	// life remains.
	// +optional
	MembersNotAfter *metav1.Time `json:"membersNotAfter,omitempty"`
	// caRotation is the step of a CA rotation under way (PublishingBundle,
	// ReissuingMembers, DroppingOldCA), empty when none is.
	// +optional
	CARotation string `json:"caRotation,omitempty"`
	// lastCARotation is the value of the buytracker.dev/rotate-ca
	// annotation the last rotation was started for.
	// +optional
	LastCARotation string `json:"lastCARotation,omitempty"`
}

// MemberStatus is one member of the Raft configuration.
type MemberStatus struct {
	// name is the member's server ID, which is its pod's name.
	Name string `json:"name"`
	// address is the member's Raft address.
	// +optional
	Address string `json:"address,omitempty"`
	// suffrage is Voter or Nonvoter; a new member is a Nonvoter until it
	// has caught up.
	// +optional
	Suffrage Suffrage `json:"suffrage,omitempty"`
	// ready is true when the member's pod is ready and the member is
	// caught up with the leader.
	// +optional
	Ready bool `json:"ready,omitempty"`
	// incarnation is the identity of the member's data dir, new each time
	// the member starts on an empty one: a change means the member came
	// back without its data and rejoined (condition Degraded, reason
	// MemberReplaced). Kept while the member does not answer.
	// +optional
	Incarnation string `json:"incarnation,omitempty"`
	// joining is true while the member is a new incarnation that may not
	// vote yet: it catches up as a non-voter and is promoted.
	// +optional
	Joining bool `json:"joining,omitempty"`
	// diskFreeBytes is the free space of the member's data volume as it
	// last reported it, rounded down to a whole MiB (so that the status is
	// not rewritten for every few purchases); absent while the member does
	// not answer.
	// +optional
	DiskFreeBytes *int64 `json:"diskFreeBytes,omitempty"`
	// diskTotalBytes is the size of the member's data volume's file system,
	// rounded down to a whole MiB; absent while the member does not answer.
	// +optional
	DiskTotalBytes *int64 `json:"diskTotalBytes,omitempty"`
	// diskPressure is true while the member's free space is below its
	// watermark (--min-free-disk): it answers new purchases 507.
	// +optional
	DiskPressure bool `json:"diskPressure,omitempty"`
	// outOfService is set while the member answers no reads and no writes
	// because its state may be wrong: Halted is for good (the operator
	// replaces it unless spec.integrity.replaceHaltedMembers is false),
	// Diverged may clear by itself. Kept while the member does not answer.
	// +optional
	OutOfService *OutOfService `json:"outOfService,omitempty"`
}

// OutOfService says why a member answers nothing.
type OutOfService struct {
	// reason is Halted (its ledger stopped on a corrupt log entry, or a
	// majority of the voters disagreed with its state digest) or Diverged
	// (its digest differs from a member's and no majority decided yet).
	// +kubebuilder:validation:Enum=Halted;Diverged
	Reason OutOfServiceReason `json:"reason"`
	// message is the node's own account (halted or diverged in its
	// GET /status), cut to 1024 bytes.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// OutOfServiceReason says whether a member is out of service for good.
type OutOfServiceReason string

// Out-of-service reasons.
const (
	OutOfServiceHalted   OutOfServiceReason = "Halted"
	OutOfServiceDiverged OutOfServiceReason = "Diverged"
)

// Suffrage says whether a member votes.
// +kubebuilder:validation:Enum=Voter;Nonvoter
type Suffrage string

// Suffrage values.
const (
	SuffrageVoter    Suffrage = "Voter"
	SuffrageNonvoter Suffrage = "Nonvoter"
)

// BuyTracker is a replicated purchase tracker: a StatefulSet of Raft nodes
// and the Services, PodDisruptionBudget and Secret around it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=bt
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=".spec.replicas"
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=".status.readyReplicas"
// +kubebuilder:printcolumn:name="Leader",type=string,JSONPath=".status.leader"
// +kubebuilder:printcolumn:name="Available",type=string,JSONPath=".status.conditions[?(@.type==\"Available\")].status"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type BuyTracker struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Spec BuyTrackerSpec `json:"spec,omitempty"`
	// +optional
	Status BuyTrackerStatus `json:"status,omitempty"`
}

// BuyTrackerList is a list of BuyTrackers.
// +kubebuilder:object:root=true
type BuyTrackerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BuyTracker `json:"items"`
}

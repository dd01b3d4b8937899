package v1alpha1

// Condition types a BuyTracker reports.
const (
	// ConditionAvailable is True while the Raft cluster has a leader
	// backed by a quorum of healthy voters, i.e. it accepts purchases.
	ConditionAvailable = "Available"
	// ConditionProgressing is True while the operator scales the cluster
	// or rolls a change through its pods.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True while a member is down or lagging.
	ConditionDegraded = "Degraded"
)

// Reasons of the Available condition.
const (
	ReasonQuorum      = "QuorumAvailable"
	ReasonNoQuorum    = "QuorumLost"
	ReasonNoLeader    = "NoLeader"
	ReasonUnreachable = "AdminAPIUnreachable"
)

// Reasons of the Progressing condition.
const (
	ReasonWaitingForLeader = "WaitingForLeader"
	ReasonScalingUp        = "ScalingUp"
	ReasonScalingDown      = "ScalingDown"
	ReasonRollingUpdate    = "RollingUpdate"
	ReasonStorageChange    = "StorageChange"
	ReasonReconciled       = "Reconciled"
	ReasonReconcileError   = "ReconcileError"
)

// Reasons of the Degraded condition.
const (
	ReasonMembersHealthy    = "MembersHealthy"
	ReasonMemberUnavailable = "MemberUnavailable"
	ReasonMemberLagging     = "MemberLagging"
)

// AnnotationRotateCA on a BuyTracker asks for a new CA: set it to any value
// other than the last one and the operator rotates the cluster's CA, with
// an overlap, through the steps below.
const AnnotationRotateCA = "buytracker.dev/rotate-ca"

// Steps of a CA rotation, reported in status.tls.caRotation (empty when
// none is under way).
const (
	// CARotationPublishingBundle: every member is given the old and the
	// new CA to trust; certificates are still issued by the old one.
	CARotationPublishingBundle = "PublishingBundle"
	// CARotationReissuingMembers: member certificates are re-issued by the
	// new CA; both are still trusted.
	CARotationReissuingMembers = "ReissuingMembers"
	// CARotationDroppingOldCA: the old CA leaves every member's bundle.
	CARotationDroppingOldCA = "DroppingOldCA"
)

package v1alpha1

// Condition types a BuyTracker reports.
const (
	// ConditionAvailable is True while the Raft cluster has a leader
	// backed by a quorum of healthy voters, i.e. it accepts purchases.
	ConditionAvailable = "Available"
	// ConditionProgressing is True while the operator scales the cluster
	// or rolls a change through its pods.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True while a member is out of service, down or
	// lagging, or came back with an empty data dir and is rejoining.
	ConditionDegraded = "Degraded"
	// ConditionDiskPressure is True while a member's free disk space is
	// below its watermark: that member answers new purchases 507.
	ConditionDiskPressure = "DiskPressure"
	// ConditionClockSkew is True while the leader reports that its clock
	// disagrees with a majority of the voters: it stamps nothing (purchases
	// answer 503) and hands leadership over.
	ConditionClockSkew = "ClockSkew"
	// ConditionVolumeExpansion is True while member volumes are being grown
	// to spec.storage.size; False when they hold it, or when they cannot be
	// grown (the reason says why).
	ConditionVolumeExpansion = "VolumeExpansion"
	// ConditionCertificatesReady says who issues the members' certificates
	// (the reason) and, when cert-manager does, whether every member's
	// Certificate is Ready.
	ConditionCertificatesReady = "CertificatesReady"
	// ConditionRestored is reported by a BuyTracker started from a backup
	// (spec.bootstrap.fromBackup): True once the backup was read and
	// verified and the members were created from it; False while it is
	// being verified or when it cannot be (nothing else is created then).
	ConditionRestored = "Restored"
	// ConditionQuorumLost is True when a majority of the voters lost their
	// volumes for good (they came back empty): the cluster cannot commit
	// and waits for a person (annotation buytracker.dev/recover-quorum).
	// The message names each survivor with its last Raft index.
	ConditionQuorumLost = "QuorumLost"
)

// Reasons of the Restored condition.
const (
	ReasonVerifyingBackup  = "VerifyingBackup"
	ReasonBackupNotFound   = "BackupNotFound"
	ReasonBackupUnreadable = "BackupUnreadable"
	ReasonBackupInvalid    = "BackupInvalid"
	ReasonBackupRestored   = "BackupRestored"
	// ReasonRestoringBackup (False): the backup was verified and the
	// members are being created from it; True once the cluster is
	// Available.
	ReasonRestoringBackup = "RestoringBackup"
)

// ConditionBackupSchedule is reported by a BuyTracker whose
// spec.backup.schedule is set: True while the schedule parses, False
// (InvalidSchedule) when it does not; then no backup is taken on it and
// retention deletes nothing.
const ConditionBackupSchedule = "BackupSchedule"

// Reasons of the BackupSchedule condition.
const (
	ReasonScheduleValid   = "ScheduleValid"
	ReasonInvalidSchedule = "InvalidSchedule"
)

// Reasons of the QuorumLost condition.
const (
	ReasonQuorumIntact        = "QuorumIntact"
	ReasonMajorityVolumesLost = "MajorityVolumesLost"
	ReasonQuorumRecovering    = "Recovering"
	ReasonQuorumRecovered     = "Recovered"
)

// AnnotationRecoverQuorum on a BuyTracker whose QuorumLost condition is True
// recovers the cluster from its most advanced survivor: set it to any value
// other than the last one (status.quorumRecovery.request). It does nothing
// while the quorum is not lost. Purchases acknowledged after the survivor's
// last index are lost; docs/operator.md says how to check.
const AnnotationRecoverQuorum = "buytracker.dev/recover-quorum"

// Condition type and reasons of a BuyTrackerBackup.
const (
	BackupConditionCompleted = "Completed"
	ReasonBackupPending      = "Pending"
	ReasonBackupRunning      = "Running"
	ReasonBackupSucceeded    = "Succeeded"
	ReasonBackupJobFailed    = "JobFailed"
	ReasonBuyTrackerNotFound = "BuyTrackerNotFound"
)

// LabelScheduledBackup marks the BuyTrackerBackups a schedule created, with
// the BuyTracker's name as its value; retention deletes only those.
const LabelScheduledBackup = "buytracker.dev/scheduled-for"

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
	// ReasonReplacingMember: a halted member is being replaced by a new,
	// empty incarnation.
	ReasonReplacingMember = "ReplacingMember"
	// ReasonWaitingForCertificates: cert-manager has not issued the
	// certificate of every initial member yet, or its CRD is missing; the
	// StatefulSet waits.
	ReasonWaitingForCertificates = "WaitingForCertificates"
)

// Reasons of the Degraded condition.
const (
	ReasonMembersHealthy    = "MembersHealthy"
	ReasonMemberUnavailable = "MemberUnavailable"
	ReasonMemberLagging     = "MemberLagging"
	// ReasonMemberReplaced: a member came back with an empty data dir (a
	// new incarnation) and rejoins as a non-voter until it has caught up.
	ReasonMemberReplaced = "MemberReplaced"
	// ReasonMemberOutOfService: a member answers nothing because its state
	// may be wrong (its ledger halted, or its digest diverged).
	ReasonMemberOutOfService = "MemberOutOfService"
)

// Reasons of the DiskPressure condition.
const (
	ReasonLowDiskSpace        = "LowDiskSpace"
	ReasonDiskSpaceSufficient = "DiskSpaceSufficient"
)

// Reasons of the ClockSkew condition.
const (
	ReasonLeaderClockSkewed = "LeaderClockSkewed"
	// ReasonVoterClockOffset: the leader's clock is good, but it measured
	// a voter's clock off by more than the bound; should that voter lead,
	// it would stamp nothing.
	ReasonVoterClockOffset = "VoterClockOffset"
	ReasonClocksAgree      = "ClocksAgree"
)

// Reason of the DiskPressure and ClockSkew conditions (status Unknown) when
// the members they depend on did not answer GET /status.
const ReasonStatusUnknown = "StatusUnknown"

// Reasons of the VolumeExpansion condition.
const (
	ReasonVolumesExpanding    = "VolumesExpanding"
	ReasonVolumesAtSize       = "VolumesAtSize"
	ReasonExpansionNotAllowed = "ExpansionNotAllowed"
	ReasonExpansionFailed     = "ExpansionFailed"
)

// Reasons of the CertificatesReady condition.
const (
	// ReasonIssuedByOperator (True): the operator issues the members'
	// certificates from its own CA.
	ReasonIssuedByOperator = "IssuedByOperator"
	// ReasonCertManagerReady (True): cert-manager issues them
	// (spec.peerTLS.issuerRef) and every member's Certificate is Ready.
	ReasonCertManagerReady = "CertManagerReady"
	// ReasonCertManagerNotReady (False): a member's Certificate is not
	// Ready; the message names them with cert-manager's reason.
	ReasonCertManagerNotReady = "CertManagerNotReady"
	// ReasonCertManagerMissing (False): spec.peerTLS.issuerRef names an
	// issuer, but the API server does not serve cert-manager's
	// Certificates (cert-manager.io/v1): nothing is created until it does.
	ReasonCertManagerMissing = "CertManagerMissing"
)

// AnnotationRotateCA on a BuyTracker asks for a new CA: set it to any value
// other than the last one and the operator rotates the cluster's CA, with
// an overlap, through the steps below. It does nothing while cert-manager
// issues the certificates (spec.peerTLS.issuerRef): its issuer owns the CA.
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

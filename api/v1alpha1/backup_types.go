package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupSpec is a BuyTracker's spec.backup: where its backups go and when
// they are taken on a schedule.
type BackupSpec struct {
	// destination of the BuyTracker's backups; when unset, a volume the
	// operator creates (<name>-backups, 1Gi).
	// +optional
	Destination *BackupDestination `json:"destination,omitempty"`

	// schedule takes a backup on a cron schedule (five fields, minute
	// first, in UTC; "@hourly", "@daily" and the like are accepted). Each
	// one is a BuyTrackerBackup named <name>-<yyyymmddhhmmss>. Empty: no
	// scheduled backups.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Schedule string `json:"schedule,omitempty"`

	// retention of scheduled backups: the ones beyond it are deleted,
	// their stored data first. Backups created by hand are never deleted by
	// the operator.
	// +optional
	Retention *BackupRetention `json:"retention,omitempty"`
}

// BackupRetention bounds how many scheduled backups are kept and for how
// long. The newest completed backup is always kept.
type BackupRetention struct {
	// count keeps at most this many completed scheduled backups.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=7
	// +optional
	Count *int32 `json:"count,omitempty"`

	// maxAge deletes completed scheduled backups older than this (a
	// duration such as 168h); unset keeps them regardless of age.
	// +optional
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
}

// BackupDestination is where backups are stored: a PersistentVolumeClaim
// (the default, which needs nothing else) or an S3-compatible bucket.
// Exactly one is set.
// +kubebuilder:validation:XValidation:rule="has(self.volume) != has(self.s3)",message="set exactly one of volume and s3"
type BackupDestination struct {
	// volume stores backups as files on a PersistentVolumeClaim.
	// +optional
	Volume *BackupVolume `json:"volume,omitempty"`

	// s3 stores backups as objects in an S3-compatible bucket.
	// +optional
	S3 *S3Destination `json:"s3,omitempty"`
}

// BackupVolume is a PersistentVolumeClaim that holds backup files.
type BackupVolume struct {
	// claimName of an existing PersistentVolumeClaim; empty: the operator
	// creates <buytracker>-backups (ReadWriteOnce, with size and
	// storageClassName below), owned by no one, so it outlives the
	// BuyTracker.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ClaimName string `json:"claimName,omitempty"`

	// size of the claim the operator creates.
	// +kubebuilder:default="1Gi"
	// +kubebuilder:validation:XValidation:rule="isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))",message="size must be a positive quantity such as 1Gi"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName of the claim the operator creates.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// S3Destination is a bucket of any S3-compatible object store.
type S3Destination struct {
	// endpoint is the store's URL, http:// or https://, such as
	// https://s3.eu-west-1.amazonaws.com or http://seaweedfs.storage:8333.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^https?://[^/\s]+/?$`
	Endpoint string `json:"endpoint"`

	// bucket that holds the backups; it must exist.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	Bucket string `json:"bucket"`

	// prefix of every object key, such as "buytracker/"; the operator adds
	// <namespace>/<buytracker>/<backup>.btbackup.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Prefix string `json:"prefix,omitempty"`

	// region of the bucket; empty: us-east-1.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Region string `json:"region,omitempty"`

	// credentialsSecret names a Secret in the BuyTracker's namespace with
	// the keys accessKeyID and secretAccessKey.
	CredentialsSecret corev1.LocalObjectReference `json:"credentialsSecret"`

	// caSecret names a Secret with a ca.crt that signs an https
	// endpoint's certificate; empty: the system's roots.
	// +optional
	CASecret *corev1.LocalObjectReference `json:"caSecret,omitempty"`
}

// BackupLocation is where one backup is: a destination and the path of the
// backup file in it (a file in the volume, or an object key). Its manifest
// is beside it, at path + ".manifest.json".
type BackupLocation struct {
	BackupDestination `json:",inline"`

	// path of the backup in the destination: a relative file path in the
	// volume, or the object's key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Path string `json:"path"`
}

// BuyTrackerBackupSpec asks for one backup of a BuyTracker.
type BuyTrackerBackupSpec struct {
	// buyTracker is the name of the BuyTracker, in the same namespace, to
	// back up. Its spec.backup.destination says where the backup goes.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="buyTracker is immutable"
	BuyTracker string `json:"buyTracker"`
}

// BackupPhase is where a backup is in its life.
// +kubebuilder:validation:Enum=Pending;Running;Completed;Failed
type BackupPhase string

// Backup phases.
const (
	BackupPending   BackupPhase = "Pending"
	BackupRunning   BackupPhase = "Running"
	BackupCompleted BackupPhase = "Completed"
	BackupFailed    BackupPhase = "Failed"
)

// BuyTrackerBackupStatus is what the operator observed of a backup. Once
// Completed, it holds everything a restore needs, so the backup can be
// restored after its BuyTracker is gone.
type BuyTrackerBackupStatus struct {
	// phase is Pending, Running, Completed or Failed.
	// +optional
	Phase BackupPhase `json:"phase,omitempty"`

	// location of the backup (set when it runs).
	// +optional
	Location *BackupLocation `json:"location,omitempty"`

	// job is the Job that takes the backup.
	// +optional
	Job string `json:"job,omitempty"`

	// clusterID is the backed-up cluster's ID (its BuyTracker's UID).
	// +optional
	ClusterID string `json:"clusterID,omitempty"`

	// member that wrote the backup.
	// +optional
	Member string `json:"member,omitempty"`

	// index is the Raft index the backup's state is at.
	// +optional
	Index int64 `json:"index,omitempty"`

	// purchases the backup holds.
	// +optional
	Purchases int64 `json:"purchases,omitempty"`

	// checksum is the hex SHA-256 of the backup file (its trailer's).
	// +optional
	Checksum string `json:"checksum,omitempty"`

	// sizeBytes of the backup file.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`

	// backupTime is when the member captured the backup's state.
	// +optional
	BackupTime *metav1.Time `json:"backupTime,omitempty"`

	// startedAt and completedAt bound the backup's Job.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`

	// conditions: Completed.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BuyTrackerBackup is one backup of a BuyTracker: a consistent snapshot of
// its ledger at a known Raft index, stored at the BuyTracker's backup
// destination. It is owned by no one, so it outlives its BuyTracker.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=btb
// +kubebuilder:printcolumn:name="BuyTracker",type=string,JSONPath=".spec.buyTracker"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=".status.phase"
// +kubebuilder:printcolumn:name="Index",type=integer,JSONPath=".status.index"
// +kubebuilder:printcolumn:name="Purchases",type=integer,JSONPath=".status.purchases"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type BuyTrackerBackup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BuyTrackerBackupSpec `json:"spec"`
	// +optional
	Status BuyTrackerBackupStatus `json:"status,omitempty"`
}

// BuyTrackerBackupList is a list of BuyTrackerBackups.
// +kubebuilder:object:root=true
type BuyTrackerBackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BuyTrackerBackup `json:"items"`
}

// BootstrapSpec says how a new BuyTracker's cluster starts.
type BootstrapSpec struct {
	// fromBackup starts the new cluster from a backup: every initial
	// member begins at the backup's state and index.
	// +optional
	FromBackup *BackupSource `json:"fromBackup,omitempty"`
}

// BackupSource names a backup to restore: a completed BuyTrackerBackup in
// the same namespace, or a location directly. Exactly one is set.
// +kubebuilder:validation:XValidation:rule="has(self.name) != has(self.location)",message="set exactly one of name and location"
type BackupSource struct {
	// name of a completed BuyTrackerBackup in the BuyTracker's namespace.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Name string `json:"name,omitempty"`

	// location of a backup file (and its manifest beside it).
	// +optional
	Location *BackupLocation `json:"location,omitempty"`

	// checksum, when set, must equal the backup's hex SHA-256.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	// +optional
	Checksum string `json:"checksum,omitempty"`
}

// RestoreStatus reports the backup a BuyTracker started from.
type RestoreStatus struct {
	// source is the BuyTrackerBackup's name, or the location's path.
	// +optional
	Source string `json:"source,omitempty"`
	// index, purchases and checksum of the verified backup.
	// +optional
	Index int64 `json:"index,omitempty"`
	// +optional
	Purchases int64 `json:"purchases,omitempty"`
	// +optional
	Checksum string `json:"checksum,omitempty"`
	// job is the Job that read and verified the backup.
	// +optional
	Job string `json:"job,omitempty"`
	// location of the verified backup, resolved (a BuyTrackerBackup's
	// status.location): the members' init containers fetch it from there,
	// even after that BuyTrackerBackup is deleted.
	// +optional
	Location *BackupLocation `json:"location,omitempty"`
}

// LastBackupStatus reports a BuyTracker's newest completed backup.
type LastBackupStatus struct {
	// name of the BuyTrackerBackup.
	Name string `json:"name"`
	// completedAt is when it completed.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// index and purchases it holds.
	// +optional
	Index int64 `json:"index,omitempty"`
	// +optional
	Purchases int64 `json:"purchases,omitempty"`
}

// QuorumRecoveryStatus reports the last recovery from a lost quorum.
type QuorumRecoveryStatus struct {
	// request is the value of the buytracker.dev/recover-quorum annotation
	// this recovery answered; the same value never acts twice.
	Request string `json:"request"`
	// from is the survivor the cluster was recovered from.
	// +optional
	From string `json:"from,omitempty"`
	// index is the survivor's last Raft index: every purchase at or below
	// it is kept.
	// +optional
	Index int64 `json:"index,omitempty"`
	// phase: Recovering, Recovered or Refused.
	// +optional
	Phase string `json:"phase,omitempty"`
	// message says why it was refused, or what it waits for.
	// +optional
	Message string `json:"message,omitempty"`
	// time of the recovery.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

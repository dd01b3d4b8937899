package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// Where the backup agent's pods find their files (docs/operator.md,
// "Backups and restores").
const (
	// backupsMount is where a volume destination is mounted.
	backupsMount = "/backups"
	// s3CAMount holds the ca.crt of spec.backup.destination.s3.caSecret.
	s3CAMount = "/etc/buytracker-s3"
	// agentCredentialsMount holds the admin token and the CA bundle a
	// backup Job's agent calls the member with.
	agentCredentialsMount = "/etc/buytracker"
	agentTokenFile        = "admin-token"
	agentCAFile           = "admin-ca.crt"
	// restoreMount is the emptyDir the restore's init container fetches
	// the backup into, and restoreFile the file the node restores from.
	restoreMount = "/restore"
	restoreFile  = restoreMount + "/backup.btbackup"

	backupFileSuffix = ".btbackup"
	// defaultBackupVolumeSize is the size of <bt>-backups when the spec
	// names none.
	defaultBackupVolumeSize = "1Gi"
)

// Bounds of the agent's Jobs: a backup of a million purchases takes
// seconds, so an hour is a hang; one retry covers a pod lost to its node;
// a finished Job stays a day for `kubectl logs`, long after the operator
// has copied its result into the status.
const (
	agentActiveDeadline int64 = 3600
	agentBackoffLimit   int32 = 1
	agentTTLAfterFinish int32 = 86400
)

// Label keys of the backup objects. The pods of the agent's Jobs carry
// app.kubernetes.io/name=buytracker (so the operator's cache sees them)
// but not app.kubernetes.io/instance: they must never look like members.
const (
	labelBuyTracker = "buytracker.dev/buytracker"
	// labelJobName is the label the Job controller puts on a Job's pods.
	labelJobName = "batch.kubernetes.io/job-name"
)

// Components of the backup objects' labels.
const (
	componentBackup        = "backup"
	componentBackupVolume  = "backups"
	componentRestoreVerify = "restore-verify"
	componentBackupDelete  = "backup-delete"
)

// backupLabels go on the agent's Jobs, their pods and the backup volume.
func backupLabels(bt, component string) map[string]string {
	return map[string]string{
		labelName:       "buytracker",
		labelComponent:  component,
		labelManagedBy:  managedByValue,
		labelBuyTracker: bt,
	}
}

// boundedName is base+suffix, cut to a label value's 63 characters with
// a hash of base when longer (the Job controller labels the pods with the
// Job's name).
func boundedName(base, suffix string) string {
	const limit = 63
	if len(base)+len(suffix) <= limit {
		return base + suffix
	}
	sum := sha256.Sum256([]byte(base))
	hash := hex.EncodeToString(sum[:4])
	keep := strings.TrimRight(base[:limit-len(suffix)-len(hash)-1], "-.")
	return keep + "-" + hash + suffix
}

func backupJobName(backup string) string  { return boundedName(backup, "-backup") }
func deleteJobName(backup string) string  { return boundedName(backup, "-delete") }
func verifyJobName(bt string) string      { return boundedName(bt, "-restore-verify") }
func defaultBackupClaim(bt string) string { return bt + "-backups" }

// backupPath is a backup's file in its destination, relative to the volume
// or after the S3 prefix.
func backupPath(namespace, bt, backup string) string {
	return namespace + "/" + bt + "/" + backup + backupFileSuffix
}

// backupLocationFor is where a new backup of bt goes: spec.backup.destination,
// or the volume <bt>-backups; the claim name is resolved, so that the
// location still says where the backup is once the BuyTracker is gone.
func backupLocationFor(bt *buytrackerv1alpha1.BuyTracker, backup string) buytrackerv1alpha1.BackupLocation {
	dest := buytrackerv1alpha1.BackupDestination{Volume: &buytrackerv1alpha1.BackupVolume{}}
	if b := bt.Spec.Backup; b != nil && b.Destination != nil {
		dest = *b.Destination.DeepCopy()
	}
	path := backupPath(bt.Namespace, bt.Name, backup)
	if dest.S3 != nil {
		return buytrackerv1alpha1.BackupLocation{BackupDestination: dest, Path: dest.S3.Prefix + path}
	}
	if dest.Volume.ClaimName == "" {
		dest.Volume.ClaimName = defaultBackupClaim(bt.Name)
	}
	return buytrackerv1alpha1.BackupLocation{BackupDestination: dest, Path: path}
}

// storeAccess is what a pod needs to reach one backup location: the
// LOCATION argument of the agent, and the volumes, mounts and environment
// that make it reachable.
type storeAccess struct {
	location string
	volumes  []corev1.Volume
	mounts   []corev1.VolumeMount
	env      []corev1.EnvVar
}

// accessTo maps a location to the agent's LOCATION: a file under
// /backups on the claim, or s3://bucket/key with the endpoint, region and
// credentials in the environment (the credentials by secretKeyRef: the
// operator never reads them). A volume location without a claim name is
// <defaultClaimOf>-backups.
func accessTo(loc buytrackerv1alpha1.BackupLocation, readOnly bool, defaultClaimOf string) storeAccess {
	if s3 := loc.S3; s3 != nil {
		a := storeAccess{location: "s3://" + s3.Bucket + "/" + loc.Path}
		region := s3.Region
		if region == "" {
			region = "us-east-1"
		}
		secretKey := func(key string) *corev1.EnvVarSource {
			return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: s3.CredentialsSecret, Key: key}}
		}
		a.env = []corev1.EnvVar{
			{Name: "BUYTRACKER_S3_ENDPOINT", Value: strings.TrimSuffix(s3.Endpoint, "/")},
			{Name: "BUYTRACKER_S3_REGION", Value: region},
			{Name: "AWS_ACCESS_KEY_ID", ValueFrom: secretKey("accessKeyID")},
			{Name: "AWS_SECRET_ACCESS_KEY", ValueFrom: secretKey("secretAccessKey")},
		}
		if s3.CASecret != nil {
			a.env = append(a.env, corev1.EnvVar{Name: "BUYTRACKER_S3_CA_FILE", Value: s3CAMount + "/" + keyCABundle})
			a.volumes = []corev1.Volume{{Name: "s3-ca", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: s3.CASecret.Name, Items: []corev1.KeyToPath{{Key: keyCABundle, Path: keyCABundle}}, DefaultMode: ptr.To[int32](0o440),
			}}}}
			a.mounts = []corev1.VolumeMount{{Name: "s3-ca", MountPath: s3CAMount, ReadOnly: true}}
		}
		return a
	}
	claim := defaultBackupClaim(defaultClaimOf)
	if loc.Volume != nil && loc.Volume.ClaimName != "" {
		claim = loc.Volume.ClaimName
	}
	return storeAccess{
		location: backupsMount + "/" + loc.Path,
		volumes: []corev1.Volume{{Name: "backups", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readOnly},
		}}},
		mounts: []corev1.VolumeMount{{Name: "backups", MountPath: backupsMount, ReadOnly: readOnly}},
	}
}

// agentJob is one run of `buytracker-node backup ...`.
type agentJob struct {
	name, namespace, bt, component string
	owner                          metav1.OwnerReference
	image                          string
	pullPolicy                     corev1.PullPolicy
	args                           []string
	access                         storeAccess
	// extraVolumes and extraMounts: the admin credentials of a take.
	extraVolumes []corev1.Volume
	extraMounts  []corev1.VolumeMount
	tolerations  []corev1.Toleration
	nodeSelector map[string]string
}

// agentSecurityContext: non-root, read-only root, no privilege escalation,
// no capabilities, as the nodes run.
func agentSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// agentResources: the agent streams (a backup is never held in memory; an
// S3 upload of unknown size buffers a part of 16 MiB at a time).
func agentResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
}

// desired builds the Job: one pod, never restarted in place, at most one
// retry, bounded in time, removed a day after it finished. The result is
// the container's termination message (--result-file=/dev/termination-log).
func (j agentJob) desired() *batchv1.Job {
	labels := backupLabels(j.bt, j.component)
	volumes := append([]corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}, j.access.volumes...)
	volumes = append(volumes, j.extraVolumes...)
	mounts := append([]corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}, j.access.mounts...)
	mounts = append(mounts, j.extraMounts...)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: j.name, Namespace: j.namespace, Labels: labels, OwnerReferences: []metav1.OwnerReference{j.owner}},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To(agentBackoffLimit),
			ActiveDeadlineSeconds:   ptr.To(agentActiveDeadline),
			TTLSecondsAfterFinished: ptr.To(agentTTLAfterFinish),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{
						Name:            "agent",
						Image:           j.image,
						ImagePullPolicy: j.pullPolicy,
						Command:         []string{nodeBinary},
						Args:            j.args,
						Env:             j.access.env,
						Resources:       agentResources(),
						SecurityContext: agentSecurityContext(),
						VolumeMounts:    mounts,
						// The agent writes its JSON result there; the logs
						// stand in when it could not (a crash).
						TerminationMessagePath:   corev1.TerminationMessagePathDefault,
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
					}},
					Volumes: volumes,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To(nonRootID),
						RunAsGroup:     ptr.To(nonRootID),
						FSGroup:        ptr.To(nonRootID),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					AutomountServiceAccountToken: ptr.To(false),
					EnableServiceLinks:           ptr.To(false),
					Tolerations:                  j.tolerations,
					NodeSelector:                 j.nodeSelector,
				},
			},
		},
	}
}

// nodeImageOf is the image of bt's nodes: the agent is the same binary.
func nodeImageOf(bt *buytrackerv1alpha1.BuyTracker, fallback string) string {
	if bt.Spec.Image != "" {
		return bt.Spec.Image
	}
	return fallback
}

// desiredBackupJob takes one backup of bt from member, through its admin
// API, with the admin token and the member's CA bundle (its Secret's
// ca.crt: the operator's CA, or what cert-manager's issuer put there).
func desiredBackupJob(backup *buytrackerv1alpha1.BuyTrackerBackup, bt *buytrackerv1alpha1.BuyTracker, n clusterNames, member, nodeImage string, loc buytrackerv1alpha1.BackupLocation) *batchv1.Job {
	access := accessTo(loc, false, bt.Name)
	creds := corev1.Volume{Name: "admin-credentials", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: n.adminSecret()},
				Items: []corev1.KeyToPath{{Key: adminTokenKey, Path: agentTokenFile}}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: n.memberSecret(member)},
				Items: []corev1.KeyToPath{{Key: keyCABundle, Path: agentCAFile}}}},
		},
		DefaultMode: ptr.To[int32](0o440),
	}}}
	return agentJob{
		name: backupJobName(backup.Name), namespace: backup.Namespace, bt: bt.Name, component: componentBackup,
		owner: *metav1.NewControllerRef(backup, buytrackerv1alpha1.GroupVersion.WithKind("BuyTrackerBackup")),
		image: nodeImageOf(bt, nodeImage), pullPolicy: bt.Spec.ImagePullPolicy,
		args: []string{
			"backup", "take",
			// The member's name in the peer Service, which its
			// certificate names (without the cluster domain, as the
			// nodes call each other).
			fmt.Sprintf("--admin-url=https://%s.%s.%s.svc:%d", member, n.peerService(), n.namespace, adminPort),
			"--admin-token-file=" + agentCredentialsMount + "/" + agentTokenFile,
			"--ca-file=" + agentCredentialsMount + "/" + agentCAFile,
			"--to=" + access.location,
			"--result-file=" + corev1.TerminationMessagePathDefault,
		},
		access:       access,
		extraVolumes: []corev1.Volume{creds},
		extraMounts:  []corev1.VolumeMount{{Name: "admin-credentials", MountPath: agentCredentialsMount, ReadOnly: true}},
		tolerations:  bt.Spec.Tolerations, nodeSelector: bt.Spec.NodeSelector,
	}.desired()
}

// desiredDeleteJob removes a backup's stored file and manifest.
func desiredDeleteJob(backup *buytrackerv1alpha1.BuyTrackerBackup, bt *buytrackerv1alpha1.BuyTracker, nodeImage string) *batchv1.Job {
	access := accessTo(*backup.Status.Location, false, bt.Name)
	return agentJob{
		name: deleteJobName(backup.Name), namespace: backup.Namespace, bt: bt.Name, component: componentBackupDelete,
		owner: *metav1.NewControllerRef(backup, buytrackerv1alpha1.GroupVersion.WithKind("BuyTrackerBackup")),
		image: nodeImageOf(bt, nodeImage), pullPolicy: bt.Spec.ImagePullPolicy,
		args:   []string{"backup", "delete", "--at=" + access.location, "--result-file=" + corev1.TerminationMessagePathDefault},
		access: access, tolerations: bt.Spec.Tolerations, nodeSelector: bt.Spec.NodeSelector,
	}.desired()
}

// desiredVerifyJob reads and verifies the backup a new BuyTracker starts
// from, before anything else of it is made; it goes with the BuyTracker.
func desiredVerifyJob(bt *buytrackerv1alpha1.BuyTracker, nodeImage string, loc buytrackerv1alpha1.BackupLocation, checksum string) *batchv1.Job {
	access := accessTo(loc, true, bt.Name)
	args := []string{"backup", "verify", "--from=" + access.location}
	if checksum != "" {
		args = append(args, "--checksum="+checksum)
	}
	args = append(args, "--result-file="+corev1.TerminationMessagePathDefault)
	return agentJob{
		name: verifyJobName(bt.Name), namespace: bt.Namespace, bt: bt.Name, component: componentRestoreVerify,
		owner: *metav1.NewControllerRef(bt, buytrackerv1alpha1.GroupVersion.WithKind("BuyTracker")),
		image: nodeImageOf(bt, nodeImage), pullPolicy: bt.Spec.ImagePullPolicy,
		args: args, access: access, tolerations: bt.Spec.Tolerations, nodeSelector: bt.Spec.NodeSelector,
	}.desired()
}

// desiredBackupClaim is <bt>-backups, the default destination: owned by no
// one, so that it outlives the BuyTracker and its backups stay restorable.
func desiredBackupClaim(bt *buytrackerv1alpha1.BuyTracker, v *buytrackerv1alpha1.BackupVolume) *corev1.PersistentVolumeClaim {
	size := resource.MustParse(defaultBackupVolumeSize)
	var class *string
	if v != nil {
		if v.Size != nil {
			size = *v.Size
		}
		class = v.StorageClassName
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: defaultBackupClaim(bt.Name), Namespace: bt.Namespace, Labels: backupLabels(bt.Name, componentBackupVolume)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}

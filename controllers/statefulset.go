package controllers

import (
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

const (
	nodeContainer = "node"
	nodeBinary    = "/buytracker-node"
	dataVolume    = "data"
	dataDir       = "/data"
	// credentialsVolume holds the admin token and the certificates.
	credentialsVolume = "credentials"
	memberTLSSubdir   = "tls"
	// nonRootID is the "nonroot" user and group of the node image.
	nonRootID int64 = 65532
)

// statefulSetInputs is what the StatefulSet is built from besides the
// BuyTracker.
type statefulSetInputs struct {
	// nodeImage is used when the BuyTracker names no image.
	nodeImage string
	// initialReplicas is the size the cluster was created with.
	initialReplicas int32
	// replicas is the StatefulSet's current size; the planner changes it.
	replicas int32
}

// desiredStatefulSet builds the StatefulSet of the cluster's nodes. Pods are
// created in parallel (a node waits for its peers, it does not need them
// started in order) and are only replaced when the operator deletes them
// (OnDelete), so that it can roll changes follower by follower.
func desiredStatefulSet(bt *buytrackerv1alpha1.BuyTracker, n clusterNames, in statefulSetInputs) *appsv1.StatefulSet {
	meta := childMeta(bt, n, n.statefulSet())
	meta.Annotations = map[string]string{annotationInitialReplicas: strconv.Itoa(int(in.initialReplicas))}
	whenDeleted := bt.Spec.Storage.WhenDeleted
	if whenDeleted == "" {
		whenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	return &appsv1.StatefulSet{
		ObjectMeta: meta,
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(in.replicas),
			ServiceName:         n.peerService(),
			Selector:            &metav1.LabelSelector{MatchLabels: n.selectorLabels()},
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
			// A removed member's volume is kept on scale-down: should the
			// pod come back, it rejoins with its log instead of
			// bootstrapping a second cluster from --initial-cluster.
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: whenDeleted,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template:             desiredPodTemplate(bt, n, in),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{desiredClaimTemplate(bt)},
		},
	}
}

func desiredClaimTemplate(bt *buytrackerv1alpha1.BuyTracker) corev1.PersistentVolumeClaim {
	size := storageSize(bt)
	// The volume mode and the phase are the API server's defaults, stated:
	// the claim templates are an atomic list, so the operator's apply owns
	// whatever the server keeps in them, and what it applies must equal
	// that for an unchanged BuyTracker to cause no write.
	return corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: dataVolume},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: bt.Spec.Storage.StorageClassName,
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: size},
			},
			VolumeMode: ptr.To(corev1.PersistentVolumeFilesystem),
		},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
	}
}

func desiredPodTemplate(bt *buytrackerv1alpha1.BuyTracker, n clusterNames, in statefulSetInputs) corev1.PodTemplateSpec {
	affinity := bt.Spec.Affinity
	if affinity == nil {
		affinity = preferSpreadOverNodes(n)
	}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: n.labels()},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{nodeContainerSpec(bt, n, in)},
			Volumes: []corev1.Volume{
				{Name: credentialsVolume, VolumeSource: corev1.VolumeSource{Projected: credentialsProjection(bt, n)}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:        ptr.To(true),
				RunAsUser:           ptr.To(nonRootID),
				RunAsGroup:          ptr.To(nonRootID),
				FSGroup:             ptr.To(nonRootID),
				FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
				SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			// Nodes need no Kubernetes API, and service links would put
			// BUYTRACKER_* variables the node reads as flags into a cluster
			// named "buytracker".
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			Affinity:                      affinity,
			Tolerations:                   bt.Spec.Tolerations,
			NodeSelector:                  bt.Spec.NodeSelector,
			TopologySpreadConstraints:     bt.Spec.TopologySpreadConstraints,
		},
	}
	withRestore(bt, &template.Spec)
	withClusterState(n, &template.Spec)
	return template
}

// preferSpreadOverNodes asks the scheduler to put members on different
// nodes when it can, and to run them anyway when it cannot.
// credentialsProjection is what the node reads from /etc/buytracker: the
// admin token, the certificate Secret of every member the cluster can
// have, each under tls/<pod>/, and the client credentials the spec names. The pods share one template, so each sees
// every member's files and picks its own with --tls-dir; the sources are
// optional, so a scale changes neither the template nor the running pods.
// The price: every pod can read every member's key (cert-manager's CSI
// driver, or one Secret volume per pod, would avoid it).
func credentialsProjection(bt *buytrackerv1alpha1.BuyTracker, n clusterNames) *corev1.ProjectedVolumeSource {
	sources := []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{
		LocalObjectReference: corev1.LocalObjectReference{Name: n.adminSecret()},
		Items:                []corev1.KeyToPath{{Key: adminTokenKey, Path: adminTokenFile}},
	}}}
	for i := range maxMembers {
		pod := n.pod(i)
		var items []corev1.KeyToPath
		for _, key := range []string{keyCABundle, keyTLSCert, keyTLSKey} {
			items = append(items, corev1.KeyToPath{Key: key, Path: memberTLSSubdir + "/" + pod + "/" + key})
		}
		sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: n.memberSecret(pod)},
			Items:                items,
			Optional:             ptr.To(true),
		}})
	}
	sources = append(sources, clientCredentialSources(bt)...)
	// Readable by the node's group (fsGroup) only.
	return &corev1.ProjectedVolumeSource{Sources: sources, DefaultMode: ptr.To[int32](0o440)}
}

// memberTLSDir is where a pod finds its own ca.crt, tls.crt and tls.key;
// pod may be "$(POD_NAME)".
func memberTLSDir(pod string) string {
	return credentialsDir + "/" + memberTLSSubdir + "/" + pod
}

func preferSpreadOverNodes(n clusterNames) *corev1.Affinity {
	return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 100,
			PodAffinityTerm: corev1.PodAffinityTerm{
				LabelSelector: &metav1.LabelSelector{MatchLabels: n.selectorLabels()},
				TopologyKey:   corev1.LabelHostname,
			},
		}},
	}}
}

func nodeContainerSpec(bt *buytrackerv1alpha1.BuyTracker, n clusterNames, in statefulSetInputs) corev1.Container {
	image := bt.Spec.Image
	if image == "" {
		image = in.nodeImage
	}
	return corev1.Container{
		Name:            nodeContainer,
		Image:           image,
		ImagePullPolicy: bt.Spec.ImagePullPolicy,
		Command:         []string{nodeBinary},
		Args:            nodeArgs(bt, n, in.initialReplicas),
		Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"},
		}}},
		Ports: []corev1.ContainerPort{
			{Name: "raft", ContainerPort: raftPort, Protocol: corev1.ProtocolTCP},
			{Name: "http", ContainerPort: httpPort, Protocol: corev1.ProtocolTCP},
			{Name: "admin", ContainerPort: adminPort, Protocol: corev1.ProtocolTCP},
		},
		Resources: bt.Spec.Resources,
		// A node replaying a long log may take a while to serve: the
		// startup probe gives it two minutes before liveness applies. The
		// probes use the admin port, which serves /health and /ready
		// without a token; the kubelet does not verify the certificate.
		StartupProbe:   adminProbe("/health", 2, 60),
		LivenessProbe:  adminProbe("/health", 10, 6),
		ReadinessProbe: adminProbe("/ready", 5, 2),
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			RunAsNonRoot:             ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: dataVolume, MountPath: dataDir},
			{Name: credentialsVolume, MountPath: credentialsDir, ReadOnly: true},
			{Name: "tmp", MountPath: "/tmp"},
		},
	}
}

// nodeArgs is the node's command line (SPEC "Node command line"); the
// kubelet expands $(POD_NAME) from the downward API.
func nodeArgs(bt *buytrackerv1alpha1.BuyTracker, n clusterNames, initialReplicas int32) []string {
	self := "$(POD_NAME)"
	size := storageSize(bt)
	args := []string{
		"--id=" + self,
		"--data-dir=" + dataDir,
		fmt.Sprintf("--http-addr=0.0.0.0:%d", httpPort),
		fmt.Sprintf("--admin-addr=0.0.0.0:%d", adminPort),
		fmt.Sprintf("--raft-addr=0.0.0.0:%d", raftPort),
		"--advertise-raft=" + n.raftAddress(self),
		fmt.Sprintf("--advertise-http=%s://%s:%d", clientScheme(bt), n.host(self), httpPort),
		"--initial-cluster=" + n.initialCluster(initialReplicas),
		"--admin-token-file=" + adminTokenPath,
		"--tls-dir=" + memberTLSDir(self),
		// The data dir records it: a node refuses a volume of another
		// cluster, such as a claim left by a deleted BuyTracker of the
		// same name.
		"--cluster-id=" + string(bt.UID),
		"--min-free-disk=" + formatBytes(diskWatermark(size.Value())),
		"--idempotency-max-keys=" + strconv.FormatInt(ptr.Deref(bt.Spec.Idempotency.MaxKeys, buytrackerv1alpha1.DefaultIdempotencyMaxKeys), 10),
		"--max-clock-skew=" + maxClockSkew(bt).String(),
	}
	if r := bt.Spec.Raft; r != nil {
		if r.HeartbeatTimeout != nil {
			args = append(args, "--heartbeat-timeout="+r.HeartbeatTimeout.Duration.String())
		}
		if r.ElectionTimeout != nil {
			args = append(args, "--election-timeout="+r.ElectionTimeout.Duration.String())
		}
		if r.SnapshotThreshold != nil {
			args = append(args, "--snapshot-threshold="+strconv.FormatInt(*r.SnapshotThreshold, 10))
		}
	}
	args = append(args, restoreArgs(bt)...)
	return append(args, clientSecurityArgs(bt)...)
}

// maxClockSkew is spec.raft.maxClockSkew, or its default.
func maxClockSkew(bt *buytrackerv1alpha1.BuyTracker) time.Duration {
	if r := bt.Spec.Raft; r != nil && r.MaxClockSkew != nil {
		return r.MaxClockSkew.Duration
	}
	d, _ := time.ParseDuration(buytrackerv1alpha1.DefaultMaxClockSkew)
	return d
}

func adminProbe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString("admin"), Scheme: corev1.URISchemeHTTPS,
		}},
		PeriodSeconds:  period,
		TimeoutSeconds: 3,
		// The API server's default, spelled out: the comparison with the
		// live StatefulSet ignores only fields left empty, and a zero here
		// made every pass patch the StatefulSet.
		SuccessThreshold: 1,
		FailureThreshold: failures,
	}
}

package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// statefulSetStandIn does, for the envtest tests, the little of the
// StatefulSet controller's and the kubelet's work the operator depends on:
// pods 0..replicas-1 exist, run and are ready, labelled with the template
// revision they were created from (OnDelete: a pod keeps its revision until
// it is deleted); pods above replicas are deleted; the StatefulSet's status
// reports the latest revision.
type statefulSetStandIn struct {
	c  client.Client
	ns string
	// withClaims: a pod it creates gets its claim data-<pod> when there is
	// none (protected by kubernetes.io/pvc-protection, which nothing in
	// envtest removes: the test does, as the kube-controller-manager does
	// once no pod uses the claim), and a pod whose claim is being deleted
	// stays Pending, as the kubelet keeps it.
	withClaims bool

	mu sync.Mutex
	// created lists the pods it created, in order.
	created []string
}

// run keeps the namespace's StatefulSets in step until the test ends.
func (s *statefulSetStandIn) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if err := s.sync(ctx); err != nil && ctx.Err() == nil {
				t.Logf("stand-in: %v", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func (s *statefulSetStandIn) createdPods() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.created)
}

// sync makes one pass; it writes nothing when all is in step.
func (s *statefulSetStandIn) sync(ctx context.Context) error {
	var sets appsv1.StatefulSetList
	if err := s.c.List(ctx, &sets, client.InNamespace(s.ns)); err != nil {
		return err
	}
	for i := range sets.Items {
		if err := s.syncOne(ctx, &sets.Items[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *statefulSetStandIn) syncOne(ctx context.Context, sts *appsv1.StatefulSet) error {
	if sts.DeletionTimestamp != nil {
		return nil
	}
	raw, err := json.Marshal(sts.Spec.Template)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	revision := sts.Name + "-" + hex.EncodeToString(sum[:4])
	replicas := ptr.Deref(sts.Spec.Replicas, 1)

	var pods corev1.PodList
	if err := s.c.List(ctx, &pods, client.InNamespace(s.ns), client.MatchingLabels(sts.Spec.Selector.MatchLabels)); err != nil {
		return err
	}
	have := map[string]bool{}
	for i := range pods.Items {
		p := &pods.Items[i]
		have[p.Name] = true
		if i, ok := (clusterNames{name: sts.Name}).ordinal(p.Name); ok && i >= replicas {
			if err := s.c.Delete(ctx, p); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
	}
	for i := range replicas {
		name := fmt.Sprintf("%s-%d", sts.Name, i)
		if have[name] {
			continue
		}
		if err := s.createPod(ctx, sts, name, revision); err != nil {
			return err
		}
	}
	status := appsv1.StatefulSetStatus{
		ObservedGeneration: sts.Generation, Replicas: replicas, ReadyReplicas: replicas,
		UpdateRevision: revision, CurrentRevision: sts.Status.CurrentRevision,
	}
	if sts.Status.ObservedGeneration == status.ObservedGeneration && sts.Status.UpdateRevision == revision &&
		sts.Status.Replicas == replicas && sts.Status.ReadyReplicas == replicas {
		return nil
	}
	if status.CurrentRevision == "" {
		status.CurrentRevision = revision
	}
	sts.Status = status
	return s.c.Status().Update(ctx, sts)
}

func (s *statefulSetStandIn) createPod(ctx context.Context, sts *appsv1.StatefulSet, name, revision string) error {
	labels := map[string]string{revisionLabel: revision}
	for k, v := range sts.Spec.Template.Labels {
		labels[k] = v
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(sts, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: nodeContainer, Image: sts.Spec.Template.Spec.Containers[0].Image}},
		},
	}
	pending := false
	if s.withClaims {
		var err error
		if pending, err = s.claimFor(ctx, sts, name); err != nil {
			return err
		}
	}
	if err := s.c.Create(ctx, pod); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return fmt.Errorf("create pod %s: %w", name, err)
	}
	pod.Status = corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
	}
	if pending {
		pod.Status = corev1.PodStatus{Phase: corev1.PodPending}
	}
	if err := s.c.Status().Update(ctx, pod); err != nil {
		return fmt.Errorf("make pod %s ready: %w", name, err)
	}
	s.mu.Lock()
	s.created = append(s.created, name)
	s.mu.Unlock()
	return nil
}

// claimFor makes the pod's claim when it has none, and says whether the
// claim there is being deleted (the pod then cannot start).
func (s *statefulSetStandIn) claimFor(ctx context.Context, sts *appsv1.StatefulSet, pod string) (terminating bool, err error) {
	pvc := &corev1.PersistentVolumeClaim{}
	err = s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: claimName(pod)}, pvc)
	if err == nil {
		return pvc.DeletionTimestamp != nil, nil
	}
	if !apierrors.IsNotFound(err) {
		return false, err
	}
	pvc = &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: claimName(pod), Labels: sts.Spec.Selector.MatchLabels,
			Finalizers: []string{"kubernetes.io/pvc-protection"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if err := s.c.Create(ctx, pvc); err != nil {
		return false, fmt.Errorf("create claim %s: %w", pvc.Name, err)
	}
	return false, nil
}

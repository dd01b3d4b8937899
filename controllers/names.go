package controllers

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// Ports every node listens on (SPEC "Node command line").
const (
	raftPort  int32 = 7000
	httpPort  int32 = 8080
	adminPort int32 = 8081
)

// maxMembers is the largest cluster the API allows (spec.replicas): the
// pod template provides for the certificates of that many members.
const maxMembers int32 = 9

// Label keys, and the annotation that records a cluster's initial size.
const (
	labelName      = "app.kubernetes.io/name"
	labelInstance  = "app.kubernetes.io/instance"
	labelComponent = "app.kubernetes.io/component"
	labelManagedBy = "app.kubernetes.io/managed-by"
	managedByValue = "buytracker-operator"

	// annotationInitialReplicas records the size the cluster was created
	// with: the members of --initial-cluster. Scaling never changes it, so
	// a node with no state that was not among them waits to be added.
	annotationInitialReplicas = "buytracker.dev/initial-replicas"
	// revisionLabel is the label the StatefulSet controller puts on a pod
	// to say which template revision it was created from.
	revisionLabel = "controller-revision-hash"
)

// clusterNames derives every name and address of one BuyTracker's cluster.
type clusterNames struct {
	name, namespace, clusterDomain string
}

func namesOf(bt *buytrackerv1alpha1.BuyTracker, clusterDomain string) clusterNames {
	return clusterNames{name: bt.Name, namespace: bt.Namespace, clusterDomain: clusterDomain}
}

func (n clusterNames) statefulSet() string   { return n.name }
func (n clusterNames) clientService() string { return n.name }
func (n clusterNames) peerService() string   { return n.name + "-peers" }
func (n clusterNames) adminSecret() string   { return n.name + "-admin-token" }
func (n clusterNames) caSecret() string      { return n.name + "-ca" }
func (n clusterNames) networkPolicy() string { return n.name }
func (n clusterNames) clusterState() string  { return n.name + "-cluster-state" }

// memberSecret holds one member's certificate; pod may be "$(POD_NAME)".
func (n clusterNames) memberSecret(pod string) string { return pod + "-tls" }
func (n clusterNames) disruptionBudget() string {
	return n.name
}

func (n clusterNames) pod(ordinal int32) string { return fmt.Sprintf("%s-%d", n.name, ordinal) }

// ordinal parses a pod or member name of this cluster ("promo-2" -> 2).
func (n clusterNames) ordinal(pod string) (int32, bool) {
	rest, ok := strings.CutPrefix(pod, n.name+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(rest, 10, 32)
	if err != nil || i < 0 || strconv.FormatInt(i, 10) != rest {
		return 0, false
	}
	return int32(i), true
}

// host is a pod's stable DNS name in the peer Service; pod may be the
// literal "$(POD_NAME)" for the container's command line.
func (n clusterNames) host(pod string) string {
	return fmt.Sprintf("%s.%s.%s.svc.%s", pod, n.peerService(), n.namespace, n.clusterDomain)
}

func (n clusterNames) raftAddress(pod string) string {
	return fmt.Sprintf("%s:%d", n.host(pod), raftPort)
}

func (n clusterNames) adminURL(pod string) string {
	return fmt.Sprintf("https://%s:%d", n.host(pod), adminPort)
}

// initialCluster is the --initial-cluster value for a cluster created with
// size members.
func (n clusterNames) initialCluster(size int32) string {
	parts := make([]string, size)
	for i := range size {
		parts[i] = n.pod(i) + "=" + n.raftAddress(n.pod(i))
	}
	return strings.Join(parts, ",")
}

// selectorLabels select the cluster's pods; they never change.
func (n clusterNames) selectorLabels() map[string]string {
	return map[string]string{labelName: "buytracker", labelInstance: n.name}
}

// labels go on every child object.
func (n clusterNames) labels() map[string]string {
	l := n.selectorLabels()
	l[labelComponent] = "node"
	l[labelManagedBy] = managedByValue
	return l
}

func (n clusterNames) selector() labels.Selector {
	return labels.SelectorFromSet(n.selectorLabels())
}

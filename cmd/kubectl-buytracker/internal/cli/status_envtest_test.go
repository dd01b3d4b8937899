package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/cmd/kubectl-buytracker/internal/clusterview"
	"github.com/buytracker/buytracker/node/clustertest"
	"github.com/buytracker/buytracker/node/pki"
)

// members is a cluster of three real node processes (n1..n3) whose
// certificates are what the operator issues for pods n1..n3 of BuyTracker
// "promo" in namespace ns: CN the pod, DNS names <pod>.promo-peers.<ns>.svc.
type members struct {
	cluster *clustertest.Cluster
	caPEM   []byte
	token   string
	// admin maps a pod to its node's admin address on 127.0.0.1.
	admin map[string]string
}

func startMembers(t *testing.T, ns string) *members {
	t.Helper()
	caPEM, caKey, err := pki.NewCA("plugin test CA", time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	m := &members{caPEM: caPEM, token: hex.EncodeToString(raw), admin: map[string]string{}}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(m.token), 0o600); err != nil {
		t.Fatal(err)
	}
	// Laid out, not started: each node is started with its own
	// certificate and the token above (flags given last win).
	m.cluster = clustertest.StartSome(t, 3)
	for _, n := range m.cluster.Nodes() {
		certPEM, keyPEM, err := pki.IssueMember(caPEM, caKey, n.ID,
			[]string{fmt.Sprintf("%s.promo-peers.%s.svc", n.ID, ns), "localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now().Add(23*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		tlsDir := filepath.Join(dir, "tls", n.ID)
		if err := pki.WriteDir(tlsDir, caPEM, certPEM, keyPEM); err != nil {
			t.Fatal(err)
		}
		m.cluster.ExtraFlags = []string{"--tls-dir=" + tlsDir, "--admin-token-file=" + tokenFile}
		m.cluster.Restart(n)
		u, err := url.Parse(n.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		m.admin[n.ID] = u.Host
	}
	m.cluster.WaitLeader(30 * time.Second)
	return m
}

// DialPod stands in for the port-forward: it reaches the pod's node
// process directly. TLS, the token and every admin call are the plugin's.
func (m *members) DialPod(ctx context.Context, pod string) (net.Conn, error) {
	addr, ok := m.admin[pod]
	if !ok {
		return nil, fmt.Errorf("no node for pod %s", pod)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func newClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := buytrackerv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createBuyTracker writes what the operator would have made of BuyTracker
// "promo": the object with a status, its admin token and CA Secrets, and
// ready pods n1..n3 (which run nowhere: envtest has no kubelet).
func createBuyTracker(t *testing.T, c client.Client, ns, token string, caPEM []byte, leaderSeen string) {
	t.Helper()
	ctx := context.Background()
	three := int32(3)
	bt := &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "promo", Namespace: ns}, Spec: buytrackerv1alpha1.BuyTrackerSpec{Replicas: &three}}
	must(t, c.Create(ctx, bt))
	done := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	bt.Status = buytrackerv1alpha1.BuyTrackerStatus{ReadyReplicas: 3, Replicas: 3, Leader: leaderSeen,
		LastBackup: &buytrackerv1alpha1.LastBackupStatus{Name: "promo-20261201100000", CompletedAt: &done, Index: 5, Purchases: 1}}
	meta.SetStatusCondition(&bt.Status.Conditions, metav1.Condition{Type: buytrackerv1alpha1.ConditionAvailable, Status: metav1.ConditionTrue,
		Reason: buytrackerv1alpha1.ReasonQuorum, Message: "3 of 3 voters healthy"})
	must(t, c.Status().Update(ctx, bt))
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "promo-admin-token", Namespace: ns}, Data: map[string][]byte{"token": []byte(token)}}))
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "promo-ca", Namespace: ns}, Data: map[string][]byte{"ca.crt": caPEM}}))
	for _, name := range []string{"n1", "n2", "n3", "other-app"} {
		labels := map[string]string{"app.kubernetes.io/name": "buytracker", "app.kubernetes.io/instance": "promo"}
		if name == "other-app" {
			labels = map[string]string{"app.kubernetes.io/name": "shop"}
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "node", Image: "buytracker/node:dev"}}}}
		must(t, c.Create(ctx, pod))
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		must(t, c.Status().Update(ctx, pod))
	}
}

func newNamespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "plugin-"}}
	must(t, c.Create(context.Background(), ns))
	return ns.Name
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// run runs the plugin against the API server, dialing the members with d.
func run(t *testing.T, cfg *rest.Config, d *members, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ov := Overrides{Config: cfg, Now: time.Now}
	if d != nil {
		ov.Dialer = d
	}
	err := Run(ctx, args, &stdout, &stderr, ov)
	return stdout.String(), stderr.String(), err
}

func statusJSON(t *testing.T, cfg *rest.Config, m *members, ns string) clusterview.Report {
	t.Helper()
	out, errOut, err := run(t, cfg, m, "-n", ns, "status", "promo", "-o", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, errOut)
	}
	var r clusterview.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return r
}

func TestStatusOfRealMembersThroughTheAPIServersObjects(t *testing.T) {
	cfg := needAPIServer(t)
	c := newClient(t, cfg)
	ns := newNamespace(t, c)
	m := startMembers(t, ns)
	leader := m.cluster.WaitLeader(30 * time.Second)
	if _, err := m.cluster.Buy(context.Background(), leader.HTTPURL, "plugin-1", 1); err != nil {
		t.Fatalf("buy: %v", err)
	}
	// The operator last saw another member lead: the plugin must still ask
	// the one that says it leads.
	stale := m.cluster.Followers(leader)[0].ID
	createBuyTracker(t, c, ns, m.token, m.caPEM, stale)

	r := statusJSON(t, cfg, m, ns)
	if r.Leader != leader.ID || r.ClusterFrom != leader.ID || r.Term == 0 || r.CommitIndex == 0 || r.LastIndex < r.CommitIndex {
		t.Errorf("summary: leader %q from %q term %d commit %d last %d; want leader %s answering", r.Leader, r.ClusterFrom, r.Term, r.CommitIndex, r.LastIndex, leader.ID)
	}
	if len(r.Members) != 3 {
		t.Fatalf("members = %+v, want n1..n3 (not other-app)", r.Members)
	}
	for i, mem := range r.Members {
		if want := fmt.Sprintf("n%d", i+1); mem.Name != want {
			t.Errorf("member %d is %s, want %s", i, mem.Name, want)
		}
		wantRole := "Follower"
		if mem.Name == leader.ID {
			wantRole = "Leader"
		}
		if mem.Error != "" || !mem.InConfiguration || mem.Suffrage != "voter" || !mem.Ready || mem.Role != wantRole ||
			mem.Incarnation == "" || mem.Lag == nil || mem.LastIndex == nil || mem.Term != r.Term {
			t.Errorf("member %+v: want a ready %s voter with an incarnation, index and lag", mem, wantRole)
		}
	}
	if r.LastBackup == nil || r.LastBackup.Name != "promo-20261201100000" || len(r.Conditions) != 1 || r.Conditions[0].Reason != "QuorumAvailable" {
		t.Errorf("last backup %+v, conditions %+v: want the BuyTracker's", r.LastBackup, r.Conditions)
	}

	table, _, err := run(t, cfg, m, "status", "promo", "--namespace", ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("BuyTracker %s/promo: 3/3 ready, Available=True (QuorumAvailable)\n", ns),
		fmt.Sprintf("Leader: %s, term %d;", leader.ID, r.Term),
		"MEMBER  ROLE", "\nn1  ", "\nn2  ", "\nn3  ",
		"Last backup: promo-20261201100000, index 5, 1 purchases",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	t.Logf("kubectl buytracker status promo:\n%s", table)

	// A member that is down is reported as such; the others still are.
	down := m.cluster.Followers(leader)[1]
	m.cluster.Kill(down)
	r = statusJSON(t, cfg, m, ns)
	for _, mem := range r.Members {
		if (mem.Name == down.ID) != (mem.Error != "") {
			t.Errorf("with %s killed, member %s reports error %q", down.ID, mem.Name, mem.Error)
		}
	}
	if r.Leader != leader.ID {
		t.Errorf("with a follower down the leader is %q, want %s", r.Leader, leader.ID)
	}
}

func TestStatusRefusesMembersWhoseCertificatesDoNotProveWhoTheyAre(t *testing.T) {
	cfg := needAPIServer(t)
	c := newClient(t, cfg)
	ns := newNamespace(t, c)
	m := startMembers(t, ns)

	// The CA Secret holds another CA: nothing the members show chains to it.
	otherCA, _, err := pki.NewCA("someone else's CA", time.Now().Add(time.Hour))
	must(t, err)
	createBuyTracker(t, c, ns, m.token, otherCA, "")
	assertAllRefused(t, cfg, m, ns, "certificate signed by unknown authority")

	// The right CA, but the members' certificates name pods of namespace
	// ns, not of this one.
	wrongNS := newNamespace(t, c)
	createBuyTracker(t, c, wrongNS, m.token, m.caPEM, "")
	assertAllRefused(t, cfg, m, wrongNS, "certificate is valid for n1.promo-peers."+ns+".svc")

	// With the right CA in the Secret the same members are trusted.
	var caSecret corev1.Secret
	must(t, c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "promo-ca"}, &caSecret))
	caSecret.Data["ca.crt"] = m.caPEM
	must(t, c.Update(context.Background(), &caSecret))
	if r := statusJSON(t, cfg, m, ns); r.ClusterFrom == "" || r.Leader == "" {
		t.Errorf("with the right CA no member answered: %+v", r)
	}
}

func assertAllRefused(t *testing.T, cfg *rest.Config, m *members, ns, want string) {
	t.Helper()
	r := statusJSON(t, cfg, m, ns)
	if r.ClusterFrom != "" || len(r.Problems) == 0 || r.Leader != "" {
		t.Errorf("%s: a member answered (%q, leader %q) though its certificate should be refused", ns, r.ClusterFrom, r.Leader)
	}
	for _, mem := range r.Members {
		if !strings.Contains(mem.Error, want) && !(mem.Name != "n1" && strings.Contains(want, "n1.promo")) {
			t.Errorf("%s: member %s error %q, want it to say %q", ns, mem.Name, mem.Error, want)
		}
		if mem.Error == "" {
			t.Errorf("%s: member %s answered", ns, mem.Name)
		}
	}
}

func TestTransferLeaderAndSnapshotCallTheMembers(t *testing.T) {
	cfg := needAPIServer(t)
	c := newClient(t, cfg)
	ns := newNamespace(t, c)
	m := startMembers(t, ns)
	leader := m.cluster.WaitLeader(30 * time.Second)
	createBuyTracker(t, c, ns, m.token, m.caPEM, leader.ID)

	if _, _, err := run(t, cfg, m, "-n", ns, "transfer-leader", "promo", "--to", "n9"); err == nil || !strings.Contains(err.Error(), "--to n9 is not a voter of promo") {
		t.Errorf("transfer to n9: %v, want refused", err)
	}
	if got := m.cluster.WaitLeader(30 * time.Second); got.ID != leader.ID {
		t.Errorf("a refused transfer moved leadership from %s to %s", leader.ID, got.ID)
	}

	target := m.cluster.Followers(leader)[0].ID
	out, errOut, err := run(t, cfg, m, "-n", ns, "transfer-leader", "promo", "--to", target)
	if err != nil {
		t.Fatalf("transfer-leader: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "transferred from "+leader.ID) {
		t.Errorf("output %q", out)
	}
	if got := m.cluster.WaitLeader(30 * time.Second); got.ID != target {
		t.Errorf("leader after transfer-leader --to %s is %s", target, got.ID)
	}

	if _, err := m.cluster.Buy(context.Background(), m.cluster.Node(target).HTTPURL, "plugin-snap", 2); err != nil {
		t.Fatalf("buy: %v", err)
	}
	out, errOut, err = run(t, cfg, m, "-n", ns, "snapshot", "promo", "--member", "n2")
	if err != nil {
		t.Fatalf("snapshot: %v\n%s", err, errOut)
	}
	var idx uint64
	if _, err := fmt.Sscanf(out, "n2: snapshot at index %d\n", &idx); err != nil || idx == 0 {
		t.Errorf("snapshot output %q: want n2's snapshot index", out)
	}
	if _, _, err := run(t, cfg, m, "-n", ns, "snapshot", "promo", "--member", "promo-7"); err == nil || !strings.Contains(err.Error(), "--member promo-7 is not a pod of promo (pods: n1, n2, n3)") {
		t.Errorf("snapshot of an unknown member: %v", err)
	}
}

func TestBackupCreatesABackupAndWaitsForItsEnd(t *testing.T) {
	cfg := needAPIServer(t)
	c := newClient(t, cfg)
	ns := newNamespace(t, c)
	createBuyTracker(t, c, ns, "unused-token", nil, "")

	if _, _, err := run(t, cfg, nil, "-n", ns, "backup", "nosuch"); err == nil || !strings.Contains(err.Error(), "BuyTracker "+ns+"/nosuch not found") {
		t.Errorf("backup of a missing BuyTracker: %v", err)
	}
	var list buytrackerv1alpha1.BuyTrackerBackupList
	must(t, c.List(context.Background(), &list, client.InNamespace(ns)))
	if len(list.Items) != 0 {
		t.Errorf("a refused backup created %d BuyTrackerBackups", len(list.Items))
	}

	// No operator runs here: nothing completes it, so --wait gives up.
	_, _, err := run(t, cfg, nil, "-n", ns, "backup", "promo", "--name", "stuck", "--wait", "--wait-timeout", "1s")
	if err == nil || !strings.Contains(err.Error(), "not finished within 1s (no phase yet)") {
		t.Errorf("backup --wait with nobody to complete it: %v", err)
	}

	// The test plays the operator: it completes the backup once created.
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, _, err := run(t, cfg, nil, "-n", ns, "backup", "promo", "--name", "before-upgrade", "--wait", "--wait-timeout", "30s")
		done <- result{out, err}
	}()
	var b buytrackerv1alpha1.BuyTrackerBackup
	deadline := time.Now().Add(30 * time.Second)
	for c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "before-upgrade"}, &b) != nil {
		if time.Now().After(deadline) {
			t.Fatal("backup before-upgrade not created within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b.Spec.BuyTracker != "promo" {
		t.Errorf("backup spec = %+v, want buyTracker promo", b.Spec)
	}
	b.Status = buytrackerv1alpha1.BuyTrackerBackupStatus{Phase: buytrackerv1alpha1.BackupCompleted, Index: 77, Purchases: 12,
		Checksum: strings.Repeat("ab", 32), SizeBytes: 4096, Member: "promo-1"}
	must(t, c.Status().Update(context.Background(), &b))
	res := <-done
	if res.err != nil {
		t.Fatalf("backup --wait: %v", res.err)
	}
	want := "buytrackerbackup.buytracker.dev/before-upgrade created\nbefore-upgrade: Completed, index 77, 12 purchases, checksum " + strings.Repeat("ab", 32) + ", 4096 bytes, written by promo-1\n"
	if res.out != want {
		t.Errorf("output %q, want %q", res.out, want)
	}
}

package clustertest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/pki"
)

// rewriteTLSDir replaces a member's certificate files in place, as a
// renewed Secret does, and waits until the node logged that it reloaded
// them.
func (c *Cluster) rewriteTLSDir(t *testing.T, n *Node, caBundle, certPEM, keyPEM []byte) {
	t.Helper()
	before := strings.Count(c.Log(n), "Reloaded certificates")
	if err := pki.WriteDir(filepath.Join(c.ca.dir, n.ID), caBundle, certPEM, keyPEM); err != nil {
		t.Fatalf("rewrite the certificates of %s: %v", n.ID, err)
	}
	c.Eventually(10*time.Second, n.ID+" reloads its certificates", func() error {
		if strings.Count(c.Log(n), "Reloaded certificates") <= before {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

// TestCertificatesRotateUnderWritesWithoutRestarts: the CA and every
// member's certificate are replaced while clients write, in the order the
// operator follows (trust old and new CA, re-issue every member from the new
// one, drop the old CA). No node restarts, every acknowledged purchase is
// kept exactly once, and afterwards a certificate of the old CA is refused.
func TestCertificatesRotateUnderWritesWithoutRestarts(t *testing.T) {
	c := Start(t, 3)
	c.WaitLeader(30 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	w := startAckingWriters(ctx, c, "rot", 4)
	progress := func(what string) { w.awaitMore(100, 20*time.Second, "writes go on "+what) }
	progress("before the rotation")

	oldCA := c.ca
	newCA := newClusterCA(t, oldCA.dir)
	bundle := append(append([]byte{}, oldCA.certPEM...), newCA.certPEM...)
	current := map[string][2][]byte{}
	// 1. Every member trusts both CAs; its certificate is still the old
	// CA's.
	for _, n := range c.Nodes() {
		certPEM, keyPEM := reissue(t, oldCA, n.ID)
		current[n.ID] = [2][]byte{certPEM, keyPEM}
		c.rewriteTLSDir(t, n, bundle, certPEM, keyPEM)
	}
	progress("while both CAs are trusted")
	// 2. Every member gets a certificate of the new CA.
	for _, n := range c.Nodes() {
		certPEM, keyPEM := reissue(t, newCA, n.ID)
		current[n.ID] = [2][]byte{certPEM, keyPEM}
		c.rewriteTLSDir(t, n, bundle, certPEM, keyPEM)
		progress("after " + n.ID + " took the new CA's certificate")
	}
	// 3. The old CA is dropped.
	for _, n := range c.Nodes() {
		c.rewriteTLSDir(t, n, newCA.certPEM, current[n.ID][0], current[n.ID][1])
	}
	c.ca = newCA
	progress("after the old CA was dropped")

	acked := w.finish(t)
	for _, n := range c.Nodes() {
		if !n.Running() {
			t.Fatalf("%s stopped during the rotation", n.ID)
		}
	}
	checkEveryAckedPurchaseEverywhere(t, c, acked)

	// A new connection with a certificate of the old CA is refused now,
	// though it names n1 and its address as a member's would.
	leader := c.WaitLeader(30 * time.Second)
	oldPEM, oldKey := reissue(t, oldCA, "n1")
	oldCert, err := tls.X509KeyPair(oldPEM, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	typ, req := forgedAppend("n1", c.Node("n1").RaftAddr)
	if answered, _ := sendRaftRPC(t, leader.RaftAddr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{oldCert}}, typ, req); answered {
		t.Fatal("a certificate of the dropped CA was accepted after the rotation")
	}
	// And a member restarted on the new material rejoins.
	f := c.Followers(leader)[0]
	c.Stop(f)
	c.Restart(f)
	c.WaitLeader(30 * time.Second)
}

// reissue issues a member certificate of ca naming id at 127.0.0.1.
func reissue(t *testing.T, ca *clusterCA, id string) ([]byte, []byte) {
	t.Helper()
	certPEM, keyPEM, err := pki.IssueMember(ca.certPEM, ca.keyPEM, id, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now().Add(23*time.Hour))
	if err != nil {
		t.Fatalf("issue a certificate for %s: %v", id, err)
	}
	return certPEM, keyPEM
}

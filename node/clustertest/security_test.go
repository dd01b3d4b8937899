package clustertest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// forgedVote is issue 11's attack: a RequestVote posing as n3, with a huge
// term and a leadership transfer flag, which a plain Raft port grants.
func forgedVote(claimID, claimAddr string) (byte, any) {
	return 1, &raft.RequestVoteRequest{
		RPCHeader:          raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(claimID), Addr: []byte(claimAddr)},
		Term:               1000,
		LastLogIndex:       1 << 40,
		LastLogTerm:        999,
		LeadershipTransfer: true,
	}
}

// forgedAppend is a heartbeat from a leader that is not one, in term 1000.
func forgedAppend(claimID, claimAddr string) (byte, any) {
	return 0, &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(claimID), Addr: []byte(claimAddr)},
		Term:      1000,
	}
}

// sendRaftRPC dials a node's Raft port (with TLS when cert is set), sends one
// Raft request the way hashicorp/raft's transport does, and reports whether
// an answer came back.
func sendRaftRPC(t *testing.T, addr string, tlsConfig *tls.Config, rpcType byte, req any) (answered bool, err error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var rw io.ReadWriter = conn
	if tlsConfig != nil {
		tc := tls.Client(conn, tlsConfig)
		if err := tc.Handshake(); err != nil {
			return false, fmt.Errorf("handshake: %w", err)
		}
		rw = tc
	}
	w := bufio.NewWriter(rw)
	w.WriteByte('R') // the Raft channel of the peer endpoint
	w.WriteByte(rpcType)
	handle := &codec.MsgpackHandle{}
	handle.TimeNotBuiltin = true // as hashicorp/raft's transport encodes
	if err := codec.NewEncoder(w, handle).Encode(req); err != nil {
		return false, err
	}
	if err := w.Flush(); err != nil {
		return false, err
	}
	var respErr string
	if err := codec.NewDecoder(bufio.NewReader(rw), &codec.MsgpackHandle{}).Decode(&respErr); err != nil {
		return false, err
	}
	return true, nil
}

func (c *Cluster) terms(t *testing.T) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, n := range c.Nodes() {
		st, err := c.Admin(n).Status(t.Context())
		if err != nil {
			t.Fatalf("status of %s: %v", n.ID, err)
		}
		out[n.ID] = st.Term
	}
	return out
}

// TestAPlainRaftPortGrantsAForgedVote shows the attack bites where nothing
// authenticates peers (a node run without --tls-dir): the forged vote
// deposes the leader and the term jumps to 1000.
func TestAPlainRaftPortGrantsAForgedVote(t *testing.T) {
	c := StartPlain(t, 3)
	leader := c.WaitLeader(30 * time.Second)
	typ, req := forgedVote("n3", c.Node("n3").RaftAddr)
	if answered, err := sendRaftRPC(t, leader.RaftAddr, nil, typ, req); !answered {
		t.Fatalf("the forged vote got no answer on a plain port: %v", err)
	}
	c.Eventually(10*time.Second, "the forged term reached the leader", func() error {
		st, err := c.Admin(leader).Status(t.Context())
		if err != nil || st.Term < 1000 {
			return fmt.Errorf("term %d (%v)", st.Term, err)
		}
		return nil
	})
}

// TestTheRaftPortRefusesForgedRequests is issue 11's first finding, fixed:
// a forged RequestVote or AppendEntries without a certificate, with one of
// another CA, or with one of the cluster's CA that names another server ID
// than the request claims, changes no term and no leader.
func TestTheRaftPortRefusesForgedRequests(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(30 * time.Second)
	before := c.terms(t)
	n3 := c.Node("n3")

	otherCA := newClusterCA(t, filepath.Join(t.TempDir(), "other"))
	cases := []struct {
		name string
		tls  *tls.Config
	}{
		{"no certificate (plain TCP)", nil},
		{"no client certificate", &tls.Config{InsecureSkipVerify: true}},
		{"a certificate of another CA naming n3", &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{otherCA.Member(t, "n3")}}},
		{"a certificate of the cluster's CA naming another ID", &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{c.ca.Member(t, "intruder")}}},
	}
	for _, tc := range cases {
		for _, forge := range []func(string, string) (byte, any){forgedVote, forgedAppend} {
			for _, target := range c.Nodes() {
				typ, req := forge(n3.ID, n3.RaftAddr)
				answered, err := sendRaftRPC(t, target.RaftAddr, tc.tls, typ, req)
				if answered {
					t.Fatalf("%s: %s answered a forged Raft request of type %d", tc.name, target.ID, typ)
				}
				t.Logf("%s -> %s type %d: refused (%v)", tc.name, target.ID, typ, err)
			}
		}
	}
	after := c.terms(t)
	for id, term := range before {
		if after[id] != term {
			t.Errorf("%s: term %d before the forged requests, %d after", id, term, after[id])
		}
	}
	if now := c.WaitLeader(10 * time.Second); now.ID != leader.ID {
		t.Errorf("leader changed from %s to %s", leader.ID, now.ID)
	}
	if !strings.Contains(c.Log(leader), "which its certificate does not name") {
		t.Errorf("%s did not log why it refused the intruder's claim", leader.ID)
	}
}

// TestAMemberWhoseCertificateNamesAnotherIDIsRefused: n3 restarted with a
// certificate of the cluster's CA that names n9 can neither take part nor
// be reached as n3; the others go on.
func TestAMemberWhoseCertificateNamesAnotherIDIsRefused(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(30 * time.Second)
	n3 := c.Node("n3")
	if n3 == leader {
		if _, err := c.Admin(leader).TransferLeadership(t.Context(), "n1"); err != nil {
			t.Fatalf("move leadership off n3: %v", err)
		}
		leader = c.WaitLeader(30 * time.Second)
	}
	c.Stop(n3)
	// Swap n3's certificate for one naming n9, in place: the harness
	// writes n3's tls dir again at each start, so point --tls-dir elsewhere.
	wrong := c.ca.issue(t, "n9")
	flags := c.ExtraFlags
	c.ExtraFlags = append(append([]string{}, flags...), "--tls-dir="+wrong)
	c.Restart(n3)
	c.ExtraFlags = flags

	for i := range 5 {
		if ans, err := c.Buy(t.Context(), leader.HTTPURL, "", i+1); err != nil || ans.Status != 201 {
			t.Fatalf("purchase %d with n3 refused: %+v %v", i, ans, err)
		}
	}
	c.Eventually(20*time.Second, "the members refused n3's certificate", func() error {
		for _, n := range []*Node{leader, c.Followers(leader)[0]} {
			log := c.Log(n)
			if strings.Contains(log, "names CN=n9") && strings.Contains(log, "which its certificate does not name") {
				return nil
			}
		}
		return fmt.Errorf("no refusal logged yet")
	})
	if s, status, _ := c.Stats(n3.HTTPURL, "stale"); status == 200 && s.TotalBuys == 5 {
		t.Fatalf("n3 with a certificate naming n9 received the log: %+v", s)
	}
}

// TestDataFilesAreForTheNodesUserOnly: Raft's log, snapshots, the records
// and the identity are 0600 in 0700 directories (Raft's own snapshot store
// would create them 0644 in 0755 directories).
func TestDataFilesAreForTheNodesUserOnly(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(30 * time.Second)
	for i := range 3 {
		if ans, err := c.Buy(t.Context(), leader.HTTPURL, "", i+1); err != nil || ans.Status != 201 {
			t.Fatalf("purchase %d: %+v %v", i, ans, err)
		}
	}
	if _, err := c.Admin(leader).Snapshot(t.Context()); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	checked := 0
	err := filepath.WalkDir(leader.DataDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v: group or others may read it", path, perm)
		}
		checked++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 8 {
		t.Fatalf("only %d paths under %s; the snapshot or the stores are missing", checked, leader.DataDir())
	}
}

package peer

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// raftRequest is one request as NetworkTransport writes it: a type byte,
// the msgpack request, and for InstallSnapshot the snapshot's bytes.
type raftRequest struct {
	rpcType  byte
	req      any
	snapshot []byte
}

func (r raftRequest) write(t *testing.T, conn net.Conn) {
	t.Helper()
	w := bufio.NewWriter(conn)
	enc := codec.NewEncoder(w, raftMsgpackHandle())
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := w.WriteByte(r.rpcType); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(r.req); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(r.snapshot); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// readRaftRequest reads what the checking proxy passes to the transport.
func readRaftRequest(conn net.Conn, r *bufio.Reader, dec *codec.Decoder) (raftRequest, error) {
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rpcType, err := r.ReadByte()
	if err != nil {
		return raftRequest{}, err
	}
	var got raftRequest
	got.rpcType = rpcType
	switch rpcType {
	case rpcAppendEntries:
		got.req = &raft.AppendEntriesRequest{}
	case rpcRequestVote:
		got.req = &raft.RequestVoteRequest{}
	case rpcRequestPreVote:
		got.req = &raft.RequestPreVoteRequest{}
	case rpcTimeoutNow:
		got.req = &raft.TimeoutNowRequest{}
	case rpcInstallSnapshot:
		got.req = &raft.InstallSnapshotRequest{}
	}
	if err := dec.Decode(got.req); err != nil {
		return raftRequest{}, err
	}
	if is, ok := got.req.(*raft.InstallSnapshotRequest); ok {
		got.snapshot = make([]byte, is.Size)
		if _, err := io.ReadFull(r, got.snapshot); err != nil {
			return raftRequest{}, err
		}
	}
	return got, nil
}

func header(id, addr string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(addr)}
}

func TestRaftRequestsAreCheckedAgainstTheSendersCertificate(t *testing.T) {
	n := newTestNet(t, true)
	var refuseVotes atomic.Bool
	server := n.endpoint("n1", func(c *Config) { c.RefuseVotes = refuseVotes.Load })
	server.Serve()
	client := n.endpoint("n2", func(c *Config) {
		c.TLS = n.ca.identity(t, "n2", []testCA{n.ca}, "n2.peers.test")
	})
	self := client.Addr().String()
	snapshot := bytes.Repeat([]byte("snapshot"), 40<<10) // 320 KiB, more than the proxy's buffers

	appendEntries := func(h raft.RPCHeader) raftRequest {
		return raftRequest{rpcType: rpcAppendEntries, req: &raft.AppendEntriesRequest{
			RPCHeader: h, Term: 7, PrevLogEntry: 3, PrevLogTerm: 6, LeaderCommitIndex: 3,
			Entries: []*raft.Log{{Index: 4, Term: 7, Type: raft.LogCommand, Data: []byte("buy")}},
		}}
	}
	vote := func(h raft.RPCHeader) raftRequest {
		return raftRequest{rpcType: rpcRequestVote, req: &raft.RequestVoteRequest{RPCHeader: h, Term: 8, LastLogIndex: 4, LastLogTerm: 7}}
	}
	for _, tc := range []struct {
		name    string
		refuse  bool
		request raftRequest
		pass    bool
	}{
		{name: "append entries as itself", request: appendEntries(header("n2", self)), pass: true},
		{name: "address by its DNS name", request: appendEntries(header("n2", "n2.peers.test:7000")), pass: true},
		{name: "vote request as itself", request: vote(header("n2", self)), pass: true},
		{name: "install snapshot as itself", pass: true, request: raftRequest{
			rpcType: rpcInstallSnapshot,
			req: &raft.InstallSnapshotRequest{RPCHeader: header("n2", self), SnapshotVersion: raft.SnapshotVersionMax,
				Term: 7, LastLogIndex: 40, LastLogTerm: 7, Size: int64(len(snapshot))},
			snapshot: snapshot,
		}},
		{name: "append entries as another ID", request: appendEntries(header("n3", self))},
		{name: "vote request as another ID", request: vote(header("n1", self))},
		{name: "ID that only starts like its own", request: vote(header("n20", self))},
		{name: "no ID", request: appendEntries(header("", self))},
		{name: "address its certificate does not carry", request: appendEntries(header("n2", "10.1.2.3:7000"))},
		{name: "DNS name its certificate does not carry", request: appendEntries(header("n2", "n3.peers.test:7000"))},
		{name: "unknown request type", request: raftRequest{rpcType: 9, req: &raft.TimeoutNowRequest{RPCHeader: header("n2", self)}}},
		{name: "vote while votes are refused", refuse: true, request: vote(header("n2", self))},
		{name: "pre-vote while votes are refused", refuse: true, request: raftRequest{rpcType: rpcRequestPreVote,
			req: &raft.RequestPreVoteRequest{RPCHeader: header("n2", self), Term: 8, LastLogIndex: 4, LastLogTerm: 7}}},
		{name: "leadership hand-over while votes are refused", refuse: true, request: raftRequest{rpcType: rpcTimeoutNow,
			req: &raft.TimeoutNowRequest{RPCHeader: header("n2", self)}}},
		{name: "append entries while votes are refused", refuse: true, request: appendEntries(header("n2", self)), pass: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refuseVotes.Store(tc.refuse)
			conn, err := client.RaftLayer().Dial(raft.ServerAddress(server.Addr().String()), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			accepted, err := server.RaftLayer().Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer accepted.Close()
			tc.request.write(t, conn)

			r := bufio.NewReader(accepted)
			got, err := readRaftRequest(accepted, r, codec.NewDecoder(r, &codec.MsgpackHandle{}))
			if !tc.pass {
				if err == nil || isTimeout(err) {
					t.Fatalf("Raft was handed %+v (read err %v), want the request refused", got.req, err)
				}
				// The sender sees its connection closed, not an answer.
				expectClosedByPeer(t, conn, conn)
				return
			}
			if err != nil {
				t.Fatalf("the request did not reach Raft: %v", err)
			}
			if got.rpcType != tc.request.rpcType || !sameRequest(t, got.req, tc.request.req) || !bytes.Equal(got.snapshot, tc.request.snapshot) {
				t.Fatalf("Raft was handed type %d %+v with %d snapshot bytes, want type %d %+v with %d",
					got.rpcType, got.req, len(got.snapshot), tc.request.rpcType, tc.request.req, len(tc.request.snapshot))
			}
			// The proxy goes on with the next request on the connection.
			next := appendEntries(header("n2", self))
			next.write(t, conn)
			if got, err := readRaftRequest(accepted, r, codec.NewDecoder(r, &codec.MsgpackHandle{})); err != nil || !sameRequest(t, got.req, next.req) {
				t.Fatalf("second request on the connection: %+v, %v", got.req, err)
			}
		})
	}

	t.Run("without TLS any claim passes", func(t *testing.T) {
		plain := newTestNet(t, false)
		server := plain.endpoint("n1", nil)
		server.Serve()
		client := plain.endpoint("n2", nil)
		conn, err := client.RaftLayer().Dial(raft.ServerAddress(server.Addr().String()), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		accepted, err := server.RaftLayer().Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer accepted.Close()
		req := vote(header("n3", "10.1.2.3:7000"))
		req.write(t, conn)
		r := bufio.NewReader(accepted)
		if got, err := readRaftRequest(accepted, r, codec.NewDecoder(r, &codec.MsgpackHandle{})); err != nil || !sameRequest(t, got.req, req.req) {
			t.Fatalf("plain request: %+v, %v", got.req, err)
		}
	})
}

// sameRequest compares two requests by their msgpack encoding.
func sameRequest(t *testing.T, a, b any) bool {
	t.Helper()
	enc := func(v any) []byte {
		var buf bytes.Buffer
		if err := codec.NewEncoder(&buf, raftMsgpackHandle()).Encode(v); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	return bytes.Equal(enc(a), enc(b))
}

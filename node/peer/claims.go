package peer

import (
	"bufio"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// hashicorp/raft's NetworkTransport RPC type bytes (net_transport.go); they
// are part of its wire format and do not change.
const (
	rpcAppendEntries   byte = 0
	rpcRequestVote     byte = 1
	rpcInstallSnapshot byte = 2
	rpcTimeoutNow      byte = 3
	rpcRequestPreVote  byte = 4
)

// claimCheck decides whether a Raft request may reach Raft.
type claimCheck struct {
	// cert is the peer's verified certificate; nil without TLS.
	cert        *x509.Certificate
	namesID     func(*x509.Certificate, string) bool
	refuseVotes func() bool
	logger      *slog.Logger
}

var errRefused = errors.New("raft request refused")

// check refuses a request whose sender claims an ID or address its
// certificate does not name, and vote requests while this node may not vote.
func (c claimCheck) check(rpcType byte, hdr raft.RPCHeader) error {
	switch rpcType {
	case rpcRequestVote, rpcRequestPreVote, rpcTimeoutNow:
		if c.refuseVotes() {
			return fmt.Errorf("%w: this node lost its data and may not vote until it is a member again", errRefused)
		}
	}
	if c.cert == nil {
		return nil
	}
	id := string(hdr.ID)
	if id == "" || !c.namesID(c.cert, id) {
		return fmt.Errorf("%w: the sender claims server ID %q, which its certificate does not name", errRefused, id)
	}
	if len(hdr.Addr) > 0 && !certHasHost(c.cert, string(hdr.Addr)) {
		return fmt.Errorf("%w: the sender %s claims address %q, which its certificate does not carry", errRefused, id, hdr.Addr)
	}
	return nil
}

// certHasHost reports whether addr's host is one of cert's DNS names or IPs.
func certHasHost(cert *x509.Certificate, addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return slices.ContainsFunc(cert.IPAddresses, ip.Equal)
	}
	return slices.Contains(cert.DNSNames, host)
}

// checkedConn stands between an accepted Raft connection and the transport:
// a goroutine decodes each request from the wire, checks its claims, and
// passes it on re-encoded through a pipe; answers go straight back. A
// refused request closes the connection, so its sender sees an error at once
// and Raft never sees the request.
type checkedConn struct {
	// Writes, addresses and deadlines go to the real connection; a read
	// deadline there ends the copying goroutine, and so the pipe.
	net.Conn
	in    *bufio.Reader
	pr    *io.PipeReader
	pw    *io.PipeWriter
	check claimCheck
}

func newCheckedConn(conn net.Conn, in *bufio.Reader, check claimCheck) *checkedConn {
	pr, pw := io.Pipe()
	return &checkedConn{Conn: conn, in: in, pr: pr, pw: pw, check: check}
}

func (c *checkedConn) Read(p []byte) (int, error) { return c.pr.Read(p) }

func (c *checkedConn) Close() error {
	c.pr.Close()
	return c.Conn.Close()
}

// run copies checked requests into the pipe until the connection ends.
func (c *checkedConn) run() {
	err := c.copyRequests()
	if errors.Is(err, errRefused) {
		c.check.logger.Warn("Refused a Raft request", "remote", c.Conn.RemoteAddr().String(), "reason", err)
	}
	c.pw.CloseWithError(err)
	c.Conn.Close()
}

func (c *checkedConn) copyRequests() error {
	dec := codec.NewDecoder(c.in, &codec.MsgpackHandle{})
	out := bufio.NewWriterSize(c.pw, 64<<10)
	enc := codec.NewEncoder(out, raftMsgpackHandle())
	for {
		rpcType, err := c.in.ReadByte()
		if err != nil {
			return err
		}
		var req interface{ GetRPCHeader() raft.RPCHeader }
		var snapshotSize int64
		switch rpcType {
		case rpcAppendEntries:
			req = &raft.AppendEntriesRequest{}
		case rpcRequestVote:
			req = &raft.RequestVoteRequest{}
		case rpcRequestPreVote:
			req = &raft.RequestPreVoteRequest{}
		case rpcTimeoutNow:
			req = &raft.TimeoutNowRequest{}
		case rpcInstallSnapshot:
			req = &raft.InstallSnapshotRequest{}
		default:
			return fmt.Errorf("%w: unknown raft rpc type %d", errRefused, rpcType)
		}
		if err := dec.Decode(req); err != nil {
			return fmt.Errorf("decode raft request: %w", err)
		}
		if err := c.check.check(rpcType, req.GetRPCHeader()); err != nil {
			return err
		}
		if is, ok := req.(*raft.InstallSnapshotRequest); ok {
			snapshotSize = is.Size
		}
		if err := out.WriteByte(rpcType); err != nil {
			return err
		}
		if err := enc.Encode(req); err != nil {
			return err
		}
		if snapshotSize > 0 {
			if _, err := io.CopyN(out, c.in, snapshotSize); err != nil {
				return fmt.Errorf("copy snapshot: %w", err)
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// raftMsgpackHandle is the handle NetworkTransport encodes requests with, so
// that Raft decodes what the sender meant (times as binary, not msgpack's
// built-in extension).
func raftMsgpackHandle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.TimeNotBuiltin = true
	return h
}

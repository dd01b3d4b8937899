package peer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The peer RPC wire format. After the channel byte, a connection carries
// request/answer pairs, one at a time:
//
//	request: method (1 byte) | payload length (uvarint) | payload
//	answer:  status (1 byte) | payload length (uvarint) | payload
//
// An answer with a status other than statusOK carries an error message as
// its payload. Lengths are bounded on both sides: a peer that announces more
// than the limit is cut off before anything is allocated.

// Method names one peer RPC. Numbers are never reused.
type Method byte

// Peer RPC methods. The store registers a handler for each.
const (
	// MethodForwardBuys hands a batch of purchases to the leader.
	MethodForwardBuys Method = 1
	// MethodReadIndex asks the leader for a read index.
	MethodReadIndex Method = 2
	// MethodPublishNode asks the leader to record the caller's URLs.
	MethodPublishNode Method = 3
	// MethodStatus asks a member for its own status.
	MethodStatus Method = 4
	// MethodRejoin asks the leader to take the caller back as a new
	// incarnation after it lost its data.
	MethodRejoin Method = 5
)

func (m Method) String() string {
	switch m {
	case MethodForwardBuys:
		return "forward-buys"
	case MethodReadIndex:
		return "read-index"
	case MethodPublishNode:
		return "publish-node"
	case MethodStatus:
		return "status"
	case MethodRejoin:
		return "rejoin"
	}
	return fmt.Sprintf("method-%d", byte(m))
}

// Answer status codes.
const (
	statusOK byte = 0
	// statusError carries a Code byte and a message.
	statusError byte = 1
)

// Code classifies a failed call, so the caller can tell "try the leader"
// from "refused" without parsing messages.
type Code byte

// Error codes of a failed call.
const (
	CodeInternal     Code = 1
	CodeNotLeader    Code = 2
	CodeNoLeader     Code = 3
	CodeForbidden    Code = 4
	CodeBadRequest   Code = 5
	CodeUnknown      Code = 6 // unknown method
	CodeUnavailable  Code = 7 // the callee cannot serve now (halted, closing)
	CodeStateUnknown Code = 8 // a write's outcome is unknown
)

// Error is a failed call as the callee answered it.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("peer answered %d: %s", e.Code, e.Message) }

// Errorf builds an Error for a handler to return.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of a call's error, 0 when it is not an answered
// error (a network failure, a timeout).
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// errTooLarge is returned for a frame over its limit.
var errTooLarge = errors.New("frame exceeds its size limit")

func writeFrame(w *bufio.Writer, head byte, payload []byte) error {
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = head
	n := binary.PutUvarint(hdr[1:], uint64(len(payload)))
	if _, err := w.Write(hdr[:1+n]); err != nil {
		return err
	}
	if _, err := w.Write(payload); err != nil {
		return err
	}
	return w.Flush()
}

// readFrame reads one frame whose payload is at most limit bytes.
func readFrame(r *bufio.Reader, limit int) (byte, []byte, error) {
	head, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, fmt.Errorf("read frame length: %w", err)
	}
	if size > uint64(limit) {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, size, limit)
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("read frame payload: %w", err)
	}
	return head, payload, nil
}

func encodeError(e *Error) []byte {
	return append([]byte{byte(e.Code)}, e.Message...)
}

func decodeError(payload []byte) *Error {
	if len(payload) == 0 {
		return &Error{Code: CodeInternal, Message: "empty error answer"}
	}
	return &Error{Code: Code(payload[0]), Message: string(payload[1:])}
}

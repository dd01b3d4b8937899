package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// CommandType is the first byte of every Raft log command. Types are never
// reused: a retired command keeps its number so old logs still replay.
type CommandType byte

// Command types.
const (
	// CmdBuyBatch records a batch of purchases stamped with the leader's time.
	CmdBuyBatch CommandType = 1
	// CmdPublishNode records a node's client and admin URLs. The leader also
	// applies it at the start of each term, to commit an entry of its own term
	// before it serves linearizable reads.
	CmdPublishNode CommandType = 2
)

// The payload version that follows the type byte. A later node keeps the
// decoders of every version it has ever written.
const (
	buyBatchV1    byte = 1
	publishNodeV1 byte = 1
)

// errMalformed is returned for a command whose bytes cannot be decoded.
var errMalformed = errors.New("malformed command")

// Purchase is one purchase as the client sent it, validated and normalised.
type Purchase struct {
	UserID      int64
	PromotionID int64
	ProductID   int64
	// AmountCents is the amount in integer cents.
	AmountCents int64
	// IP is the client-given or remote address, in canonical text form.
	IP string
	// ClientTimestamp is the client's RFC 3339 timestamp as given, or empty.
	ClientTimestamp string
	// IdempotencyKey is the client's Idempotency-Key header, or empty.
	IdempotencyKey string
	// Fingerprint identifies the request's content, so that a key reused for
	// a different purchase is refused rather than answered with another's
	// result.
	Fingerprint uint64
}

// BuyBatch is the payload of CmdBuyBatch.
type BuyBatch struct {
	// LeaderTime is the proposing leader's clock in Unix nanoseconds. The
	// state machine never lets recorded times go backwards, so a leader with
	// a slow clock cannot reorder history.
	LeaderTime int64
	Purchases  []Purchase
}

// NodeInfo is the payload of CmdPublishNode.
type NodeInfo struct {
	ID       string
	HTTPURL  string
	AdminURL string
}

// EncodeBuyBatch encodes a CmdBuyBatch command.
func EncodeBuyBatch(b BuyBatch) []byte {
	buf := make([]byte, 0, 16+len(b.Purchases)*48)
	buf = append(buf, byte(CmdBuyBatch), buyBatchV1)
	buf = binary.AppendVarint(buf, b.LeaderTime)
	buf = binary.AppendUvarint(buf, uint64(len(b.Purchases)))
	for i := range b.Purchases {
		buf = appendPurchase(buf, &b.Purchases[i])
	}
	return buf
}

// EncodePublishNode encodes a CmdPublishNode command.
func EncodePublishNode(n NodeInfo) []byte {
	buf := []byte{byte(CmdPublishNode), publishNodeV1}
	buf = appendString(buf, n.ID)
	buf = appendString(buf, n.HTTPURL)
	return appendString(buf, n.AdminURL)
}

func appendPurchase(buf []byte, p *Purchase) []byte {
	buf = binary.AppendVarint(buf, p.UserID)
	buf = binary.AppendVarint(buf, p.PromotionID)
	buf = binary.AppendVarint(buf, p.ProductID)
	buf = binary.AppendVarint(buf, p.AmountCents)
	buf = appendString(buf, p.IP)
	buf = appendString(buf, p.ClientTimestamp)
	buf = appendString(buf, p.IdempotencyKey)
	return binary.LittleEndian.AppendUint64(buf, p.Fingerprint)
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// decoder reads the fields appendPurchase and friends wrote; the first error
// sticks so callers check once at the end.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.err = errMalformed
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = errMalformed
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.buf) < 8 {
		d.err = errMalformed
		return 0
	}
	v := binary.LittleEndian.Uint64(d.buf)
	d.buf = d.buf[8:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.buf)) {
		d.err = errMalformed
		return ""
	}
	s := string(d.buf[:n])
	d.buf = d.buf[n:]
	return s
}

func (d *decoder) purchase(p *Purchase) {
	p.UserID = d.varint()
	p.PromotionID = d.varint()
	p.ProductID = d.varint()
	p.AmountCents = d.varint()
	p.IP = d.string()
	p.ClientTimestamp = d.string()
	p.IdempotencyKey = d.string()
	p.Fingerprint = d.uint64()
}

// commandHeader splits a command into its type, version and payload.
func commandHeader(data []byte) (CommandType, byte, []byte, error) {
	if len(data) < 2 {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes", errMalformed, len(data))
	}
	return CommandType(data[0]), data[1], data[2:], nil
}

func decodeBuyBatch(version byte, payload []byte) (BuyBatch, error) {
	if version != buyBatchV1 {
		return BuyBatch{}, fmt.Errorf("buy batch version %d is newer than this node", version)
	}
	d := decoder{buf: payload}
	b := BuyBatch{LeaderTime: d.varint()}
	n := d.uvarint()
	if d.err == nil && n > uint64(len(payload)) {
		return BuyBatch{}, fmt.Errorf("%w: %d purchases in %d bytes", errMalformed, n, len(payload))
	}
	b.Purchases = make([]Purchase, n)
	for i := range b.Purchases {
		d.purchase(&b.Purchases[i])
	}
	if d.err != nil {
		return BuyBatch{}, fmt.Errorf("decode buy batch: %w", d.err)
	}
	return b, nil
}

func decodePublishNode(version byte, payload []byte) (NodeInfo, error) {
	if version != publishNodeV1 {
		return NodeInfo{}, fmt.Errorf("publish node version %d is newer than this node", version)
	}
	d := decoder{buf: payload}
	n := NodeInfo{ID: d.string(), HTTPURL: d.string(), AdminURL: d.string()}
	if d.err != nil {
		return NodeInfo{}, fmt.Errorf("decode publish node: %w", d.err)
	}
	return n, nil
}

// DecodeBuyBatch decodes a CmdBuyBatch command; followers use the same
// encoding to hand a batch of purchases to the leader.
func DecodeBuyBatch(data []byte) (BuyBatch, error) {
	typ, version, payload, err := commandHeader(data)
	if err != nil {
		return BuyBatch{}, err
	}
	if typ != CmdBuyBatch {
		return BuyBatch{}, fmt.Errorf("%w: command type %d is not a buy batch", errMalformed, typ)
	}
	return decodeBuyBatch(version, payload)
}

package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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
// decoders of every version it has ever written. Version 2 of both commands
// is version 1's payload followed by a CRC-32C of every byte before it (type,
// version and payload), so that a byte changed on disk or on the wire is
// found before the entry is applied. Encoders write version 2.
const (
	buyBatchV1    byte = 1
	buyBatchV2    byte = 2
	publishNodeV1 byte = 1
	publishNodeV2 byte = 2
)

// checksumSize is the length of a v2 command's trailing CRC-32C.
const checksumSize = 4

var (
	// errMalformed is returned for a command whose bytes cannot be decoded.
	errMalformed = errors.New("malformed command")
	// ErrChecksumMismatch is returned for a command whose bytes do not match
	// its checksum: it was changed after it was written.
	ErrChecksumMismatch = errors.New("command checksum mismatch")
)

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

// EncodeBuyBatch encodes a CmdBuyBatch command (version 2).
func EncodeBuyBatch(b BuyBatch) []byte {
	buf := make([]byte, 0, 16+len(b.Purchases)*48+checksumSize)
	buf = append(buf, byte(CmdBuyBatch), buyBatchV2)
	buf = binary.AppendVarint(buf, b.LeaderTime)
	buf = binary.AppendUvarint(buf, uint64(len(b.Purchases)))
	for i := range b.Purchases {
		buf = appendPurchase(buf, &b.Purchases[i])
	}
	return appendChecksum(buf)
}

// EncodePublishNode encodes a CmdPublishNode command (version 2).
func EncodePublishNode(n NodeInfo) []byte {
	buf := []byte{byte(CmdPublishNode), publishNodeV2}
	buf = appendString(buf, n.ID)
	buf = appendString(buf, n.HTTPURL)
	buf = appendString(buf, n.AdminURL)
	return appendChecksum(buf)
}

// appendChecksum ends a v2 command with the CRC-32C of all its bytes.
func appendChecksum(buf []byte) []byte {
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, crcTable))
}

// verifiedPayload returns a v2 command's payload once its checksum matches.
func verifiedPayload(data []byte) ([]byte, error) {
	if len(data) < 2+checksumSize {
		return nil, fmt.Errorf("%w: %d bytes", errMalformed, len(data))
	}
	body := data[:len(data)-checksumSize]
	want := binary.BigEndian.Uint32(data[len(body):])
	if got := crc32.Checksum(body, crcTable); got != want {
		return nil, fmt.Errorf("%w: computed %08x, stored %08x", ErrChecksumMismatch, got, want)
	}
	return body[2:], nil
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

// commandHeader reads a command's type and version.
func commandHeader(data []byte) (CommandType, byte, error) {
	if len(data) < 2 {
		return 0, 0, fmt.Errorf("%w: %d bytes", errMalformed, len(data))
	}
	return CommandType(data[0]), data[1], nil
}

// decodeBuyBatch decodes a CmdBuyBatch command of any known version; data
// is the whole command, type byte included, since v2's checksum covers it.
func decodeBuyBatch(version byte, data []byte) (BuyBatch, error) {
	payload := data[2:]
	switch version {
	case buyBatchV1:
	case buyBatchV2:
		var err error
		if payload, err = verifiedPayload(data); err != nil {
			return BuyBatch{}, fmt.Errorf("buy batch: %w", err)
		}
	default:
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
	if d.err == nil && len(d.buf) != 0 {
		d.err = fmt.Errorf("%w: %d bytes after the last purchase", errMalformed, len(d.buf))
	}
	if d.err != nil {
		return BuyBatch{}, fmt.Errorf("decode buy batch: %w", d.err)
	}
	return b, nil
}

// decodePublishNode decodes a CmdPublishNode command of any known version;
// data is the whole command.
func decodePublishNode(version byte, data []byte) (NodeInfo, error) {
	payload := data[2:]
	switch version {
	case publishNodeV1:
	case publishNodeV2:
		var err error
		if payload, err = verifiedPayload(data); err != nil {
			return NodeInfo{}, fmt.Errorf("publish node: %w", err)
		}
	default:
		return NodeInfo{}, fmt.Errorf("publish node version %d is newer than this node", version)
	}
	d := decoder{buf: payload}
	n := NodeInfo{ID: d.string(), HTTPURL: d.string(), AdminURL: d.string()}
	if d.err == nil && len(d.buf) != 0 {
		d.err = fmt.Errorf("%w: %d bytes after the addresses", errMalformed, len(d.buf))
	}
	if d.err != nil {
		return NodeInfo{}, fmt.Errorf("decode publish node: %w", d.err)
	}
	return n, nil
}

// DecodeBuyBatch decodes a CmdBuyBatch command and verifies its checksum;
// followers use the same encoding to hand a batch of purchases to the
// leader, so a batch damaged on the way is refused too.
func DecodeBuyBatch(data []byte) (BuyBatch, error) {
	typ, version, err := commandHeader(data)
	if err != nil {
		return BuyBatch{}, err
	}
	if typ != CmdBuyBatch {
		return BuyBatch{}, fmt.Errorf("%w: command type %d is not a buy batch", errMalformed, typ)
	}
	return decodeBuyBatch(version, data)
}

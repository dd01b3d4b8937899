package ledger

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

// goldenBuyBatchV1 is a CmdBuyBatch v1 entry as nodes before checksums wrote
// it. Every later version must still decode it: old logs are replayed
// forever.
const goldenBuyBatchV1 = "010180b4891302020406d00f093139322e302e322e3114323032362d30312d30315430303a30303a30305a056b65792d31efcdab8967452301020406000000000000000000000000"

// goldenBuyBatchV2 is the same batch as this version writes it: v1's payload
// under version byte 2, then the CRC-32C (Castagnoli, big-endian) of every
// byte before it.
const goldenBuyBatchV2 = "010280b4891302020406d00f093139322e302e322e3114323032362d30312d30315430303a30303a30305a056b65792d31efcdab8967452301020406000000000000000000000000" + "6c3fdf0c"

// goldenPublishNodeV2 is a CmdPublishNode v2 entry for n1.
const goldenPublishNodeV2 = "0202026e3108687474703a2f2f6108687474703a2f2f62" + "f1c22321"

func goldenBatch() BuyBatch {
	return BuyBatch{LeaderTime: 2_000_000_000 / 100, Purchases: []Purchase{
		{UserID: 1, PromotionID: 2, ProductID: 3, AmountCents: 1000, IP: "192.0.2.1", ClientTimestamp: "2026-01-01T00:00:00Z", IdempotencyKey: "key-1", Fingerprint: 0x0123456789abcdef},
		{UserID: 1, PromotionID: 2, ProductID: 3},
	}}
}

func goldenNode() NodeInfo { return NodeInfo{ID: "n1", HTTPURL: "http://a", AdminURL: "http://b"} }

// asV1 rewrites a v2 command as v1 wrote it: the same payload, without the
// checksum.
func asV1(cmd []byte) []byte {
	out := bytes.Clone(cmd[:len(cmd)-checksumSize])
	out[1] = 1
	return out
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	raw, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestBuyBatchV2EncodingIsStable(t *testing.T) {
	got := hex.EncodeToString(EncodeBuyBatch(goldenBatch()))
	if got != goldenBuyBatchV2 {
		t.Fatalf("the v2 encoding changed:\n got %s\nwant %s\nadd a new version instead of changing v2", got, goldenBuyBatchV2)
	}
	decoded, err := DecodeBuyBatch(mustHex(t, goldenBuyBatchV2))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decoded, goldenBatch()) {
		t.Fatalf("decoded %+v", decoded)
	}
	if got := hex.EncodeToString(EncodePublishNode(goldenNode())); got != goldenPublishNodeV2 {
		t.Fatalf("the publish node v2 encoding changed:\n got %s\nwant %s", got, goldenPublishNodeV2)
	}
	node, err := decodePublishNode(publishNodeV2, mustHex(t, goldenPublishNodeV2))
	if err != nil || node != goldenNode() {
		t.Fatalf("decoded %+v, %v", node, err)
	}
}

func TestBuyBatchV1StillDecodes(t *testing.T) {
	// v2 is v1 plus a checksum: the payload itself did not change.
	if got := hex.EncodeToString(asV1(EncodeBuyBatch(goldenBatch()))); got != goldenBuyBatchV1 {
		t.Fatalf("v2's payload differs from v1's:\n got %s\nwant %s", got, goldenBuyBatchV1)
	}
	decoded, err := DecodeBuyBatch(mustHex(t, goldenBuyBatchV1))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decoded, goldenBatch()) {
		t.Fatalf("decoded %+v", decoded)
	}
	node, err := decodePublishNode(publishNodeV1, asV1(EncodePublishNode(goldenNode())))
	if err != nil || node != goldenNode() {
		t.Fatalf("publish node v1: decoded %+v, %v", node, err)
	}
}

func TestEveryFlippedByteOfAV2CommandIsCaught(t *testing.T) {
	good := mustHex(t, goldenBuyBatchV2)
	// Past the type byte, any change must be refused; the checksum is what
	// catches changes that still decode (a version byte turned to 1 leaves
	// the checksum as trailing bytes).
	for i := 1; i < len(good); i++ {
		for _, mask := range []byte{0x01, 0x03, 0x80, 0xff} {
			bad := bytes.Clone(good)
			bad[i] ^= mask
			if b, err := DecodeBuyBatch(bad); err == nil {
				t.Fatalf("byte %d ^ %#x decoded: %+v", i, mask, b)
			}
		}
	}
	bad := bytes.Clone(good)
	bad[30] ^= 0x01
	if _, err := DecodeBuyBatch(bad); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("a flipped payload byte answered %v, want ErrChecksumMismatch", err)
	}
}

func TestMalformedCommandsAreRejected(t *testing.T) {
	good := EncodeBuyBatch(goldenBatch())
	for name, data := range map[string][]byte{
		"empty":            nil,
		"type only":        {byte(CmdBuyBatch)},
		"newer version":    append([]byte{byte(CmdBuyBatch), 9}, good[2:]...),
		"truncated":        good[:len(good)-3],
		"no checksum":      good[:len(good)-checksumSize],
		"v1 truncated":     asV1(good)[:len(good)-checksumSize-3],
		"v1 trailing byte": append(asV1(good), 0),
		"huge count":       {byte(CmdBuyBatch), buyBatchV1, 0, 0xff, 0xff, 0xff, 0x0f},
		"publish a node":   EncodePublishNode(NodeInfo{ID: "n1"}),
	} {
		if _, err := DecodeBuyBatch(data); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, err := decodePublishNode(publishNodeV1, []byte{byte(CmdPublishNode), publishNodeV1, 5, 'a'}); err == nil {
		t.Error("truncated publish node decoded")
	}
}

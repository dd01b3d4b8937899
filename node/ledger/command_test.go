package ledger

import (
	"encoding/hex"
	"reflect"
	"testing"
)

// goldenBuyBatchV1 is a CmdBuyBatch v1 entry as this version writes it. A
// later version must still decode it: old logs are replayed forever.
const goldenBuyBatchV1 = "010180b4891302020406d00f093139322e302e322e3114323032362d30312d30315430303a30303a30305a056b65792d31efcdab8967452301020406000000000000000000000000"

func goldenBatch() BuyBatch {
	return BuyBatch{LeaderTime: 2_000_000_000 / 100, Purchases: []Purchase{
		{UserID: 1, PromotionID: 2, ProductID: 3, AmountCents: 1000, IP: "192.0.2.1", ClientTimestamp: "2026-01-01T00:00:00Z", IdempotencyKey: "key-1", Fingerprint: 0x0123456789abcdef},
		{UserID: 1, PromotionID: 2, ProductID: 3},
	}}
}

func TestBuyBatchEncodingIsStable(t *testing.T) {
	got := hex.EncodeToString(EncodeBuyBatch(goldenBatch()))
	if got != goldenBuyBatchV1 {
		t.Fatalf("the v1 encoding changed:\n got %s\nwant %s\nadd a new version instead of changing v1", got, goldenBuyBatchV1)
	}
	raw, _ := hex.DecodeString(goldenBuyBatchV1)
	decoded, err := DecodeBuyBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decoded, goldenBatch()) {
		t.Fatalf("decoded %+v", decoded)
	}
}

func TestMalformedCommandsAreRejected(t *testing.T) {
	good := EncodeBuyBatch(goldenBatch())
	for name, data := range map[string][]byte{
		"empty":          nil,
		"type only":      {byte(CmdBuyBatch)},
		"newer version":  append([]byte{byte(CmdBuyBatch), 9}, good[2:]...),
		"truncated":      good[:len(good)-3],
		"huge count":     {byte(CmdBuyBatch), buyBatchV1, 0, 0xff, 0xff, 0xff, 0x0f},
		"publish a node": EncodePublishNode(NodeInfo{ID: "n1"}),
	} {
		if _, err := DecodeBuyBatch(data); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, err := decodePublishNode(publishNodeV1, []byte{5, 'a'}); err == nil {
		t.Error("truncated publish node decoded")
	}
}

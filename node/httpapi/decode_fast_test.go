package httpapi

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/buytracker/buytracker/node/ledger"
)

// FuzzDecodeBuyFastAgreesWithStrict checks the fast path against the strict
// decoder: whatever the fast path accepts, the strict decoder accepts as the
// same purchase.
func FuzzDecodeBuyFastAgreesWithStrict(f *testing.F) {
	for _, seed := range fastPathSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := decodeBuyFast(body, "192.0.2.1", "k")
		if !ok {
			return
		}
		strict, aerr := decodeBuyStrict(body, "192.0.2.1", "k")
		if aerr != nil {
			t.Fatalf("fast path accepted %q, the strict decoder rejects it: %v", body, aerr)
		}
		if fast != strict {
			t.Fatalf("%q: fast path %+v, strict %+v", body, fast, strict)
		}
	})
}

var fastPathSeeds = []string{
	validBuy,
	`{"user_id":123,"promotion_id":7,"product_id":42,"product_amount":"19.99"}`,
	` { "user_id" : 1 ,"promotion_id":2,"product_id":3,"product_amount":0.5 } ` + "\n",
	`{"user_id":9223372036854775807,"promotion_id":1,"product_id":1,"product_amount":99999999.99}`,
	`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":"007.5","ip_address":"::ffff:1.2.3.4","timestamp":"2026-01-01T00:00:00Z"}`,
	`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":"1.999"}`,
	`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":01}`,
	`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"user_id":2}`,
	`{"USER_ID":1,"promotion_id":2,"product_id":3,"product_amount":1}`,
	`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"ip_address":""}`,
	`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"timestamp":null}`,
	`{"user_id":1e2,"promotion_id":2,"product_id":3,"product_amount":1}`,
	`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1}x`,
	`{"user_id":1,"User_Id":5,"promotion_id":2,"product_id":3,"product_amount":1}`,
	`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"timestamp":"2026-11-25T10:00:00.1111111111111111111111111111111111111111111Z"}`,
	`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"timestamp":"2026-11-25T10:00:00.11111111111111111111111111111111111111111111Z"}`,
	`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"ip_address":"0000:0000:0000:0000:0000:ffff:255.255.255.255"}`,
	`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"ip_address":"0000:0000:0000:0000:0000:ffff:255.255.255.255%"}`,
}

// TestDecodeBuyFastAgreesWithStrict runs the seeds and many random bodies of
// the plain shape, some mutated, through both decoders.
func TestDecodeBuyFastAgreesWithStrict(t *testing.T) {
	bodies := append([]string(nil), fastPathSeeds...)
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"0", "1", "9223372036854775807", "9223372036854775808", "-1", "01", "1.5", "1e2", `"2"`, "null",
		`"19.99"`, `"0.1"`, `"99999999.99"`, `"100000000.00"`, "99999999.99", "100000000", `""`, `"1.2.3.4"`, `"::1"`,
		`"fe80::1%eth0"`, `"2026-11-25T10:00:00Z"`, `"2026-11-25T10:00:00.123+01:00"`, `"yesterday"`, `"\u0031"`, "true", "{}", "[]",
		`"2026-11-25T10:00:00.1111111111111111111111111111111111111111111Z"`, `"2026-11-25T10:00:00.11111111111111111111111111111111111111111111Z"`}
	fields := []string{"user_id", "promotion_id", "product_id", "product_amount", "ip_address", "timestamp", "User_Id", "Timestamp", "other"}
	for range 20000 {
		b := []byte{'{'}
		for k := range 4 + rng.IntN(4) {
			if k > 0 {
				b = append(b, ',')
			}
			name := fields[k%4]
			if k >= 4 || rng.IntN(20) == 0 {
				name = fields[rng.IntN(len(fields))]
			}
			b = strconv.AppendQuote(b, name)
			b = append(b, ':')
			if rng.IntN(3) == 0 {
				b = append(b, pieces[rng.IntN(len(pieces))]...)
			} else {
				b = strconv.AppendInt(b, 1+rng.Int64N(1000000), 10)
			}
		}
		b = append(b, '}')
		if rng.IntN(10) == 0 { // a random byte changed
			b[rng.IntN(len(b))] = byte(rng.IntN(128))
		}
		bodies = append(bodies, string(b))
	}
	accepted := 0
	for _, body := range bodies {
		fast, ok := decodeBuyFast([]byte(body), "192.0.2.1", "k")
		if !ok {
			continue
		}
		accepted++
		strict, aerr := decodeBuyStrict([]byte(body), "192.0.2.1", "k")
		if aerr != nil {
			t.Fatalf("fast path accepted %q, the strict decoder rejects it: %v", body, aerr)
		}
		if fast != strict {
			t.Fatalf("%q: fast path %+v, strict %+v", body, fast, strict)
		}
	}
	if accepted < len(bodies)/50 {
		t.Fatalf("fast path accepted only %d of %d bodies", accepted, len(bodies))
	}
}

// The fingerprint is stored in the log: it must hash exactly the text the
// first version hashed.
func TestFingerprintHashesTheOriginalText(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		p := ledger.Purchase{UserID: rng.Int64(), PromotionID: rng.Int64(), ProductID: rng.Int64(), AmountCents: rng.Int64N(maxAmountCents + 1)}
		ip := ""
		if rng.IntN(2) == 0 {
			ip = "2001:db8::" + strconv.Itoa(rng.IntN(65536))
			p.ClientTimestamp = "2026-11-25T10:00:00.123456789+01:00"
		}
		h := fnv.New64a()
		fmt.Fprintf(h, "%d|%d|%d|%d|%s|%s", p.UserID, p.PromotionID, p.ProductID, p.AmountCents, ip, p.ClientTimestamp)
		if got, want := fingerprint(&p, ip), h.Sum64(); got != want {
			t.Fatalf("fingerprint(%+v, %q) = %x, want %x", p, ip, got, want)
		}
	}
}

package history

import (
	"path/filepath"
	"reflect"
	"sync"
	"testing"
)

func TestRecorderKeepsConcurrentOperationsWithMonotonicTimes(t *testing.T) {
	r := NewRecorder()
	const clients, each = 8, 50
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				id := r.Begin(Op{Client: c, Kind: KindRead})
				out := Op{Client: c, Kind: KindRead, Outcome: OK, ReadBuys: uint64(i)}
				if i%10 == 9 {
					out.Outcome = Unknown
				}
				r.End(id, out)
			}
		})
	}
	wg.Wait()
	ops := r.Ops()
	if len(ops) != clients*each {
		t.Fatalf("%d ops recorded, want %d", len(ops), clients*each)
	}
	last := map[int]Op{}
	for i, op := range ops {
		if op.Outcome == Unknown {
			if op.Returned() {
				t.Fatalf("op %d is unknown but has Return %v", i, op.Return)
			}
			continue
		}
		if op.Return < op.Call {
			t.Fatalf("op %d returned (%v) before it was called (%v)", i, op.Return, op.Call)
		}
		if prev, ok := last[op.Client]; ok && op.Call < prev.Return {
			t.Fatalf("client %d: op called at %v before its previous op returned at %v", op.Client, op.Call, prev.Return)
		}
		last[op.Client] = op
	}
}

func TestEndAgainKeepsTheFirstInvocation(t *testing.T) {
	r := NewRecorder()
	id := r.Begin(Op{Kind: KindBuy, Key: "k"})
	r.End(id, Op{Kind: KindBuy, Key: "k", Outcome: Unknown, Call: 12345678})
	first := r.Ops()[0]
	if first.Returned() || first.Call == 12345678 {
		t.Fatalf("unknown end: %+v", first)
	}
	r.End(id, Op{Kind: KindBuy, Key: "k", Outcome: OK, PurchaseID: 3})
	got := r.Ops()[0]
	if got.Call != first.Call || !got.Returned() || got.Return < got.Call || got.PurchaseID != 3 {
		t.Fatalf("settled op %+v, first invocation %v", got, first.Call)
	}
}

func TestHistoryFileRoundTrips(t *testing.T) {
	r := NewRecorder()
	id := r.Begin(Op{Client: 2, Kind: KindBuy, Key: "k-1", PromotionID: 3, AmountCents: 1234, Node: "http://10.0.0.1:8080"})
	r.End(id, Op{Client: 2, Kind: KindBuy, Key: "k-1", PromotionID: 3, AmountCents: 1234, Outcome: OK, PurchaseID: 7, TotalBuys: 7, Attempts: 2, LastError: "504"})
	r.Begin(Op{Client: 1, Kind: KindRead, Consistency: "lease", ReadPromotion: 2})
	path := filepath.Join(t.TempDir(), "history.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := r.Ops(); !reflect.DeepEqual(got, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}
	if _, err := ReadJSON(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("reading a missing file gave no error")
	}
}

func TestParseCents(t *testing.T) {
	good := map[string]int64{"0.00": 0, "12.34": 1234, "0.5": 50, "7": 700, "99999999.99": 9999999999, "1.05": 105}
	for in, want := range good {
		if got, err := ParseCents(in); err != nil || got != want {
			t.Errorf("ParseCents(%q) = %d, %v; want %d", in, got, err, want)
		}
		if in == FormatCents(want) {
			continue
		}
		if back, _ := ParseCents(FormatCents(want)); back != want {
			t.Errorf("FormatCents(%d) = %q does not parse back", want, FormatCents(want))
		}
	}
	for _, in := range []string{"", ".5", "1.", "1.234", "-1.00", "+1", "1e2", "1,00", "abc", "99999999999999999999"} {
		if got, err := ParseCents(in); err == nil {
			t.Errorf("ParseCents(%q) = %d, want an error", in, got)
		}
	}
	if got := FormatCents(1205); got != "12.05" {
		t.Errorf("FormatCents(1205) = %q", got)
	}
}

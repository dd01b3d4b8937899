package store_test

import (
	"errors"
	"testing"

	"github.com/buytracker/buytracker/node/internal/testnode"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/store"
)

// The judgement of digest comparisons, on a real single-node store: a node
// the voters' majority disagrees with halts; one that disagrees with a
// member while no majority decides answers nothing until one agrees with it.
func TestDigestJudgement(t *testing.T) {
	agree := func(id string) store.DigestVote { return store.DigestVote{ID: id, Voter: true, Agree: true} }
	differ := func(id string) store.DigestVote { return store.DigestVote{ID: id, Voter: true, Agree: false} }

	t.Run("with the majority: keeps answering", func(t *testing.T) {
		st := testnode.OpenSingle(t)
		st.JudgeDigests([]store.DigestVote{agree("b"), differ("c")}, 3)
		if _, err := st.Stats(t.Context(), ledger.StatsQuery{}, store.Linearizable); err != nil {
			t.Fatalf("a node the majority agrees with stopped answering: %v", err)
		}
	})
	t.Run("no majority either way: answers nothing until one agrees", func(t *testing.T) {
		st := testnode.OpenSingle(t)
		st.JudgeDigests([]store.DigestVote{differ("b")}, 3)
		if _, err := st.Stats(t.Context(), ledger.StatsQuery{}, store.Stale); !errors.Is(err, store.ErrDiverged) {
			t.Fatalf("stale read while undecided: %v, want ErrDiverged", err)
		}
		if _, err := st.Buy(t.Context(), purchase(1)); !errors.Is(err, store.ErrDiverged) {
			t.Fatalf("purchase while undecided: %v, want ErrDiverged", err)
		}
		if ready, reason := st.Ready(); ready {
			t.Fatalf("ready while undecided (%s)", reason)
		}
		if st.Status().Diverged == "" {
			t.Fatal("status does not say the node diverged")
		}
		st.JudgeDigests([]store.DigestVote{agree("b"), differ("c")}, 3)
		if _, err := st.Stats(t.Context(), ledger.StatsQuery{}, store.Linearizable); err != nil {
			t.Fatalf("a majority agrees again, still refused: %v", err)
		}
	})
	t.Run("the majority disagrees: halts", func(t *testing.T) {
		st := testnode.OpenSingle(t)
		st.JudgeDigests([]store.DigestVote{differ("b"), differ("c")}, 3)
		if err := st.Ledger().Halted(); !errors.Is(err, ledger.ErrHalted) {
			t.Fatalf("ledger not halted: %v", err)
		}
		if _, err := st.Stats(t.Context(), ledger.StatsQuery{}, store.Stale); !errors.Is(err, store.ErrHalted) {
			t.Fatalf("read after the halt: %v, want ErrHalted", err)
		}
	})
	t.Run("non-voters do not decide", func(t *testing.T) {
		st := testnode.OpenSingle(t)
		st.JudgeDigests([]store.DigestVote{{ID: "n", Voter: false, Agree: false}, {ID: "m", Voter: false, Agree: false}}, 1)
		if err := st.Ledger().Halted(); err != nil {
			t.Fatalf("halted by non-voters: %v", err)
		}
	})
}

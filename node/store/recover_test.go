package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/internal/testnode"
	"github.com/buytracker/buytracker/node/store"
)

// openThree starts a three-member cluster in process and returns its
// members and the leader.
func openThree(t *testing.T) ([]*store.Store, *store.Store) {
	t.Helper()
	var initial []raft.Server
	for i := 1; i <= 3; i++ {
		initial = append(initial, raft.Server{ID: raft.ServerID(fmt.Sprintf("n%d", i)), Address: raft.ServerAddress(testnode.FreeAddr(t)), Suffrage: raft.Voter})
	}
	var members []*store.Store
	for _, srv := range initial {
		st, err := store.Open(store.Config{
			ID: string(srv.ID), DataDir: t.TempDir(),
			RaftBind: string(srv.Address), RaftAdvertise: string(srv.Address),
			HTTPURL: "http://127.0.0.1:1", AdminURL: "http://127.0.0.1:1",
			InitialCluster:   initial,
			HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
			Logger: testnode.Logger(t),
		})
		if err != nil {
			t.Fatalf("open %s: %v", srv.ID, err)
		}
		t.Cleanup(func() { st.Close() })
		members = append(members, st)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, st := range members {
			if ok, _ := st.Ready(); ok && st.IsLeader() {
				return members, st
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no ready leader within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRecoveryReplacesRaftWhileTheNodeIsRead: the survivor replaces its Raft
// instance in process while its status, readiness and ledger are read (the
// race detector watches the swap), keeps every purchase and takes new ones.
func TestRecoveryReplacesRaftWhileTheNodeIsRead(t *testing.T) {
	members, survivor := openThree(t)
	const n = 20
	for i := range n {
		if _, err := survivor.Buy(t.Context(), purchase(i)); err != nil {
			t.Fatalf("purchase %d: %v", i, err)
		}
	}
	for _, st := range members {
		if st != survivor {
			st.Close()
		}
	}

	done := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			_ = survivor.Status()
			_, _ = survivor.Ready()
			_, _ = survivor.Leader()
			_ = survivor.IsLeader()
			_ = survivor.Ledger().Count()
		}
	}()
	defer func() {
		close(done)
		readers.Wait()
	}()

	var last uint64
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := survivor.Status()
		last = st.LastIndex
		_, err := survivor.RecoverQuorum(t.Context(), last+1)
		var refusal *store.RecoveryRefusal
		if !errors.As(err, &refusal) || !errors.Is(err, store.ErrRecoveryRefused) {
			t.Fatalf("recover at a wrong index: %v, want a refusal", err)
		}
		if strings.Contains(refusal.Reason, "last index is") {
			break // no leader, none heard lately: only the index is wrong
		}
		if time.Now().After(deadline) {
			t.Fatalf("the survivor still refuses for another reason: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err := survivor.RecoverQuorum(t.Context(), last)
	if err != nil || !res.Recovered || res.LastIndex != last {
		t.Fatalf("recover at %d: %+v, %v", last, res, err)
	}
	if !survivor.IsLeader() || survivor.Status().RecoveredIndex != last {
		t.Fatalf("after the recovery the survivor is %+v", survivor.Status())
	}
	if got := survivor.Ledger().Count(); got != n {
		t.Fatalf("the recovered ledger holds %d purchases, want %d", got, n)
	}
	again, err := survivor.RecoverQuorum(t.Context(), last)
	if err != nil || again.Term != res.Term {
		t.Fatalf("a repeated recover: %+v, %v; want %+v", again, err, res)
	}
	r, err := survivor.Buy(t.Context(), purchase(n))
	if err != nil || r.PurchaseID != n+1 {
		t.Fatalf("a purchase after the recovery: %+v, %v; want id %d", r, err, n+1)
	}
}

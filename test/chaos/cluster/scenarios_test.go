package cluster

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/testhook"
	"github.com/buytracker/buytracker/test/chaos/netns"
)

func TestClusterInNamespacesTakesAPurchaseThroughAFollower(t *testing.T) {
	c, _ := startCluster(t, Config{Members: 3})
	ctx := within(t, time.Minute)
	leader := awaitLeader(t, ctx, c, func(*Node) bool { return true })
	f := followers(c, leader)[0]
	if got := buy(t, c, f, "k1"); got != http.StatusCreated {
		t.Fatalf("POST /buy through follower %s: %d, want 201", f.ID, got)
	}
	if err := c.AwaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	assertExports(t, c, []string{"k1"})
}

func TestPartitionedLeaderIsReplacedAndHealConverges(t *testing.T) {
	c, net := startCluster(t, Config{Members: 3})
	ctx := within(t, 2*time.Minute)
	old := awaitLeader(t, ctx, c, func(*Node) bool { return true })
	rest := followers(c, old)
	if err := net.Partition(ctx, []*netns.Host{old.Host}, []*netns.Host{rest[0].Host, rest[1].Host}); err != nil {
		t.Fatal(err)
	}
	// The majority side elects one of its own; the old leader still names
	// itself, but it is one of three.
	leader := awaitLeader(t, ctx, c, func(n *Node) bool { return n != old })
	if got := buy(t, c, leader, "during"); got != http.StatusCreated {
		t.Fatalf("POST /buy on the new leader %s: %d, want 201", leader.ID, got)
	}
	if err := net.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.AwaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	assertExports(t, c, []string{"during"})
}

func TestPausedLeaderIsReplacedAndResumedRejoins(t *testing.T) {
	c, _ := startCluster(t, Config{Members: 3})
	ctx := within(t, 2*time.Minute)
	old := awaitLeader(t, ctx, c, func(*Node) bool { return true })
	if err := c.Pause(old); err != nil {
		t.Fatal(err)
	}
	if !c.Paused(old) || c.Pause(old) == nil {
		t.Fatal("a paused node reports not paused, or can be paused twice")
	}
	leader := awaitLeader(t, ctx, c, func(n *Node) bool { return n != old })
	if got := buy(t, c, leader, "paused"); got != http.StatusCreated {
		t.Fatalf("POST /buy on %s while %s is paused: %d", leader.ID, old.ID, got)
	}
	if err := c.Resume(old); err != nil {
		t.Fatal(err)
	}
	if err := c.AwaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	assertExports(t, c, []string{"paused"})
}

func TestFollowerWithAWipedVolumeRejoins(t *testing.T) {
	c, _ := startCluster(t, Config{Members: 3})
	ctx := within(t, 2*time.Minute)
	leader := awaitLeader(t, ctx, c, func(*Node) bool { return true })
	f := followers(c, leader)[0]
	if got := buy(t, c, leader, "before"); got != http.StatusCreated {
		t.Fatalf("POST /buy: %d", got)
	}
	if err := c.WipeData(f); err == nil {
		t.Fatal("WipeData of a running node succeeded")
	}
	if err := c.Kill(f); err != nil {
		t.Fatal(err)
	}
	before, err := c.Status(ctx, leader)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WipeData(f); err != nil {
		t.Fatal(err)
	}
	if got := buy(t, c, leader, "while-down"); got != http.StatusCreated {
		t.Fatalf("POST /buy with a follower down: %d", got)
	}
	if err := c.Restart(f); err != nil {
		t.Fatal(err)
	}
	if err := c.AwaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if st.Incarnation == "" || st.AppliedIndex <= before.AppliedIndex {
		t.Fatalf("%s after the wipe: incarnation %q, applied %d (leader was at %d)", f.ID, st.Incarnation, st.AppliedIndex, before.AppliedIndex)
	}
	assertExports(t, c, []string{"before", "while-down"})
}

func TestFullDiskRefusesPurchasesAndLosesNone(t *testing.T) {
	c, _ := startCluster(t, Config{Members: 3, DiskBytes: 64 << 20, ExtraFlags: []string{"--min-free-disk=4Mi"}})
	ctx := within(t, 2*time.Minute)
	leader := awaitLeader(t, ctx, c, func(*Node) bool { return true })
	var acked []string
	if got := buy(t, c, leader, "k0"); got != http.StatusCreated {
		t.Fatalf("POST /buy before the fill: %d", got)
	}
	acked = append(acked, "k0")
	if err := c.FillDisk(leader); err != nil {
		t.Fatal(err)
	}
	// Within about a second the node sees the full disk: its purchases
	// answer 507; any acknowledged before must survive.
	saw507 := false
	for i := 1; !saw507; i++ {
		key := fmt.Sprintf("k%d", i)
		switch got := buy(t, c, leader, key); got {
		case http.StatusCreated:
			acked = append(acked, key)
		case http.StatusInsufficientStorage:
			saw507 = true
		}
		if ctx.Err() != nil {
			t.Fatal("no 507 from the node with the full disk")
		}
		sleep(ctx, 50*time.Millisecond)
	}
	st, err := c.Status(ctx, leader)
	if err != nil {
		t.Fatal(err)
	}
	if !st.DiskPressure || st.DiskFreeBytes >= 4<<20 {
		t.Fatalf("%s: disk_pressure %v with %d bytes free, want pressure", leader.ID, st.DiskPressure, st.DiskFreeBytes)
	}
	if err := c.FreeDisk(leader); err != nil {
		t.Fatal(err)
	}
	if err := c.AwaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	assertExports(t, c, acked)
	if err := (&Cluster{cfg: Config{}}).FillDisk(leader); err == nil {
		t.Fatal("FillDisk without tmpfs disks succeeded")
	}
}

func TestAddedSpareBecomesAVoter(t *testing.T) {
	c, _ := startCluster(t, Config{Members: 3, Spares: 1})
	ctx := within(t, 2*time.Minute)
	spare := c.Node("n4")
	if c.Running(spare) {
		t.Fatal("the spare runs before it is added")
	}
	if err := c.AddMember(ctx, spare); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := c.Membership(ctx)
		if err != nil {
			t.Fatal(err)
		}
		voter := false
		for _, mem := range m.Members {
			voter = voter || (mem.ID == spare.ID && mem.Suffrage == adminapi.Voter)
		}
		if voter {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s not a voter in time: %+v", spare.ID, m.Members)
		}
		sleep(ctx, 100*time.Millisecond)
	}
	if err := c.AwaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	if got := buy(t, c, spare, "via-n4"); got != http.StatusCreated {
		t.Fatalf("POST /buy through the added member: %d", got)
	}
}

func TestCloseLeavesNoProcessAndNoMount(t *testing.T) {
	c, _ := startCluster(t, Config{Members: 3, DiskBytes: 64 << 20, ExtraFlags: []string{"--min-free-disk=4Mi"}})
	var pids []int
	for _, n := range c.Nodes() {
		pids = append(pids, c.PID(n))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("pid %d is still there after Close", pid)
		}
	}
	mounts, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), c.cfg.Dir) {
		t.Errorf("a mount under %s is left:\n%s", c.cfg.Dir, mounts)
	}
	if err := c.Restart(c.Node("n1")); err == nil {
		t.Fatal("Restart after Close succeeded")
	}
}

func TestHookFilesReachTheNode(t *testing.T) {
	c, _ := startCluster(t, Config{Members: 1})
	ctx := within(t, time.Minute)
	n := c.Node("n1")
	if err := c.SetClock(n, time.Hour); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := c.Status(ctx, n)
		if err == nil && time.Until(time.Unix(0, st.ClockUnixNano)) > 50*time.Minute {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the node's clock did not move an hour ahead: %v", err)
		}
		sleep(ctx, 100*time.Millisecond)
	}
	if err := c.SetDiskFault(n, "flaky"); err == nil {
		t.Fatal("an unknown disk fault mode was accepted")
	}
	if err := c.SetDiskFault(n, "fsync"); err != nil {
		t.Fatal(err)
	}
	// The node reads the fault from the file its environment names.
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", c.PID(n)))
	if err != nil {
		t.Fatal(err)
	}
	var path string
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, testhook.DiskFaultFileEnv+"="); ok {
			path = v
		}
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "fsync" {
		t.Fatalf("the node's %s names %q holding %q (%v), want \"fsync\"", testhook.DiskFaultFileEnv, path, got, err)
	}
}

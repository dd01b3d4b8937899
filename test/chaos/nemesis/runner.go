package nemesis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/buytracker/buytracker/test/chaos/cluster"
	"github.com/buytracker/buytracker/test/chaos/netns"
)

// Runner applies a schedule's steps to a cluster, one at a time: apply,
// hold, heal, gap.
type Runner struct {
	Net     *netns.Network
	Cluster *cluster.Cluster
	// Members are the initial members in id order; Spare is the node that
	// membership changes add and remove (nil: those steps are skipped).
	Members []*cluster.Node
	Spare   *cluster.Node
	// Since is the clock the history is recorded with, so that a fault's
	// times can be read beside the operations'.
	Since func() time.Duration
	Logf  func(format string, args ...any)
	// ConvergeTimeout bounds the wait for a healed cluster before a step
	// that destroys state (a lost data dir, a membership change): those
	// run only on a whole cluster, so that the run never takes away a
	// quorum's data for good.
	ConvergeTimeout time.Duration

	spareIsMember bool
	paused        map[*cluster.Node]bool
	killed        map[*cluster.Node]bool
}

// Applied is what one step did.
type Applied struct {
	Step    Step          `json:"step"`
	Targets []string      `json:"targets,omitempty"`
	Note    string        `json:"note,omitempty"`
	Start   time.Duration `json:"start"`
	Healed  time.Duration `json:"healed"`
}

// ErrNotConverged is returned when the cluster did not become whole again
// before a step that needs it: a liveness failure the run reports.
var ErrNotConverged = errors.New("the cluster did not converge")

// Run applies every step in order until ctx ends.
func (r *Runner) Run(ctx context.Context, s Schedule) ([]Applied, error) {
	r.paused, r.killed = map[*cluster.Node]bool{}, map[*cluster.Node]bool{}
	var out []Applied
	for _, step := range s.Steps {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		a, err := r.runStep(ctx, step)
		out = append(out, a)
		if err != nil {
			return out, fmt.Errorf("step %v: %w", step, err)
		}
		r.Logf("nemesis %v -> %v %s (healed at %v)", step, a.Targets, a.Note, a.Healed.Round(time.Millisecond))
		if err := sleep(ctx, step.Gap); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (r *Runner) runStep(ctx context.Context, step Step) (Applied, error) {
	a := Applied{Step: step, Start: r.Since()}
	if destroysState(step.Kind) {
		if err := r.awaitWhole(ctx); err != nil {
			return a, err
		}
	}
	heal, err := r.apply(ctx, step, &a)
	if err != nil {
		return a, err
	}
	holdErr := sleep(ctx, step.Hold)
	// Heal even when the run is being cancelled: the next step, or the
	// final checks, start from a cluster with no fault left in place.
	healCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if heal != nil {
		if err := heal(healCtx); err != nil {
			return a, fmt.Errorf("heal: %w", err)
		}
	}
	a.Healed = r.Since()
	return a, holdErr
}

func destroysState(k Kind) bool { return k == LoseDataDir || k == MembershipChange }

func (r *Runner) awaitWhole(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, r.ConvergeTimeout)
	defer cancel()
	if err := r.Cluster.AwaitConverged(wctx); err != nil {
		return fmt.Errorf("%w within %v of the last heal: %v", ErrNotConverged, r.ConvergeTimeout, err)
	}
	return nil
}

// members returns the current members: the initial ones and the spare
// while it is one.
func (r *Runner) members() []*cluster.Node {
	out := slices.Clone(r.Members)
	if r.spareIsMember && r.Spare != nil {
		out = append(out, r.Spare)
	}
	return out
}

// leader returns the member a majority names as leader, or, when there is
// none right now, the member the step's pick falls on.
func (r *Runner) leader(ctx context.Context, pick int) (*cluster.Node, string) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if l, err := r.Cluster.Leader(lctx); err == nil && l != nil {
		return l, ""
	}
	ms := r.members()
	return ms[pick%len(ms)], "no leader known: took a member by pick"
}

// followers returns the current members other than leader.
func (r *Runner) followers(leader *cluster.Node) []*cluster.Node {
	var out []*cluster.Node
	for _, m := range r.members() {
		if m != leader {
			out = append(out, m)
		}
	}
	return out
}

// rotate returns the members starting at pick, so that a seeded pick
// chooses a group's composition.
func rotate(nodes []*cluster.Node, pick int) []*cluster.Node {
	k := pick % len(nodes)
	return append(slices.Clone(nodes[k:]), nodes[:k]...)
}

func hosts(nodes []*cluster.Node) []*netns.Host {
	out := make([]*netns.Host, len(nodes))
	for i, n := range nodes {
		out[i] = n.Host
	}
	return out
}

func ids(nodes ...*cluster.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}

// apply injects a step's fault and returns how to heal it.
func (r *Runner) apply(ctx context.Context, step Step, a *Applied) (func(context.Context) error, error) {
	healNet := func(ctx context.Context) error { return r.Net.Heal(ctx) }
	switch step.Kind {
	case PartitionLeaderMinority:
		l, note := r.leader(ctx, step.Pick)
		others := rotate(r.followers(l), step.Pick)
		minority := append([]*cluster.Node{l}, others[:len(r.members())/2-1]...)
		a.Targets, a.Note = ids(minority...), note
		return healNet, r.Net.Partition(ctx, hosts(minority), hosts(others[len(minority)-1:]))

	case PartitionLeaderMajority:
		l, note := r.leader(ctx, step.Pick)
		fs := r.followers(l)
		f := fs[step.Pick%len(fs)]
		a.Targets, a.Note = ids(f), note
		return healNet, r.Net.Partition(ctx, hosts([]*cluster.Node{f}), hosts(r.followers(f)))

	case OneWayFromLeader, OneWayToLeader:
		l, note := r.leader(ctx, step.Pick)
		a.Targets, a.Note = ids(l), note
		for _, f := range r.followers(l) {
			from, to := l, f
			if step.Kind == OneWayToLeader {
				from, to = f, l
			}
			if err := r.Net.Drop(ctx, from.Host, to.Host); err != nil {
				return healNet, err
			}
		}
		return healNet, nil

	case Bridge:
		ms := rotate(r.members(), step.Pick)
		half := (len(ms) - 1) / 2
		left, shared, right := ms[:half], ms[half], ms[half+1:]
		a.Targets = ids(shared)
		a.Note = fmt.Sprintf("%v | %s | %v", ids(left...), shared.ID, ids(right...))
		return healNet, r.Net.Partition(ctx, hosts(left), hosts(right))

	case Flapping:
		ms := r.members()
		m := ms[step.Pick%len(ms)]
		period := 200*time.Millisecond + time.Duration(step.Pick%5)*100*time.Millisecond
		a.Targets, a.Note = ids(m), "period "+period.String()
		return r.flap(ctx, m, period), nil

	case PauseLeader, PauseFollower:
		target, note := r.pickRole(ctx, step, step.Kind == PauseLeader)
		a.Targets, a.Note = ids(target), note
		if err := r.Cluster.Pause(target); err != nil {
			return nil, err
		}
		r.paused[target] = true
		return func(context.Context) error {
			delete(r.paused, target)
			return r.Cluster.Resume(target)
		}, nil

	case KillLeader, KillFollower:
		target, note := r.pickRole(ctx, step, step.Kind == KillLeader)
		a.Targets, a.Note = ids(target), note
		if err := r.Cluster.Kill(target); err != nil {
			return nil, err
		}
		r.killed[target] = true
		return func(context.Context) error {
			delete(r.killed, target)
			return r.Cluster.Restart(target)
		}, nil

	case LoseDataDir:
		ms := r.members()
		target := ms[step.Pick%len(ms)]
		a.Targets = ids(target)
		if err := r.Cluster.Kill(target); err != nil {
			return nil, err
		}
		r.killed[target] = true
		if err := r.Cluster.WipeData(target); err != nil {
			return nil, err
		}
		return func(context.Context) error {
			delete(r.killed, target)
			return r.Cluster.Restart(target)
		}, nil

	case ClockSkew:
		ms := r.Members
		for i, off := range step.ClockOffsets {
			if i < len(ms) && off != 0 {
				a.Targets = append(a.Targets, fmt.Sprintf("%s:%v", ms[i].ID, off))
				if err := r.Cluster.SetClock(ms[i], off); err != nil {
					return nil, err
				}
			}
		}
		return func(context.Context) error { return r.resetClocks() }, nil

	case DiskWriteErrors, DiskFsyncErrors, DiskSlowApply:
		target, note := r.pickRole(ctx, step, step.Pick%2 == 0)
		mode := map[Kind]string{DiskWriteErrors: "write", DiskFsyncErrors: "fsync", DiskSlowApply: "slow-apply"}[step.Kind]
		a.Targets, a.Note = ids(target), note
		if err := r.Cluster.SetDiskFault(target, mode); err != nil {
			return nil, err
		}
		return func(context.Context) error { return r.Cluster.SetDiskFault(target, "") }, nil

	case DiskFull:
		target, note := r.pickRole(ctx, step, step.Pick%2 == 0)
		a.Targets, a.Note = ids(target), note
		if err := r.Cluster.FillDisk(target); err != nil {
			return nil, err
		}
		return func(context.Context) error { return r.Cluster.FreeDisk(target) }, nil

	case MembershipChange:
		return r.changeMembership(ctx, step, a)

	case Compound:
		return r.compound(ctx, step, a)

	case SnapshotDuringPartition:
		l, note := r.leader(ctx, step.Pick)
		fs := r.followers(l)
		f := fs[step.Pick%len(fs)]
		a.Targets, a.Note = ids(f), note
		if err := r.Net.Partition(ctx, hosts([]*cluster.Node{f}), hosts(r.followers(f))); err != nil {
			return healNet, err
		}
		for _, m := range r.followers(f) {
			if err := r.Cluster.Snapshot(ctx, m); err != nil {
				a.Note += fmt.Sprintf("; snapshot on %s: %v", m.ID, err)
			}
		}
		return healNet, nil
	}
	return nil, fmt.Errorf("unknown fault kind %q", step.Kind)
}

// compound applies a step's network part, then its node part, and heals
// them in the reverse order.
func (r *Runner) compound(ctx context.Context, step Step, a *Applied) (func(context.Context) error, error) {
	if len(step.Parts) != 2 {
		return nil, fmt.Errorf("compound step with parts %v: want a network fault and a node fault", step.Parts)
	}
	var heals []func(context.Context) error
	healAll := func(ctx context.Context) error {
		var errs []error
		for i := len(heals) - 1; i >= 0; i-- {
			if heals[i] != nil {
				errs = append(errs, heals[i](ctx))
			}
		}
		return errors.Join(errs...)
	}
	for _, kind := range step.Parts {
		part := step
		part.Kind = kind
		var pa Applied
		heal, err := r.apply(ctx, part, &pa)
		heals = append(heals, heal)
		a.Targets = append(a.Targets, fmt.Sprintf("%s%v", kind, pa.Targets))
		if pa.Note != "" {
			a.Note += string(kind) + ": " + pa.Note + "; "
		}
		if err != nil {
			return healAll, err
		}
	}
	return healAll, nil
}

// pickRole returns the leader when leader is true, else a follower chosen
// by the step's pick.
func (r *Runner) pickRole(ctx context.Context, step Step, leader bool) (*cluster.Node, string) {
	l, note := r.leader(ctx, step.Pick)
	if leader {
		return l, note
	}
	fs := r.followers(l)
	return fs[step.Pick%len(fs)], note
}

// changeMembership partitions one follower off and, meanwhile, adds the
// spare (it joins as a non-voter and is promoted once caught up) or
// removes it. A removed spare loses its data dir, so that it can be added
// again later as a new server.
func (r *Runner) changeMembership(ctx context.Context, step Step, a *Applied) (func(context.Context) error, error) {
	if r.Spare == nil {
		a.Note = "no spare: skipped"
		return nil, nil
	}
	l, note := r.leader(ctx, step.Pick)
	var fs []*cluster.Node
	for _, f := range r.followers(l) {
		if f != r.Spare {
			fs = append(fs, f)
		}
	}
	f := fs[step.Pick%len(fs)]
	a.Note = note
	if err := r.Net.Partition(ctx, hosts([]*cluster.Node{f}), hosts(r.followers(f))); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, step.Hold+10*time.Second)
	defer cancel()
	removed := false
	if r.spareIsMember {
		a.Targets = []string{"remove " + r.Spare.ID, "cut " + f.ID}
		if err := r.Cluster.RemoveMember(cctx, r.Spare); err != nil {
			a.Note += fmt.Sprintf("; remove refused: %v", err)
		} else {
			r.spareIsMember, removed = false, true
		}
	} else {
		a.Targets = []string{"add " + r.Spare.ID, "cut " + f.ID}
		if err := r.Cluster.AddMember(cctx, r.Spare); err != nil {
			a.Note += fmt.Sprintf("; add refused: %v", err)
		} else {
			r.spareIsMember = true
		}
	}
	return func(ctx context.Context) error {
		if err := r.Net.Heal(ctx); err != nil {
			return err
		}
		if !removed {
			return nil
		}
		if r.Cluster.Running(r.Spare) {
			if err := r.Cluster.Kill(r.Spare); err != nil {
				return err
			}
		}
		return r.Cluster.WipeData(r.Spare)
	}, nil
}

// flap cuts m off and restores it every period until the returned heal
// runs.
func (r *Runner) flap(ctx context.Context, m *cluster.Node, period time.Duration) func(context.Context) error {
	fctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		cut := false
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			var err error
			if cut {
				err = r.Net.Heal(fctx)
			} else {
				err = r.Net.Partition(fctx, hosts([]*cluster.Node{m}), hosts(r.followers(m)))
			}
			if err != nil && fctx.Err() == nil {
				errc <- err
				return
			}
			cut = !cut
			select {
			case <-fctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func(ctx context.Context) error {
		cancel()
		wg.Wait()
		select {
		case err := <-errc:
			return fmt.Errorf("flapping %s: %w", m.ID, err)
		default:
		}
		return r.Net.Heal(ctx)
	}
}

func (r *Runner) resetClocks() error {
	for _, m := range r.Members {
		if err := r.Cluster.SetClock(m, 0); err != nil {
			return err
		}
	}
	return nil
}

// HealAll removes every fault a cancelled run may have left: network cuts,
// paused and killed processes, clock shifts, disk faults, a full disk.
func (r *Runner) HealAll(ctx context.Context) error {
	errs := []error{r.Net.Heal(ctx), r.resetClocks()}
	for _, m := range r.members() {
		if r.paused[m] {
			errs = append(errs, r.Cluster.Resume(m))
			delete(r.paused, m)
		}
		if r.killed[m] || !r.Cluster.Running(m) {
			errs = append(errs, r.Cluster.Restart(m))
			delete(r.killed, m)
		}
		errs = append(errs, r.Cluster.SetDiskFault(m, ""), r.Cluster.FreeDisk(m))
	}
	return errors.Join(errs...)
}

// SpareIsMember reports whether the spare is a member now (the final
// checks read its export too).
func (r *Runner) SpareIsMember() bool { return r.spareIsMember }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

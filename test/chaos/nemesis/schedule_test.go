package nemesis

import (
	"reflect"
	"testing"
)

func TestPlanIsTheSameForTheSameSeed(t *testing.T) {
	a := Plan(42, 120, AllKinds, 5, DefaultTiming)
	b := Plan(42, 120, AllKinds, 5, DefaultTiming)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two plans with seed 42 differ: a seed would not replay its schedule")
	}
	c := Plan(43, 120, AllKinds, 5, DefaultTiming)
	if reflect.DeepEqual(a.Steps, c.Steps) {
		t.Fatal("seeds 42 and 43 gave the same plan")
	}
}

func TestPlanCoversEveryKindAndKeepsItsBounds(t *testing.T) {
	s := Plan(7, 25, AllKinds, 5, DefaultTiming)
	if len(s.Steps) != 25 {
		t.Fatalf("planned %d steps, want 25", len(s.Steps))
	}
	counts := Counts(s.Steps)
	for _, k := range AllKinds {
		if counts[k] == 0 {
			t.Errorf("a 25-step plan has no %s step", k)
		}
	}
	for _, st := range s.Steps {
		if st.Hold < DefaultTiming.MinHold || st.Hold > DefaultTiming.MaxHold {
			t.Errorf("%v: hold outside [%v, %v]", st, DefaultTiming.MinHold, DefaultTiming.MaxHold)
		}
		if st.Gap < DefaultTiming.MinGap || st.Gap > DefaultTiming.MaxGap {
			t.Errorf("%v: gap outside [%v, %v]", st, DefaultTiming.MinGap, DefaultTiming.MaxGap)
		}
		if st.Kind == ClockSkew {
			shifted := 0
			for _, o := range st.ClockOffsets {
				if o != 0 {
					shifted++
				}
			}
			if len(st.ClockOffsets) != 5 || shifted == 0 {
				t.Errorf("%v: want 5 offsets with at least one shift", st)
			}
		}
	}
}

func TestParseKinds(t *testing.T) {
	all, err := ParseKinds("")
	if err != nil || len(all) != len(AllKinds) {
		t.Fatalf("empty list: %v %v, want every kind", all, err)
	}
	two, err := ParseKinds("kill-leader, bridge")
	if err != nil || !reflect.DeepEqual(two, []Kind{KillLeader, Bridge}) {
		t.Fatalf("two kinds: %v %v", two, err)
	}
	if _, err := ParseKinds("kill-leader,meteor"); err == nil {
		t.Fatal("an unknown kind was accepted")
	}
}

package controllers

import (
	"fmt"
	"testing"
)

func TestDesiredDisruptionBudgetKeepsQuorum(t *testing.T) {
	for voters, want := range map[int32]int32{1: 0, 3: 1, 5: 2, 7: 3, 9: 4} {
		t.Run(fmt.Sprintf("%d voters", voters), func(t *testing.T) {
			pdb := desiredDisruptionBudget(testBuyTracker(), testNames, voters)
			got := pdb.Spec.MaxUnavailable.IntVal
			expect(t, "maxUnavailable", got, want)
			if int(voters-got) < quorum(int(voters)) {
				t.Errorf("%d voters minus %d unavailable is below quorum", voters, got)
			}
			expect(t, "selector", pdb.Spec.Selector.MatchLabels, testNames.selectorLabels())
		})
	}
}

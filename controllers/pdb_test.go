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

func TestBudgetVotersDuringAScale(t *testing.T) {
	tests := []struct {
		name string
		view clusterView
		want int32
	}{
		{"steady", viewOf(5, 5, "0L 1 2 3 4"), 5},
		{"growing: new pods are not voters yet", viewOf(5, 5, "0L 1 2 3n 4p"), 3},
		{"shrinking: configuration already smaller", viewOf(3, 5, "0L 1 2 3p 4p"), 3},
		{"shrinking: configuration still large", viewOf(3, 5, "0L 1 2 3 4"), 3},
	}
	for _, tt := range tests {
		expect(t, tt.name, budgetVoters(testBuyTracker(), tt.view), tt.want)
	}
}

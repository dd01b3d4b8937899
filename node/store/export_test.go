package store

// ForwardedOutcomeErrors decodes a leader's answer to BuyForwarded into one
// error per purchase (nil when recorded), as a follower reads it.
func ForwardedOutcomeErrors(raw []byte, n int) ([]error, error) {
	outcomes, err := decodeOutcomes(raw, n)
	if err != nil {
		return nil, err
	}
	errs := make([]error, n)
	for i, o := range outcomes {
		errs[i] = o.err
	}
	return errs, nil
}

// DigestVote is one member's digest compared with this node's, for tests of
// the judgement.
type DigestVote struct {
	ID           string
	Voter, Agree bool
}

// JudgeDigests runs the store's judgement on made-up comparisons.
func (s *Store) JudgeDigests(votes []DigestVote, voters int) {
	in := make([]digestVote, len(votes))
	for i, v := range votes {
		in[i] = digestVote{id: v.ID, voter: v.Voter, agree: v.Agree, index: 7}
	}
	s.judgeDigests(in, voters)
}

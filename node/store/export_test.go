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

package ledger

// Halted returns why the ledger stopped applying (wrapping ErrHalted), or
// nil while it applies. A halted ledger stays halted until the process ends:
// its log holds an entry it must not skip and cannot apply.
func (l *Ledger) Halted() error {
	l.healthMu.Lock()
	defer l.healthMu.Unlock()
	return l.halted
}

// HaltedC returns a channel closed when the ledger halts.
func (l *Ledger) HaltedC() <-chan struct{} { return l.haltedCh }

// ApplyBlocked returns the error of the records write that Apply keeps
// retrying (a full disk, for instance), or nil when applying is not blocked.
func (l *Ledger) ApplyBlocked() error {
	l.healthMu.Lock()
	defer l.healthMu.Unlock()
	return l.blocked
}

// halt records why the ledger stops applying; applied is the last index it
// did apply. Waiters on later indexes are woken and see the error.
func (l *Ledger) halt(err error, applied uint64) {
	l.healthMu.Lock()
	first := l.halted == nil
	if first {
		l.halted = err
		close(l.haltedCh)
	}
	l.healthMu.Unlock()
	if first {
		l.logger.Error("Halted: a log entry failed its checks; this node applies nothing more and must be replaced",
			"error", err, "applied_index", max(applied, l.applied.Load()))
	}
}

// setBlocked records whether a records write is failing, and logs the
// changes: the first failure, and the recovery.
func (l *Ledger) setBlocked(err error) {
	l.healthMu.Lock()
	was := l.blocked
	l.blocked = err
	l.healthMu.Unlock()
	switch {
	case err != nil && was == nil:
		l.logger.Error("Applying is blocked: writing the records failed; retrying until it succeeds", "error", err)
	case err == nil && was != nil:
		l.logger.Info("Applying resumed: the records write succeeded", "after_error", was.Error())
	}
}

// Halt stops the ledger from outside Apply: the store calls it when the
// members' digests show this node's state differs from the majority's. err
// should wrap ErrHalted.
func (l *Ledger) Halt(err error) { l.halt(err, l.applied.Load()) }

// Package testhook holds the faults that cluster tests inject into real node
// processes. Only a binary built with the `testhooks` tag (node/clustertest
// builds one) reads them from its environment; in any other build every hook
// is off and costs nothing.
package testhook

// Environment variables a test build reads.
const (
	// ClockOffsetFileEnv names a file holding a Go duration ("25h",
	// "-3s") by which the node's wall clock is shifted; it is re-read while
	// the node runs.
	ClockOffsetFileEnv = "BUYTRACKER_TEST_CLOCK_OFFSET_FILE"
	// MisapplyCentsEnv makes the node's ledger store every amount this many
	// cents off: a replica that applies differently, for tests of the
	// members' digest comparison.
	MisapplyCentsEnv = "BUYTRACKER_TEST_MISAPPLY_CENTS"
	// DiskFaultFileEnv names a file holding the disk fault injected into
	// the node's Raft log store: empty (or no file) for none, "write" (every
	// write fails before anything is written) or "fsync" (the write reaches
	// bbolt, then the call fails, as after a failed fsync) or "slow-apply"
	// (the log store works; the state machine waits 2 s before each batch,
	// as on a slow records disk); it is re-read while the node runs.
	DiskFaultFileEnv = "BUYTRACKER_TEST_DISK_FAULT_FILE"
)

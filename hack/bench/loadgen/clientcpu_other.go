//go:build !unix

package main

import "time"

// processCPU is unknown here: the client's CPU use is reported as zero.
func processCPU() time.Duration { return 0 }

package controllers

import "errors"

// errBrokenChild reports a child object the operator will not repair on
// its own (for example an admin-token Secret without its token).
var errBrokenChild = errors.New("child object is not usable")

// isSubset reports whether have holds every key of want with its value.
func isSubset(want, have map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

package controllers

import (
	"reflect"
	"testing"
)

// expect reports a mismatch of one named value.
func expect[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

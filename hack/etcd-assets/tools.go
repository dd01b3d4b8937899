//go:build tools

// Package tools names the etcd server (its main package is the module root)
// so that go.mod and go.sum cover everything it needs.
package tools

import _ "go.etcd.io/etcd/server/v3"

package controllers

import (
	"encoding/hex"
	"testing"
)

func TestNewAdminTokenIsRandomHex(t *testing.T) {
	a, err := newAdminToken()
	if err != nil {
		t.Fatal(err)
	}
	b, err := newAdminToken()
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := hex.DecodeString(string(a)); err != nil || len(raw) != 32 {
		t.Errorf("token %q is not 32 hex-encoded bytes", a)
	}
	if string(a) == string(b) {
		t.Error("two tokens are equal")
	}
	s := desiredAdminSecret(testBuyTracker(), testNames, a)
	expect(t, "name", s.Name, "promo-admin-token")
	expect(t, "token", string(s.Data[adminTokenKey]), string(a))
}

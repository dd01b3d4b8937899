package clientauth

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	writerToken   = "writer-token-0123456789"
	auditorToken  = "auditor-token-0123456789"
	readerToken   = "reader-token-0123456789"
	unknownToken  = "unknown-token-0123456789"
	standardRoles = `{"tokens": [
		{"name": "checkout", "token": "` + writerToken + `", "roles": ["write"]},
		{"name": "dashboard", "token": "` + readerToken + `", "roles": ["read"]},
		{"name": "audit", "token": "` + auditorToken + `", "roles": ["export", "read"]}]}`
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, content string) *Tokens {
	t.Helper()
	return openWith(t, content, false)
}

// openWith opens content as the auth file, with --client-auth-required when
// required is set.
func openWith(t *testing.T, content string, required bool) *Tokens {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.json")
	writeFile(t, path, content)
	tok, err := Open(path, required, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAuthorizeByRoleAndMode(t *testing.T) {
	noFile, err := Open("", false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	requiredNoFile, err := Open("", true, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	standard := open(t, standardRoles)
	everywhere := open(t, strings.Replace(standardRoles, "{", `{"require_auth_everywhere": true,`, 1))
	// The flag holds whatever the file says: standardRoles does not ask for
	// tokens everywhere, explicitlyOpen says false outright.
	required := openWith(t, standardRoles, true)
	explicitlyOpen := openWith(t, strings.Replace(standardRoles, "{", `{"require_auth_everywhere": false,`, 1), true)
	needsTokensEverywhere := map[*Tokens]bool{everywhere: true, required: true, explicitlyOpen: true, requiredNoFile: true}
	var nilTokens *Tokens
	cases := []struct {
		name   string
		tokens *Tokens
		header string
		role   Role
		want   error
	}{
		{"no file: write is open", noFile, "", Write, nil},
		{"no file: read is open", noFile, "", Read, nil},
		{"no file: export is refused", noFile, "Bearer " + auditorToken, Export, ErrNoTokens},
		{"nil tokens: export is refused", nilTokens, "", Export, ErrNoTokens},
		{"nil tokens: write is open", nilTokens, "", Write, nil},
		{"write is open without a token", standard, "", Write, nil},
		{"write is open with an unknown token", standard, "Bearer " + unknownToken, Write, nil},
		{"read is open without a token", standard, "", Read, nil},
		{"export without a token", standard, "", Export, ErrNoCredentials},
		{"export with another scheme", standard, "Basic " + auditorToken, Export, ErrNoCredentials},
		{"export with an empty bearer", standard, "Bearer ", Export, ErrNoCredentials},
		{"export with an unknown token", standard, "Bearer " + unknownToken, Export, ErrBadCredentials},
		{"export with a prefix of a token", standard, "Bearer " + auditorToken[:20], Export, ErrBadCredentials},
		{"export with a writer's token", standard, "Bearer " + writerToken, Export, ErrMissingRole},
		{"export with an auditor's token", standard, "Bearer " + auditorToken, Export, nil},
		{"scheme is case-insensitive", standard, "bearer " + auditorToken, Export, nil},
		{"everywhere: write without a token", everywhere, "", Write, ErrNoCredentials},
		{"everywhere: write with an unknown token", everywhere, "Bearer " + unknownToken, Write, ErrBadCredentials},
		{"everywhere: write with a reader's token", everywhere, "Bearer " + readerToken, Write, ErrMissingRole},
		{"everywhere: write with a writer's token", everywhere, "Bearer " + writerToken, Write, nil},
		{"everywhere: read with a writer's token", everywhere, "Bearer " + writerToken, Read, ErrMissingRole},
		{"everywhere: read with an auditor's token", everywhere, "Bearer " + auditorToken, Read, nil},
		{"everywhere: export with a reader's token", everywhere, "Bearer " + readerToken, Export, ErrMissingRole},
		{"flag: write without a token", required, "", Write, ErrNoCredentials},
		{"flag: write with an unknown token", required, "Bearer " + unknownToken, Write, ErrBadCredentials},
		{"flag: write with a reader's token", required, "Bearer " + readerToken, Write, ErrMissingRole},
		{"flag: write with a writer's token", required, "Bearer " + writerToken, Write, nil},
		{"flag: read without a token", required, "", Read, ErrNoCredentials},
		{"flag: read with a writer's token", required, "Bearer " + writerToken, Read, ErrMissingRole},
		{"flag: read with a reader's token", required, "Bearer " + readerToken, Read, nil},
		{"flag: export with an auditor's token", required, "Bearer " + auditorToken, Export, nil},
		{"flag over a file that says false: write without a token", explicitlyOpen, "", Write, ErrNoCredentials},
		{"flag over a file that says false: write with a writer's token", explicitlyOpen, "Bearer " + writerToken, Write, nil},
		{"flag, no file: write without a token", requiredNoFile, "", Write, ErrNoCredentials},
		{"flag, no file: write with any token", requiredNoFile, "Bearer " + writerToken, Write, ErrBadCredentials},
		{"flag, no file: read without a token", requiredNoFile, "", Read, ErrNoCredentials},
		{"flag, no file: read with any token", requiredNoFile, "Bearer " + readerToken, Read, ErrBadCredentials},
		{"flag, no file: export is refused", requiredNoFile, "Bearer " + auditorToken, Export, ErrNoTokens},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.tokens.Authorize(tc.header, tc.role)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Authorize(%q, %s) = %v, want %v", tc.header, tc.role, err, tc.want)
			}
			if needed := tc.tokens.Needed(tc.role); needed != (tc.role == Export || needsTokensEverywhere[tc.tokens]) {
				t.Fatalf("Needed(%s) = %v", tc.role, needed)
			}
		})
	}
}

func TestInvalidFilesAreRefusedWithTheReason(t *testing.T) {
	cases := map[string]struct{ content, reason string }{
		"not JSON":        {`tokens: []`, "not the expected JSON"},
		"unknown field":   {`{"tokens": [], "admins": []}`, "unknown field"},
		"trailing data":   {`{"tokens": []} {}`, "data after"},
		"no name":         {`{"tokens": [{"token": "` + writerToken + `", "roles": ["write"]}]}`, "a name is required"},
		"duplicate name":  {`{"tokens": [{"name": "a", "token": "` + writerToken + `", "roles": ["write"]}, {"name": "a", "token": "` + readerToken + `", "roles": ["read"]}]}`, "used twice"},
		"short token":     {`{"tokens": [{"name": "a", "token": "short", "roles": ["write"]}]}`, "at least 16"},
		"token w/ space":  {`{"tokens": [{"name": "a", "token": "has a space in it ok", "roles": ["write"]}]}`, "printable ASCII"},
		"no roles":        {`{"tokens": [{"name": "a", "token": "` + writerToken + `", "roles": []}]}`, "at least one role"},
		"unknown role":    {`{"tokens": [{"name": "a", "token": "` + writerToken + `", "roles": ["admin"]}]}`, `unknown role "admin"`},
		"duplicate token": {`{"tokens": [{"name": "a", "token": "` + writerToken + `", "roles": ["write"]}, {"name": "b", "token": "` + writerToken + `", "roles": ["read"]}]}`, "listed twice"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "auth.json")
			writeFile(t, path, tc.content)
			_, err := Open(path, false, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open = %v, want an error naming the file and %q", err, tc.reason)
			}
		})
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.json"), false, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a missing file was accepted")
	}
}

func TestTheFileIsReloadedWhenItChangesAndAnInvalidOneChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	writeFile(t, path, standardRoles)
	tok, err := Open(path, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tok.Watch(ctx, 10*time.Millisecond)
	}()
	defer func() { cancel(); <-done }()

	exportWith := func(token string) error { _, err := tok.Authorize("Bearer "+token, Export); return err }
	if err := exportWith(auditorToken); err != nil {
		t.Fatalf("before the change: %v", err)
	}
	// The auditor's token is revoked and the writer gains export.
	writeFile(t, path, `{"tokens": [{"name": "checkout", "token": "`+writerToken+`", "roles": ["write", "export"]}]}`)
	waitFor(t, "the revoked token to be refused", func() bool { return errors.Is(exportWith(auditorToken), ErrBadCredentials) })
	if err := exportWith(writerToken); err != nil {
		t.Fatalf("after the change the writer's new role: %v", err)
	}
	// Tokens are then required everywhere.
	writeFile(t, path, `{"require_auth_everywhere": true, "tokens": [{"name": "checkout", "token": "`+writerToken+`", "roles": ["write", "export"]}]}`)
	waitFor(t, "tokens to be required everywhere", func() bool { return tok.Needed(Read) })
	if err := exportWith(writerToken); err != nil {
		t.Fatalf("after the second change: %v", err)
	}
}

func TestAnInvalidReloadKeepsThePreviousTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	writeFile(t, path, standardRoles)
	tok, err := Open(path, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	before := tok.current.Load()
	writeFile(t, path, `{"tokens": [{"name": "x", "token": "short", "roles": ["write"]}]}`)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	tok.Watch(ctx, 10*time.Millisecond) // returns when ctx ends
	if tok.current.Load() != before {
		t.Fatal("an invalid file replaced the tokens")
	}
	if _, err := tok.Authorize("Bearer "+auditorToken, Export); err != nil {
		t.Fatalf("after an invalid reload: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	tok.Watch(ctx, 10*time.Millisecond)
	if tok.current.Load() != before {
		t.Fatal("a removed file replaced the tokens")
	}
}

// The flag is not part of the file: a reload that drops
// require_auth_everywhere, or never had it, keeps tokens required.
func TestTheFlagOutlivesAReloadOfTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	writeFile(t, path, strings.Replace(standardRoles, "{", `{"require_auth_everywhere": true,`, 1))
	tok, err := Open(path, true, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tok.Watch(ctx, 10*time.Millisecond)
	}()
	defer func() { cancel(); <-done }()

	// The file stops asking for tokens everywhere and the writer's token
	// is replaced: seeing the new token proves the reload happened.
	const newWriter = "new-writer-token-0123456789"
	writeFile(t, path, `{"require_auth_everywhere": false, "tokens": [{"name": "checkout", "token": "`+newWriter+`", "roles": ["write", "read"]}]}`)
	waitFor(t, "the new writer's token to be accepted", func() bool {
		_, err := tok.Authorize("Bearer "+newWriter, Write)
		return err == nil
	})
	for _, role := range []Role{Write, Read} {
		if !tok.Needed(role) {
			t.Errorf("after the reload %s needs no token; the flag requires one", role)
		}
		if _, err := tok.Authorize("", role); !errors.Is(err, ErrNoCredentials) {
			t.Errorf("after the reload %s without a token: %v, want %v", role, err, ErrNoCredentials)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

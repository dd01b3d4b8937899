package main

import (
	"os"
	"strings"
	"testing"
)

// toolingOnlyModules are required by the tooling under hack/ (its own module,
// hack/go.mod) and by nothing the product builds: the peers' clients of the
// benchmarks and the image builder's registry library. Whoever imports our
// API types inherits the product's go.mod, so none of them may return to it.
var toolingOnlyModules = []string{
	"github.com/jackc/pgx",
	"github.com/redis/go-redis",
	"go.etcd.io/etcd/client",
	"go.etcd.io/etcd/api",
	"github.com/google/go-containerregistry",
}

// TestGoModHoldsOnlyTheProduct fails when the product's go.mod requires a
// module only the tooling needs, as it did before hack/ became a module:
// move the code that imports it under hack/, then run `go mod tidy` in both.
func TestGoModHoldsOnlyTheProduct(t *testing.T) {
	data, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatalf("read the product's go.mod: %v", err)
	}
	required := requiredModules(string(data))
	if len(required) == 0 {
		t.Fatal("go.mod requires no module: its require blocks were not parsed")
	}
	for _, path := range required {
		for _, banned := range toolingOnlyModules {
			if path == banned || strings.HasPrefix(path, banned+"/") {
				t.Errorf("go.mod requires %s, which only the tooling (hack/go.mod) may need", path)
			}
		}
	}
}

// requiredModules returns the module paths of go.mod's require directives,
// in both the one-line and the block form.
func requiredModules(gomod string) []string {
	var paths []string
	inBlock := false
	for _, line := range strings.Split(gomod, "\n") {
		line, _, _ = strings.Cut(line, "//")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case inBlock && fields[0] == ")":
			inBlock = false
		case inBlock:
			paths = append(paths, fields[0])
		case fields[0] == "require" && len(fields) == 2 && fields[1] == "(":
			inBlock = true
		case fields[0] == "require" && len(fields) >= 3:
			paths = append(paths, fields[1])
		}
	}
	return paths
}

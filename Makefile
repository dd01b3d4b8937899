# buytracker: the Raft node, the operator, and their tests.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(shell pwd)/bin
GO ?= go
GOFLAGS_TEST ?= -count=1

# Tools are built from their Go modules into bin/ on first use.
STATICCHECK ?= $(LOCALBIN)/staticcheck
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: lint
lint: vet $(STATICCHECK) ## Check formatting, vet, and staticcheck.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(STATICCHECK) ./...

.PHONY: test
test: lint test-node test-hack ## Run every test (what CI runs).

.PHONY: test-node
test-node: ## Unit, cluster and linearizability tests of the node (real Raft over TCP, bbolt on disk).
	$(GO) test $(GOFLAGS_TEST) -timeout 20m ./node/...

.PHONY: test-hack
test-hack: ## Tests of the benchmark and image tooling under hack/.
	$(GO) test $(GOFLAGS_TEST) -timeout 10m ./hack/...

##@ Build

.PHONY: build
build: ## Build bin/buytracker-node.
	$(GO) build -o $(LOCALBIN)/buytracker-node ./node/cmd/buytracker-node

.PHONY: run
run: build ## Run a local cluster of three nodes on 127.0.0.1 (data in .run/, Ctrl-C stops it).
	hack/run-local.sh

.PHONY: bench
bench: build ## Go benchmarks of the state machine, then the cluster load benchmark (docs/benchmarks.md).
	$(GO) test -run '^$$' -bench . -benchmem ./node/...

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

$(STATICCHECK): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

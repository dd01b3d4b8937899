# buytracker: the Raft node, the operator, and their tests.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(shell pwd)/bin
GO ?= go
GOFLAGS_TEST ?= -count=1 -race

# The tooling under hack/ (benchmarks, the image and chart builders, the
# monitoring and chart tests) is its own Go module, hack/go.mod, so that the
# product's go.mod holds only what the node and the operator import; its
# targets run in TOOLS_DIR. hack/dashboard, hack/seaweedfs, hack/cert-manager,
# hack/k8s-assets and hack/etcd-assets are modules of their own.
TOOLS_DIR := hack

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
vet: ## Run go vet on the product and the tooling (hack/go.mod).
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/...
	$(GO) vet -tags chaos ./test/chaos/...
	cd $(TOOLS_DIR) && $(GO) vet ./... && $(GO) vet -tags integration ./bench/peers/adapter/

.PHONY: lint
lint: vet $(STATICCHECK) ## Check formatting, vet, and staticcheck.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags e2e ./test/...
	$(STATICCHECK) -tags chaos ./test/chaos/...
	cd $(TOOLS_DIR) && $(STATICCHECK) ./... && $(STATICCHECK) -tags integration ./bench/peers/adapter/

.PHONY: test
test: lint test-node test-hack verify test-operator test-plugin test-chart test-monitoring test-dashboard ## Run every test (what CI runs).

.PHONY: test-node
test-node: seaweedfs-assets ## Unit, cluster and linearizability tests of the node (real Raft over TCP, bbolt on disk, SeaweedFS as the S3 store).
	BUYTRACKER_SEAWEEDFS=$$(hack/build-seaweedfs.sh -q) BUYTRACKER_REQUIRE_SEAWEEDFS=1 \
	  $(GO) test $(GOFLAGS_TEST) -timeout 20m ./node/...

.PHONY: seaweedfs-assets
seaweedfs-assets: ## Build SeaweedFS's weed, the S3 object store of the backup tests (cached; ~9 min cold on 2 busy cores).
	hack/build-seaweedfs.sh >/dev/null

.PHONY: test-hack
test-hack: ## Tests of the benchmark and image tooling, the module hack/go.mod (hack/chart and hack/monitoring run in test-chart and test-monitoring, with their tools).
	cd $(TOOLS_DIR) && $(GO) test $(GOFLAGS_TEST) -timeout 10m $$($(GO) list ./... | grep -v -e '/hack/chart$$' -e '/hack/monitoring$$')

# The Jepsen-style suite (docs/reliability.md). A run prints its seed; the
# same seed replays the same schedule of faults.
CHAOS_SEED ?=
CHAOS_FAULTS ?= 100
CHAOS_BUDGET ?= 10m
CHAOS_KINDS ?=
CHAOS_DIR ?= $(CURDIR)/.chaos

.PHONY: test-chaos
test-chaos: ## As root: faults in network namespaces (partitions, pauses, crashes, lost volumes, clocks, disks, membership), every history checked.
	$(GO) test $(GOFLAGS_TEST) -timeout 15m ./test/chaos/...
	CHAOS_SEED=$(CHAOS_SEED) CHAOS_FAULTS=$(CHAOS_FAULTS) CHAOS_BUDGET=$(CHAOS_BUDGET) CHAOS_KINDS=$(CHAOS_KINDS) CHAOS_DIR=$(CHAOS_DIR) \
	  $(GO) test -tags chaos -count=1 -timeout 45m -v -run '^TestChaos$$' ./test/chaos/

##@ Build

.PHONY: build
build: ## Build bin/buytracker-node (and bin/buytracker-certs, which issues make run's certificates), bin/manager and bin/kubectl-buytracker.
	$(GO) build -o $(LOCALBIN)/buytracker-node ./node/cmd/buytracker-node
	cd $(TOOLS_DIR) && $(GO) build -o $(LOCALBIN)/buytracker-certs ./certs

.PHONY: run
RUN_DIR ?= .run
run: build ## Run a local cluster of three nodes on 127.0.0.1 (data in RUN_DIR, default .run/; RESTORE_FROM=FILE starts a new cluster from a backup; Ctrl-C stops it).
	RESTORE_FROM=$(RESTORE_FROM) hack/run-local.sh $(RUN_DIR)

.PHONY: bench
bench: build ## Go benchmarks of the state machine, then the cluster load benchmark (docs/benchmarks.md).
	$(GO) test -run '^$$' -bench 'Million|MemoryPerPurchase' -benchtime 1x -benchmem ./node/ledger/
	$(GO) test -run '^$$' -bench 'ApplyBatch|Stats|DecodeBuy' -benchmem ./node/...
	SKIP_BUILD=1 hack/bench/run.sh

.PHONY: bench-peers
bench-peers: build ## buytracker side by side with PostgreSQL, Redis and etcd (docs/benchmarks-peers.md).
	hack/bench/peers/run.sh

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

$(STATICCHECK): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

##@ Operator

# Tool versions: controller-tools v0.23.0 is built against k8s.io v0.37, as
# controller-runtime v0.25.2 is; kustomize v5.8.2 is the newest that builds
# with Go 1.26 (v5.8.3 needs Go 1.27).
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.2
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
KUBECTL ?= kubectl
# envtest runs a real kube-apiserver and etcd built from Go modules by hack/build-k8s-assets.sh.
BUYTRACKER_CACHE ?= $(HOME)/.cache/buytracker
ENVTEST_K8S_VERSION ?= v1.37.2
ENVTEST_ASSETS ?= $(BUYTRACKER_CACHE)/k8s/$(ENVTEST_K8S_VERSION)/bin
OPERATOR_IMG ?= buytracker/operator:dev
NODE_IMG ?= buytracker/node:dev
# Everything controller-gen writes; `make verify` fails when any of it is stale.
GENERATED := api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests under config/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the API's DeepCopy methods.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: verify
verify: manifests generate $(KUSTOMIZE) ## Regenerate code and manifests; fail when the committed ones differ.
	@for d in config/default config/samples; do $(KUSTOMIZE) build $$d >/dev/null || { echo "kustomize build $$d failed"; exit 1; }; done
	@git diff --exit-code -- $(GENERATED) || { echo "generated files are stale: run 'make manifests generate' and commit"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- $(GENERATED)); \
	  if [ -n "$$untracked" ]; then echo "generated files not committed: $$untracked"; exit 1; fi

.PHONY: check-gomod
check-gomod: ## Fail when the product's go.mod requires a module only the tooling (hack/go.mod) needs (gomod_test.go).
	$(GO) test -count=1 -run '^TestGoModHoldsOnlyTheProduct$$' .

verify: check-gomod

.PHONY: build-operator
build-operator: ## Build the operator, bin/manager.
	$(GO) build -o $(LOCALBIN)/manager .

.PHONY: plugin
plugin: ## Build the kubectl plugin, bin/kubectl-buytracker (docs/plugin.md; put it on PATH).
	$(GO) build -o $(LOCALBIN)/kubectl-buytracker ./cmd/kubectl-buytracker

build: build-operator plugin

.PHONY: run-operator
run-operator: manifests generate ## Run the operator against the current kubeconfig.
	$(GO) run . --node-image=$(NODE_IMG)

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver and etcd for envtest (cached; ~6 min cold on 2 cores).
	hack/build-k8s-assets.sh kube-apiserver etcd

.PHONY: cert-manager-assets
cert-manager-assets: ## Build cert-manager's CA-issuing controllers and copy its CRDs, for envtest (cached; ~1-2 min cold).
	hack/build-cert-manager.sh

.PHONY: test-operator
test-operator: envtest-assets cert-manager-assets ## API, builder, planner and envtest tests of the operator (real kube-apiserver, etcd and cert-manager).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) BUYTRACKER_REQUIRE_ENVTEST=1 \
	  $(GO) test $(GOFLAGS_TEST) -timeout 15m . ./api/... ./controllers/...

.PHONY: test-plugin
test-plugin: envtest-assets ## Tests of kubectl buytracker: its report and arguments, and its commands against a real API server and real node processes.
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) BUYTRACKER_REQUIRE_ENVTEST=1 \
	  $(GO) test $(GOFLAGS_TEST) -timeout 10m ./cmd/...

.PHONY: install
install: ## Install the CRD into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRD (and with it every BuyTracker) from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: $(KUSTOMIZE) ## Deploy the operator (config/default) with OPERATOR_IMG and NODE_IMG.
	$(KUSTOMIZE) build config/default \
	  | sed -e 's#image: buytracker/operator:dev#image: $(OPERATOR_IMG)#' -e 's#--node-image=buytracker/node:dev#--node-image=$(NODE_IMG)#' \
	  | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove the operator deployed by `make deploy`.
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: controller-gen kustomize
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen into bin/.
kustomize: $(KUSTOMIZE) ## Build kustomize into bin/.

$(CONTROLLER_GEN): | $(LOCALBIN)
	GOBIN=$(LOCALBIN)/.controller-gen $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/.controller-gen/controller-gen $@ && rmdir $(LOCALBIN)/.controller-gen

$(KUSTOMIZE): | $(LOCALBIN)
	GOBIN=$(LOCALBIN)/.kustomize $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(LOCALBIN)/.kustomize/kustomize $@ && rmdir $(LOCALBIN)/.kustomize

##@ Chart

# Helm v4.3.1, the newest release of the current major version: its go.mod
# asks for Go 1.26.0 and k8s.io v0.37, as ours does, and it builds with Go
# 1.26 (v3.22.0 would too). The ldflag makes `helm version` say v4.3.1, as a
# release build does, instead of the source's "v4.3".
HELM_VERSION ?= v4.3.1
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
CHART ?= charts/buytracker
# The chart's files that hack/chart writes from config/; `make verify` checks them too.
GENERATED += $(CHART)/crds $(CHART)/templates/manager-role.yaml

.PHONY: chart
chart: manifests ## Write the chart's CRD and the manager's ClusterRole or Roles from config/ (hack/chart).
	cd $(TOOLS_DIR) && $(GO) run ./chart -root ..

# `make verify` regenerates the chart too, and fails when it is stale.
verify: chart

.PHONY: test-chart
test-chart: $(HELM) $(KUSTOMIZE) envtest-assets ## Lint the chart, validate its renders against config/, install it on a real API server.
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --set serviceMonitor.enabled=true --set sample.enabled=true
	$(HELM) lint --strict $(CHART) --set 'watchNamespaces={shop,tills}'
	$(HELM) lint --strict $(CHART) --set podMonitor.enabled=true --set prometheusRule.enabled=true --set dashboard.enabled=true
	cd $(TOOLS_DIR) && BUYTRACKER_HELM=$(HELM) BUYTRACKER_KUSTOMIZE=$(KUSTOMIZE) KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) BUYTRACKER_REQUIRE_CHART_TOOLS=1 \
	  $(GO) test $(GOFLAGS_TEST) -timeout 5m ./chart/

.PHONY: helm
helm: $(HELM) ## Build helm into bin/.

$(HELM): | $(LOCALBIN)
	GOBIN=$(LOCALBIN)/.helm $(GO) install -ldflags '-X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)' \
	  helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/.helm/helm $@ && rmdir $(LOCALBIN)/.helm

##@ Monitoring

# Prometheus's Go module numbers Prometheus 3.x as v0.3xx: v0.316.0 is
# Prometheus 3.16. promtool and the server are built from it together by
# hack/build-prometheus.sh, cached by version outside the repository (a few
# minutes cold on 2 cores), and linked into bin/ on first use; without the
# builtinassets tag the server has no web UI (its pages answer 500), and its
# HTTP API, all the test needs, works.
PROMETHEUS_VERSION ?= v0.316.0
PROMTOOL ?= $(LOCALBIN)/promtool-$(PROMETHEUS_VERSION)
PROMETHEUS ?= $(LOCALBIN)/prometheus-$(PROMETHEUS_VERSION)
# The alerting rules: a plain Prometheus rules file, and the chart's
# PrometheusRule's only source (docs/operations.md).
RULES ?= $(CHART)/files/prometheus-rules.yaml

.PHONY: test-monitoring
test-monitoring: $(PROMTOOL) $(PROMETHEUS) ## promtool check and unit tests of every alert; a real Prometheus scraping a three-node cluster fires the quorum alert.
	$(PROMTOOL) check rules $(RULES)
	$(PROMTOOL) test rules hack/monitoring/tests/*.yaml
	cd $(TOOLS_DIR) && BUYTRACKER_PROMETHEUS=$(PROMETHEUS) BUYTRACKER_REQUIRE_PROMETHEUS=1 \
	  $(GO) test $(GOFLAGS_TEST) -timeout 5m ./monitoring/

# The dashboard's generator is its own module (hack/dashboard/go.mod), so
# that the product's go.mod does not carry grafana-foundation-sdk.
.PHONY: dashboard
dashboard: ## Write the chart's Grafana dashboard, charts/buytracker/files/dashboard.json, from hack/dashboard's Go code.
	cd hack/dashboard && $(GO) run .

.PHONY: test-dashboard
test-dashboard: ## The committed dashboard is the generator's output; its panels query metrics the node exports.
	cd hack/dashboard && $(GO) vet ./... && $(GO) test $(GOFLAGS_TEST) ./...

# `make verify` regenerates the dashboard too, and fails when it is stale.
GENERATED += $(CHART)/files/dashboard.json
verify: dashboard

.PHONY: print-prometheus-version
print-prometheus-version: ## Print the Prometheus module version the monitoring tests build.
	@echo $(PROMETHEUS_VERSION)

.PHONY: promtool prometheus
promtool: $(PROMTOOL) ## Build promtool (cached by version) and link it into bin/.
prometheus: $(PROMETHEUS) ## Build the Prometheus server (cached by version) and link it into bin/.

$(PROMTOOL): | $(LOCALBIN)
	ln -sf "$$(hack/build-prometheus.sh $(PROMETHEUS_VERSION))/promtool" $@

$(PROMETHEUS): | $(LOCALBIN)
	ln -sf "$$(hack/build-prometheus.sh $(PROMETHEUS_VERSION))/prometheus" $@

##@ End to end

.PHONY: test-e2e
test-e2e: $(HELM) ## On a fresh kind cluster built here (root or Docker needed): chart install, buys, faults, scaling, rolling update.
	HELM=$(HELM) hack/e2e.sh

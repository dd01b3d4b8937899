#!/usr/bin/env bash
# Usage: hack/kind/build-k8s.sh [kubernetes|extras|all|kubectl]   (default: all)
#
# Builds, from Go modules only, every binary the offline kind node and its images need:
#   kubernetes: kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler
#               kube-proxy, and etcd        -> $BUYTRACKER_CACHE/k8s/<k8s version>/bin
#   extras:     pause coredns crictl local-path-provisioner
#                                           -> $BUYTRACKER_CACHE/kind/extra/<k8s version>/bin
# A binary already in its cache directory is not built again. The Kubernetes directory is the
# one hack/build-k8s-assets.sh fills for envtest; when that script exists it is asked first.
# `kubectl` builds only kubectl (for a cluster made from kind's own node image).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

what=${1:-all}
case "$what" in
  kubernetes | extras | all | kubectl) ;;
  -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$what' (usage: hack/kind/build-k8s.sh [kubernetes|extras|all|kubectl])" ;;
esac
need go "install Go 1.26 into /usr/local/go"

K8S_COMMANDS=(kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)

# missing DIR NAME...: prints the NAMEs that DIR lacks.
missing() {
  local dir=$1 n; shift
  for n in "$@"; do [ -x "$dir/$n" ] || echo "$n"; done
}

# install_into DIR TMPDIR: move freshly built binaries into the cache atomically.
install_into() {
  local dir=$1 tmp=$2 f
  for f in "$tmp"/*; do mv -f "$f" "$dir/$(basename "$f")"; done
  rmdir "$tmp"
}

# The wrapper module requires k8s.io/kubernetes and points each staging module (required there
# as v0.0.0 and replaced by ./staging/...) at its published v0.<minor>.<patch> twin.
k8s_wrapper_module() {
  local dir=$KIND_CACHE/src/kubernetes-$K8S_VERSION staging_version gomod
  staging_version=v0.${K8S_VERSION#v1.}
  if [ -f "$dir/go.sum" ] && [ -f "$dir/.tidy" ]; then
    echo "$dir"
    return
  fi
  mkdir -p "$dir"
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r .GoMod)
  {
    printf 'module buytracker.dev/kind/kubernetes\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\n' "$K8S_VERSION"
    sed -nE 's#^[[:space:]]*(k8s\.io/[^[:space:]]+) => \./staging/.*#replace \1 => \1 '"$staging_version"'#p' "$gomod" | sort -u
  } >"$dir/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in "${K8S_COMMANDS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    printf ')\n'
  } >"$dir/tools.go"
  log "Resolving k8s.io/kubernetes $K8S_VERSION module graph in $dir"
  (cd "$dir" && nice_go mod tidy >&2)
  touch "$dir/.tidy"
  echo "$dir"
}

# build_kubernetes COMMAND...: build the named k8s.io/kubernetes/cmd/... binaries that are missing.
build_kubernetes() {
  mkdir -p "$K8S_BIN"
  local todo wanted=("$@")
  mapfile -t todo < <(missing "$K8S_BIN" "${wanted[@]}")
  if [ ${#todo[@]} -gt 0 ] && [ -x "$REPO_ROOT/hack/build-k8s-assets.sh" ]; then
    log "Asking hack/build-k8s-assets.sh for ${todo[*]}"
    "$REPO_ROOT/hack/build-k8s-assets.sh" "${todo[@]}" >&2 || log "hack/build-k8s-assets.sh failed; building here"
    mapfile -t todo < <(missing "$K8S_BIN" "${wanted[@]}")
  fi
  if [ ${#todo[@]} -eq 0 ]; then
    log "Kubernetes $K8S_VERSION binaries cached in $K8S_BIN"
    return
  fi
  local mod ldflags="-s -w" p minor tmp pkgs=()
  mod=$(k8s_wrapper_module)
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for p in "${todo[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$p"); done
  tmp=$(mktemp -d "$K8S_BIN/.build.XXXXXX")
  log "Building ${todo[*]} (Kubernetes $K8S_VERSION; a cold build takes 20-30 min on 2 cores)"
  (cd "$mod" && CGO_ENABLED=0 nice_go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  install_into "$K8S_BIN" "$tmp"
}

build_etcd() {
  [ -x "$K8S_BIN/etcd" ] && return
  local dir=$KIND_CACHE/src/etcd-$ETCD_VERSION tmp
  mkdir -p "$dir" "$K8S_BIN"
  if [ ! -f "$dir/.resolved" ]; then
    # etcd's server module carries replace directives, so `go install pkg@version` refuses it.
    printf 'module buytracker.dev/kind/etcd\n\ngo 1.26.0\n' >"$dir/go.mod"
    (cd "$dir" && nice_go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2)
    touch "$dir/.resolved"
  fi
  log "Building etcd $ETCD_VERSION"
  tmp=$(mktemp -d "$K8S_BIN/.build.XXXXXX")
  (cd "$dir" && CGO_ENABLED=0 nice_go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  install_into "$K8S_BIN" "$tmp"
}

build_extras() {
  mkdir -p "$EXTRA_BIN"
  local n tmp
  for n in $(missing "$EXTRA_BIN" pause coredns crictl local-path-provisioner); do
    log "Building $n"
    tmp=$(mktemp -d "$EXTRA_BIN/.build.XXXXXX")
    case "$n" in
      pause) (cd "$REPO_ROOT" && CGO_ENABLED=0 nice_go build -trimpath -ldflags "-s -w" -o "$tmp/pause" ./hack/kind/pause) ;;
      coredns) CGO_ENABLED=0 GOBIN=$tmp nice_go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" ;;
      crictl) CGO_ENABLED=0 GOBIN=$tmp nice_go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" ;;
      local-path-provisioner) CGO_ENABLED=0 GOBIN=$tmp nice_go install -trimpath -ldflags "-s -w" "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION" ;;
    esac
    install_into "$EXTRA_BIN" "$tmp"
  done
  log "Extras cached in $EXTRA_BIN"
}

case "$what" in
  kubernetes) with_lock k8s build_kubernetes "${K8S_COMMANDS[@]}"; with_lock etcd build_etcd ;;
  kubectl) with_lock k8s build_kubernetes kubectl ;;
  extras) with_lock extras build_extras ;;
  all)
    with_lock k8s build_kubernetes "${K8S_COMMANDS[@]}"
    with_lock etcd build_etcd
    with_lock extras build_extras
    ;;
esac

#!/usr/bin/env bash
# Usage: hack/kind/build-k8s.sh [kubernetes|extras|all|kubectl]   (default: all)
#
# Builds, from Go modules only, every binary the offline kind node and its images need:
#   kubernetes: kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler
#               kube-proxy etcd, through hack/build-k8s-assets.sh (the envtest builder, pinned
#               by hack/k8s-assets and hack/etcd-assets)
#                                           -> $BUYTRACKER_CACHE/k8s/<k8s version>/bin
#   extras:     pause coredns crictl local-path-provisioner
#                                           -> $BUYTRACKER_CACHE/kind/extra/<k8s version>/bin
#   kubectl:    kubectl only (to drive a cluster made from kind's own node image)
# A binary already cached is not built again.
set -euo pipefail
# shellcheck source=hack/kind/lib.sh
source "$(dirname "$0")/lib.sh"

what=${1:-all}
case "$what" in
  kubernetes | extras | all | kubectl) ;;
  -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$what' (usage: hack/kind/build-k8s.sh [kubernetes|extras|all|kubectl])" ;;
esac
need go "install Go 1.26 into /usr/local/go"
need flock "apt-get install util-linux"

build_kubernetes() {
  local assets=$REPO_ROOT/hack/build-k8s-assets.sh
  [ -x "$assets" ] || die "$assets is missing; it builds the Kubernetes binaries"
  "$assets" "$@" >/dev/null
}

# install_into DIR TMPDIR: move freshly built binaries into the cache atomically.
install_into() {
  local dir=$1 tmp=$2 f
  for f in "$tmp"/*; do mv -f "$f" "$dir/$(basename "$f")"; done
  rmdir "$tmp"
}

build_extras() {
  mkdir -p "$EXTRA_BIN"
  local n tmp
  for n in pause coredns crictl local-path-provisioner; do
    [ -x "$EXTRA_BIN/$n" ] && continue
    log "Building $n"
    tmp=$(mktemp -d "$EXTRA_BIN/.build.XXXXXX")
    case "$n" in
      pause) (cd "$REPO_ROOT/hack" && CGO_ENABLED=0 nice_go build -trimpath -ldflags "-s -w" -o "$tmp/pause" ./kind/pause) ;;
      coredns) CGO_ENABLED=0 GOBIN=$tmp nice_go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" ;;
      crictl) CGO_ENABLED=0 GOBIN=$tmp nice_go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" ;;
      local-path-provisioner) CGO_ENABLED=0 GOBIN=$tmp nice_go install -trimpath -ldflags "-s -w" "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION" ;;
    esac
    install_into "$EXTRA_BIN" "$tmp"
  done
  log "Extras cached in $EXTRA_BIN"
}

case "$what" in
  kubernetes) build_kubernetes kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd ;;
  kubectl) build_kubernetes kubectl ;;
  extras) with_lock extras build_extras ;;
  all)
    build_kubernetes kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd
    with_lock extras build_extras
    ;;
esac

#!/usr/bin/env bash
# Usage: hack/kind/cluster.sh up [--image local|kind|REF] | down | load IMAGE|ARCHIVE... | kubeconfig
#
#   up          create the kind cluster $CLUSTER_NAME (default buytracker-e2e) unless it runs,
#               then wait, bounded by $BUYTRACKER_KIND_WAIT (default 180s), for CoreDNS and the
#               local-path provisioner. Node image (--image, or $BUYTRACKER_KIND_NODE_IMAGE):
#                 local  (default) buytracker/kind-node:<k8s version>, built here with no
#                        registry by hack/kind/node-image.sh (as root)
#                 kind   kind's own default node image, pulled from its registry
#                 REF    any other node image
#   down        delete the cluster (nothing happens when there is none)
#   load        load local Docker images, or image archives (*.tar), into the cluster's node
#   kubeconfig  print the path of the cluster's kubeconfig (also printed by `up`)
set -euo pipefail
# shellcheck source=hack/kind/lib.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
wait_for=${BUYTRACKER_KIND_WAIT:-180s}
kubeconfig=$KIND_CACHE/clusters/$CLUSTER_NAME.kubeconfig

kubectl_bin() {
  if [ -x "$K8S_BIN/kubectl" ]; then
    echo "$K8S_BIN/kubectl"
  elif command -v kubectl >/dev/null 2>&1; then
    command -v kubectl
  else
    "$KIND_DIR/build-k8s.sh" kubectl >&2
    echo "$K8S_BIN/kubectl"
  fi
}

cluster_exists() { "$KIND_BIN" get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; }

# The cluster is usable only while its node container runs (a Docker restart stops it).
cluster_running() {
  [ "$(docker inspect -f '{{.State.Running}}' "$CLUSTER_NAME-control-plane" 2>/dev/null)" = true ]
}

kind_config() {
  cat <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: $CLUSTER_NAME
nodes:
- role: control-plane
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  # Kubernetes >= 1.35 refuses cgroup v1 hosts (this VM) unless told otherwise; no-op on v2.
  failCgroupV1: false
YAML
}

diagnose() {
  local kubectl=$1
  log "Cluster not ready in $wait_for; state follows"
  "$kubectl" --kubeconfig "$kubeconfig" get nodes,pods -A -o wide >&2 || true
  "$kubectl" --kubeconfig "$kubeconfig" get events -A --sort-by=.lastTimestamp >&2 | tail -n 30 || true
}

wait_ready() {
  local kubectl
  kubectl=$(kubectl_bin)
  log "Waiting up to $wait_for for CoreDNS and the local-path provisioner"
  if ! "$kubectl" --kubeconfig "$kubeconfig" -n kube-system rollout status deploy/coredns --timeout="$wait_for" >&2 ||
    ! "$kubectl" --kubeconfig "$kubeconfig" -n local-path-storage rollout status deploy/local-path-provisioner \
      --timeout="$wait_for" >&2; then
    diagnose "$kubectl"
    die "cluster $CLUSTER_NAME is not ready"
  fi
}

up() {
  local mode=${BUYTRACKER_KIND_NODE_IMAGE:-local} image_args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --image) [ $# -ge 2 ] || die "--image needs a value (local, kind or an image reference)"; mode=$2; shift 2 ;;
      --image=*) mode=${1#--image=}; shift ;;
      *) usage >&2; die "unknown argument '$1'" ;;
    esac
  done
  need_docker
  "$KIND_DIR/build-kind.sh"
  if cluster_exists && ! cluster_running; then
    log "Cluster $CLUSTER_NAME exists but its node is stopped; recreating it"
    "$KIND_BIN" delete cluster --name "$CLUSTER_NAME" >&2
  fi
  if cluster_exists; then
    log "Cluster $CLUSTER_NAME already runs"
    "$KIND_BIN" get kubeconfig --name "$CLUSTER_NAME" >"$kubeconfig"
  else
    case "$mode" in
      local)
        "$KIND_DIR/node-image.sh"
        image_args=(--image "$NODE_IMAGE")
        ;;
      kind) ;;
      *) image_args=(--image "$mode") ;;
    esac
    mkdir -p "$(dirname "$kubeconfig")"
    log "Creating cluster $CLUSTER_NAME (${image_args[1]:-the default node image of kind})"
    kind_config | "$KIND_BIN" create cluster --name "$CLUSTER_NAME" --config - "${image_args[@]}" \
      --kubeconfig "$kubeconfig" --wait "$wait_for" >&2
  fi
  wait_ready
  log "Cluster $CLUSTER_NAME ready"
  echo "export KUBECONFIG=$kubeconfig"
}

down() {
  [ -x "$KIND_BIN" ] || "$KIND_DIR/build-kind.sh"
  if cluster_exists; then
    log "Deleting cluster $CLUSTER_NAME"
    "$KIND_BIN" delete cluster --name "$CLUSTER_NAME" >&2
  else
    log "No cluster $CLUSTER_NAME"
  fi
  rm -f "$kubeconfig"
}

load() {
  [ $# -gt 0 ] || die "load needs at least one image or archive"
  cluster_exists || die "no cluster $CLUSTER_NAME; run hack/kind/cluster.sh up"
  local ref
  for ref in "$@"; do
    if [ -f "$ref" ]; then
      log "Loading archive $ref"
      "$KIND_BIN" load image-archive --name "$CLUSTER_NAME" "$ref" >&2
    else
      log "Loading image $ref"
      "$KIND_BIN" load docker-image --name "$CLUSTER_NAME" "$ref" >&2
    fi
  done
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  up) up "$@" ;;
  down) down ;;
  load) load "$@" ;;
  kubeconfig) echo "$kubeconfig" ;;
  -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
log "Done in $((SECONDS - _t0)) s"

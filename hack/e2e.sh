#!/usr/bin/env bash
# Usage: hack/e2e.sh            (what `make test-e2e` runs)
#
# Runs the end-to-end suite (test/e2e) on a fresh kind cluster:
#   1. as root on Debian, hack/kind/prereqs.sh installs and starts Docker (elsewhere a running
#      Docker daemon is required);
#   2. hack/kind/cluster.sh up creates the cluster $CLUSTER_NAME (default buytracker-e2e) from
#      the node image built here with no registry, or from kind's own image when
#      BUYTRACKER_KIND_NODE_IMAGE=kind (a machine with internet);
#   3. the node and operator images are built (hack/image/build.sh) and loaded into it, the
#      node image under two tags so the suite can roll from one to the other;
#   4. go test -tags e2e ./test/e2e, which installs the chart with $HELM;
#   5. the cluster is deleted. When the suite fails, the logs of every pod and the events are
#      in $BUYTRACKER_E2E_ARTIFACTS (default .e2e-artifacts/), with `kind export logs`, and the
#      end of each pod's log is printed.
# BUYTRACKER_E2E_KEEP=1 keeps the cluster afterwards; BUYTRACKER_E2E_RUN=REGEXP runs only the
# steps it matches (go test -run, e.g. 'TestEndToEnd/(InstallWithChart|ThreeReplicasAvailable)$').
# Every phase prints its duration.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO_ROOT"
export PATH="/usr/local/go/bin:$PATH"

case "${1:-}" in
  -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "e2e.sh: unknown argument '$1'" >&2; exit 2 ;;
esac

HELM=${HELM:?set HELM to the helm binary (make test-e2e builds it into bin/)}
export CLUSTER_NAME=${CLUSTER_NAME:-buytracker-e2e}
artifacts=${BUYTRACKER_E2E_ARTIFACTS:-$REPO_ROOT/.e2e-artifacts}
node_image=buytracker/node:dev
node_image_rolled=buytracker/node:dev-rolled
operator_image=buytracker/operator:dev
seaweedfs_image=buytracker/seaweedfs:dev # the in-cluster object store of the backup steps

t0=$SECONDS
phase_start=$SECONDS
phases=()
log() { printf '[e2e +%ss] %s\n' "$((SECONDS - t0))" "$*" >&2; }
phase_done() {
  phases+=("$(printf '%-28s %4ss' "$1" "$((SECONDS - phase_start))")")
  phase_start=$SECONDS
}
summary() {
  log "Timings:"
  local p
  for p in "${phases[@]}"; do printf '    %s\n' "$p" >&2; done
  printf '    %-28s %4ss\n' total "$((SECONDS - t0))" >&2
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  hack/kind/prereqs.sh
elif ! docker info >/dev/null 2>&1; then
  echo "e2e.sh: no Docker daemon answers; as root on Debian hack/kind/prereqs.sh installs and starts one" >&2
  exit 1
fi
phase_done prerequisites

cleanup() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -n "${KUBECONFIG:-}" ]; then
    log "Failed (exit $rc); collecting logs into $artifacts"
    mkdir -p "$artifacts"
    kubectl get pods -A -o wide >"$artifacts/pods.txt" 2>&1 || true
    kubectl get events -A --sort-by=.lastTimestamp >"$artifacts/events.txt" 2>&1 || true
    bin/kind export logs --name "$CLUSTER_NAME" "$artifacts/kind" >/dev/null 2>&1 || true
    cat "$artifacts/pods.txt" >&2 || true
    local f
    while IFS= read -r f; do
      printf '\n----- %s (last 40 lines) -----\n' "${f#"$artifacts"/}" >&2
      tail -n 40 "$f" >&2
    done < <(find "$artifacts" -path "$artifacts/kind" -prune -o -name '*.log' -print 2>/dev/null | sort)
  fi
  if [ "${BUYTRACKER_E2E_KEEP:-0}" = 1 ]; then
    log "Keeping cluster $CLUSTER_NAME (BUYTRACKER_E2E_KEEP=1)"
  else
    hack/kind/cluster.sh down || true
  fi
  phase_done "cluster delete"
  summary
  exit "$rc"
}

rm -rf "$artifacts"
# A cluster left by an earlier run may hold state from it: start from a new one.
hack/kind/cluster.sh down
trap cleanup EXIT
up_out=$(hack/kind/cluster.sh up)
eval "$up_out"
export KUBECONFIG
phase_done "cluster up"

hack/image/build.sh node --tag "$node_image" --load kind
hack/image/build.sh node --tag "$node_image_rolled" --load kind
hack/image/build.sh manager --tag "$operator_image" --load kind
hack/image/build.sh seaweedfs --tag "$seaweedfs_image" --load kind
make plugin >/dev/null
phase_done "images build + load"

log "Running the suite"
BUYTRACKER_E2E_HELM="$HELM" \
BUYTRACKER_E2E_CHART="$REPO_ROOT/charts/buytracker" \
BUYTRACKER_E2E_OPERATOR_IMAGE="$operator_image" \
BUYTRACKER_E2E_NODE_IMAGE="$node_image" \
BUYTRACKER_E2E_NODE_IMAGE_ROLLED="$node_image_rolled" \
BUYTRACKER_E2E_ARTIFACTS="$artifacts" \
BUYTRACKER_E2E_PLUGIN="$REPO_ROOT/bin/kubectl-buytracker" \
BUYTRACKER_E2E_SEAWEEDFS_IMAGE="$seaweedfs_image" \
  go test -tags e2e -count=1 -v -timeout 30m -run "${BUYTRACKER_E2E_RUN:-TestEndToEnd}" ./test/e2e/
phase_done "suite"

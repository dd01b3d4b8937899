# shellcheck shell=bash disable=SC2034  # settings used by the scripts that source this
# Shared settings for the hack/kind scripts; sourced, never run.
#
# Every version the offline kind cluster is built from is pinned here (Kubernetes and etcd in
# hack/k8s-assets and hack/etcd-assets), and every build product is cached under
# $BUYTRACKER_CACHE keyed by version, so a second run skips what is already built.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# pinned_version GOMOD MODULE: the version GOMOD requires MODULE at.
pinned_version() {
  awk -v m="$2" '$1 == "require" && $2 == m { print $3; exit } $1 == m && $2 ~ /^v/ { print $2; exit }' "$1"
}

KIND_VERSION=${KIND_VERSION:-v0.33.0}
# Kubernetes and etcd are pinned where hack/build-k8s-assets.sh builds them (envtest uses the
# same binaries), so the node image and envtest never disagree.
K8S_VERSION=$(pinned_version "$REPO_ROOT/hack/k8s-assets/go.mod" k8s.io/kubernetes)
[ -n "$K8S_VERSION" ] || { echo "hack/k8s-assets/go.mod does not pin k8s.io/kubernetes" >&2; exit 1; }
ETCD_VERSION=$(pinned_version "$REPO_ROOT/hack/etcd-assets/go.mod" go.etcd.io/etcd/server/v3)
# kubeadm v1.37 asks for etcd:3.7.0-0; etcd 3.6 is the newest server on the module proxy and
# runs a v1.37 control plane, so it is tagged with the name kubeadm wants.
ETCD_IMAGE_TAG=3.7.0-0
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.6}
CRICTL_VERSION=${CRICTL_VERSION:-v1.37.0}
LOCAL_PATH_VERSION=${LOCAL_PATH_VERSION:-v0.0.30}
# kubeadm pins pause:3.10.2; kind's containerd config names pause:3.10 as the sandbox image.
PAUSE_TAGS="3.10.2 3.10"
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

NODE_IMAGE=${NODE_IMAGE:-buytracker/kind-node:$K8S_VERSION}
CLUSTER_NAME=${CLUSTER_NAME:-buytracker-e2e}

KIND_DIR="$REPO_ROOT/hack/kind"
CACHE_ROOT=${BUYTRACKER_CACHE:-$HOME/.cache/buytracker}
# Shared with hack/build-k8s-assets.sh: one directory of Kubernetes binaries per version.
K8S_BIN="$CACHE_ROOT/k8s/$K8S_VERSION/bin"
KIND_CACHE="$CACHE_ROOT/kind"
EXTRA_BIN="$KIND_CACHE/extra/$K8S_VERSION/bin"
ROOTFS_DIR="$KIND_CACHE/rootfs/$DEBIAN_SUITE"
IMAGES_DIR="$KIND_CACHE/images/$K8S_VERSION"
KIND_BIN="$REPO_ROOT/bin/kind"

export GOFLAGS=${GOFLAGS:--buildvcs=false}
export PATH="/usr/local/go/bin:$PATH"

_t0=$SECONDS
log() { printf '[%s +%ss] %s\n' "$(basename "$0")" "$((SECONDS - _t0))" "$*" >&2; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# need CMD [HINT]: fail early, naming the missing prerequisite and how to get it.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  die "'$1' not found${2:+: $2}"
}

need_root() { [ "$(id -u)" = 0 ] || die "$1 must run as root (debootstrap, chroot, dockerd)"; }

need_docker() {
  need docker "run hack/kind/prereqs.sh"
  docker info >/dev/null 2>&1 || die "no Docker daemon answers; run hack/kind/prereqs.sh (it installs and starts one)"
}

# Heavy builds yield the CPU to whatever else runs on the machine.
nice_go() { nice -n 19 go "$@"; }

# stamp_ok FILE KEY: true when FILE records KEY, i.e. the step was finished with these inputs.
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
stamp_set() { mkdir -p "$(dirname "$1")" && printf '%s' "$2" >"$1"; }

# hash_of PATH...: content key of the scripts and files a cached product was made from.
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# with_lock NAME CMD...: serialise a build step between concurrent runs.
with_lock() {
  local name=$1; shift
  mkdir -p "$KIND_CACHE/locks"
  (
    flock 9
    "$@"
  ) 9>"$KIND_CACHE/locks/$name.lock"
}

# no_mounts_under DIR: refuse to archive or delete a rootfs that still has something mounted in it.
no_mounts_under() {
  if awk -v d="$1/" 'index($2, d) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    die "$1 still has mounts (see /proc/mounts); unmount them first"
  fi
}

#!/usr/bin/env bash
# Usage: hack/build-k8s-assets.sh [-q] BINARY...
#
# Builds Kubernetes and etcd binaries from Go modules (no release downloads) into
#   ${BUYTRACKER_CACHE:-$HOME/.cache/buytracker}/k8s/<kubernetes version>/bin
# and prints that directory on stdout (for KUBEBUILDER_ASSETS).
#
# BINARY is one of:
#   kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl
#       built from k8s.io/kubernetes, pinned by hack/k8s-assets/go.mod
#   etcd
#       built from go.etcd.io/etcd/server/v3, pinned by hack/etcd-assets/go.mod
#
# A binary already in the directory that reports the pinned version is kept, so a second
# run costs nothing; concurrent runs wait for each other. Cold, on 2 cores: kube-apiserver
# about 4.5 min, etcd about 1 min. -q: no progress on stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K8S_MOD="$ROOT/hack/k8s-assets"
ETCD_MOD="$ROOT/hack/etcd-assets"
K8S_COMMANDS=" kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl "
quiet=false

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { printf 'build-k8s-assets: error: %s\n' "$*" >&2; exit 1; }
log() { $quiet || printf 'build-k8s-assets: %s\n' "$*" >&2; }

# required_version GOMOD MODULE: the version GOMOD requires MODULE at.
required_version() {
  local v
  v=$(awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1")
  [ -n "$v" ] || die "$1 does not require $2"
  echo "$v"
}

# has_version BINARY VERSION: the cached binary exists and reports VERSION.
has_version() {
  local bin="$BIN_DIR/$1" out
  [ -x "$bin" ] || return 1
  case "$1" in
    kubectl) out=$("$bin" version --client -o json 2>/dev/null | grep -o '"gitVersion": *"[^"]*"') || return 1 ;;
    kubeadm) out=$("$bin" version -o short 2>/dev/null) || return 1 ;;
    *) out=$("$bin" --version 2>/dev/null) || return 1 ;;
  esac
  [[ "$out" == *"${2#v}"* ]]
}

build_kubernetes() {
  local minor pkgs=() ldflags="-s -w" p tmp
  minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  # The version a component reports (and kubeadm checks) comes from these variables.
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for p in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$p"); done
  tmp=$(mktemp -d "$BIN_DIR/.build.XXXXXX")
  log "building $* (Kubernetes $K8S_VERSION)"
  (cd "$K8S_MOD" && CGO_ENABLED=0 nice -n 10 go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}") ||
    { rm -rf "$tmp"; die "go build of $* failed (module $K8S_MOD)"; }
  for p in "$@"; do mv -f "$tmp/$p" "$BIN_DIR/$p"; done
  rm -rf "$tmp"
}

build_etcd() {
  local tmp
  tmp=$(mktemp -d "$BIN_DIR/.build.XXXXXX")
  log "building etcd $ETCD_VERSION"
  (cd "$ETCD_MOD" && CGO_ENABLED=0 nice -n 10 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3) ||
    { rm -rf "$tmp"; die "go build of etcd failed (module $ETCD_MOD)"; }
  mv -f "$tmp/etcd" "$BIN_DIR/etcd"
  rm -rf "$tmp"
}

while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    -q) quiet=true; shift ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { usage >&2; exit 2; }
for b in "$@"; do
  [[ "$K8S_COMMANDS" == *" $b "* || "$b" == etcd ]] || die "unknown binary '$b' (see --help)"
done
command -v go >/dev/null 2>&1 || die "go not found in PATH (Go 1.26 is needed)"
command -v flock >/dev/null 2>&1 || die "flock not found (apt-get install util-linux)"

K8S_VERSION=$(required_version "$K8S_MOD/go.mod" k8s.io/kubernetes)
ETCD_VERSION=$(required_version "$ETCD_MOD/go.mod" go.etcd.io/etcd/server/v3)
BIN_DIR="${BUYTRACKER_CACHE:-$HOME/.cache/buytracker}/k8s/$K8S_VERSION/bin"
mkdir -p "$BIN_DIR" || die "cannot create $BIN_DIR"
export GOFLAGS=-buildvcs=false GOWORK=off

exec 9>"$BIN_DIR/.lock"
flock 9

k8s_todo=()
etcd_todo=false
for b in "$@"; do
  if [ "$b" = etcd ]; then
    has_version etcd "$ETCD_VERSION" || etcd_todo=true
  elif ! has_version "$b" "$K8S_VERSION"; then
    k8s_todo+=("$b")
  fi
done
start=$SECONDS
[ ${#k8s_todo[@]} -eq 0 ] || build_kubernetes "${k8s_todo[@]}"
! $etcd_todo || build_etcd
if [ ${#k8s_todo[@]} -eq 0 ] && ! $etcd_todo; then
  log "$* cached in $BIN_DIR"
else
  log "done in $((SECONDS - start))s: $BIN_DIR"
fi
echo "$BIN_DIR"

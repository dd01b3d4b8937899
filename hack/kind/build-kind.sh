#!/usr/bin/env bash
# Usage: hack/kind/build-kind.sh
#
# Builds the kind CLI from its Go module (sigs.k8s.io/kind, $KIND_VERSION) and puts it at
# bin/kind. The binary is cached as $BUYTRACKER_CACHE/kind/bin/kind-<version>, so a fresh
# work tree on the same machine only copies it.
set -euo pipefail
# shellcheck source=hack/kind/lib.sh
source "$(dirname "$0")/lib.sh"

case "${1:-}" in
  "") ;;
  -h | --help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (usage: hack/kind/build-kind.sh)" ;;
esac

cached=$KIND_CACHE/bin/kind-$KIND_VERSION
if [ -x "$KIND_BIN" ] && "$KIND_BIN" version 2>/dev/null | grep -q "kind $KIND_VERSION "; then
  log "bin/kind is $KIND_VERSION"
  exit 0
fi
build() {
  [ -x "$cached" ] && return
  need go "install Go 1.26 into /usr/local/go"
  log "Building kind $KIND_VERSION from sigs.k8s.io/kind"
  local tmp
  mkdir -p "$(dirname "$cached")"
  tmp=$(mktemp -d "$KIND_CACHE/bin/.build.XXXXXX")
  CGO_ENABLED=0 GOBIN=$tmp nice_go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
  mv -f "$tmp/kind" "$cached"
  rmdir "$tmp"
}
with_lock kind-cli build
mkdir -p "$(dirname "$KIND_BIN")"
install -m0755 "$cached" "$KIND_BIN"
log "bin/kind: $("$KIND_BIN" version)"

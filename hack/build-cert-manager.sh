#!/usr/bin/env bash
# Usage: hack/build-cert-manager.sh [-q]
#
# Builds the part of cert-manager's controller that issues from a CA Issuer
# (hack/cert-manager/main.go, cert-manager pinned by hack/cert-manager/go.mod)
# and copies cert-manager's CRDs of the same version (cert-manager.io:
# Certificates, CertificateRequests, Issuers, ClusterIssuers) next to it:
#   ${BUYTRACKER_CACHE:-$HOME/.cache/buytracker}/cert-manager/<version>/{bin/cert-manager-controller,crds/}
# and prints that directory on stdout (for BUYTRACKER_CERT_MANAGER). Nothing is
# downloaded but Go modules. A binary built from the pinned version is kept, so
# a second run costs nothing; concurrent runs wait for each other. Cold, on 2
# busy cores: about 2 minutes. -q: no progress on stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MOD="$ROOT/hack/cert-manager"
quiet=false
die() { printf 'build-cert-manager: error: %s\n' "$*" >&2; exit 1; }
log() { $quiet || printf 'build-cert-manager: %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -q) quiet=true; shift ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
command -v go >/dev/null 2>&1 || die "go not found in PATH (Go 1.26 is needed)"
command -v flock >/dev/null 2>&1 || die "flock not found (apt-get install util-linux)"

VERSION=$(awk '$1 == "require" && $2 == "github.com/cert-manager/cert-manager" { print $3; exit }' "$MOD/go.mod")
[ -n "$VERSION" ] || die "$MOD/go.mod does not require github.com/cert-manager/cert-manager"
DIR="${BUYTRACKER_CACHE:-$HOME/.cache/buytracker}/cert-manager/$VERSION"
mkdir -p "$DIR/bin" "$DIR/crds" || die "cannot create $DIR"
export GOFLAGS=-buildvcs=false GOWORK=off

exec 9>"$DIR/.lock"
flock 9

# The binary is rebuilt when main.go or go.sum changed since it was built.
stamp=$(cat "$MOD/main.go" "$MOD/go.sum" | sha256sum | cut -c1-16)
if [ -x "$DIR/bin/cert-manager-controller" ] && [ "$(cat "$DIR/bin/.stamp" 2>/dev/null)" = "$stamp" ] && [ -s "$DIR/crds/cert-manager.io_issuers.yaml" ]; then
  log "cert-manager $VERSION cached in $DIR"
  echo "$DIR"
  exit 0
fi
start=$SECONDS
log "building cert-manager $VERSION's controller"
tmp=$(mktemp -d "$DIR/.build.XXXXXX")
(cd "$MOD" && CGO_ENABLED=0 nice -n 10 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp/cert-manager-controller" .) ||
  { rm -rf "$tmp"; die "go build of cert-manager's controller failed (module $MOD)"; }
src=$(cd "$MOD" && go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)
[ -d "$src/deploy/crds" ] || die "no deploy/crds in $src"
for crd in certificates certificaterequests issuers clusterissuers; do
  cp "$src/deploy/crds/cert-manager.io_$crd.yaml" "$tmp/" || { rm -rf "$tmp"; die "cannot copy the $crd CRD"; }
done
mv -f "$tmp"/*.yaml "$DIR/crds/"
mv -f "$tmp/cert-manager-controller" "$DIR/bin/"
echo "$stamp" >"$DIR/bin/.stamp"
rm -rf "$tmp"
log "done in $((SECONDS - start))s: $DIR"
echo "$DIR"

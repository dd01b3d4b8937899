#!/usr/bin/env bash
# Usage: hack/build-seaweedfs.sh [-q]
#
# Builds SeaweedFS's `weed` command (its S3 gateway is the object store of the
# node's backup tests), pinned by hack/seaweedfs/go.mod, into
#   ${BUYTRACKER_CACHE:-$HOME/.cache/buytracker}/seaweedfs/<version>/weed
# and prints that path on stdout (for BUYTRACKER_SEAWEEDFS). Nothing is
# downloaded but Go modules. A binary built from the pinned version is kept, so
# a second run costs nothing; concurrent runs wait for each other. Cold, on 2
# busy cores: about 9 minutes (plus about 1 minute of module downloads);
# the binary is about 160 MB.
# -q: no progress on stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MOD="$ROOT/hack/seaweedfs"
PKG=github.com/seaweedfs/seaweedfs/weed
quiet=false
die() { printf 'build-seaweedfs: error: %s\n' "$*" >&2; exit 1; }
log() { $quiet || printf 'build-seaweedfs: %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -q) quiet=true; shift ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
command -v go >/dev/null 2>&1 || die "go not found in PATH (Go 1.26 is needed)"
command -v flock >/dev/null 2>&1 || die "flock not found (apt-get install util-linux)"

# The version is the one go.mod requires (tidy marks it indirect: only the
# tool directive names it).
VERSION=$(awk '($1 == "require" && $2 == "github.com/seaweedfs/seaweedfs") { print $3; exit }
               ($1 == "github.com/seaweedfs/seaweedfs" && $2 ~ /^v/) { print $2; exit }' "$MOD/go.mod")
[ -n "$VERSION" ] || die "$MOD/go.mod does not require github.com/seaweedfs/seaweedfs"
DIR="${BUYTRACKER_CACHE:-$HOME/.cache/buytracker}/seaweedfs/$VERSION"
mkdir -p "$DIR" || die "cannot create $DIR"
export GOFLAGS=-buildvcs=false GOWORK=off

exec 9>"$DIR/.lock"
flock 9

# The binary is rebuilt when go.mod or go.sum changed since it was built.
stamp=$(cat "$MOD/go.mod" "$MOD/go.sum" | sha256sum | cut -c1-16)
if [ -x "$DIR/weed" ] && [ "$(cat "$DIR/.stamp" 2>/dev/null)" = "$stamp" ]; then
  log "seaweedfs $VERSION cached in $DIR"
  echo "$DIR/weed"
  exit 0
fi
start=$SECONDS
log "building seaweedfs $VERSION's weed (several minutes cold)"
tmp=$(mktemp -d "$DIR/.build.XXXXXX")
# Built as SeaweedFS's own docker build does: no cgo, no symbols.
(cd "$MOD" && CGO_ENABLED=0 nice -n 19 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp/weed" "$PKG") ||
  { rm -rf "$tmp"; die "go build of $PKG failed (module $MOD)"; }
"$tmp/weed" version >/dev/null 2>&1 || { rm -rf "$tmp"; die "the built weed does not run"; }
mv -f "$tmp/weed" "$DIR/weed"
echo "$stamp" >"$DIR/.stamp"
rm -rf "$tmp"
log "done in $((SECONDS - start))s: $DIR/weed"
echo "$DIR/weed"

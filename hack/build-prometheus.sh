#!/usr/bin/env bash
# Usage: hack/build-prometheus.sh VERSION
#
# Builds promtool and the Prometheus server of github.com/prometheus/prometheus@VERSION (the
# alert rules' tests, docs/operations.md) in one `go install`, so that they share one compile,
# into ${BUYTRACKER_CACHE:-$HOME/.cache/buytracker}/prometheus/VERSION/ and prints that
# directory. Nothing is downloaded but Go modules. A finished build is kept, so a second run
# costs nothing; concurrent runs wait for each other. No web UI assets are embedded (the
# builtinassets tag is not set): the tests need only the HTTP API.
set -euo pipefail

die() { printf 'build-prometheus: error: %s\n' "$*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: $0 VERSION"
case "$1" in -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
VERSION=$1
command -v go >/dev/null 2>&1 || die "go not found in PATH (Go 1.26 is needed)"
command -v flock >/dev/null 2>&1 || die "flock not found (apt-get install util-linux)"

DIR="${BUYTRACKER_CACHE:-$HOME/.cache/buytracker}/prometheus/$VERSION"
mkdir -p "$DIR" || die "cannot create $DIR"
exec 9>"$DIR/.lock"
flock 9
if [ -x "$DIR/promtool" ] && [ -x "$DIR/prometheus" ]; then
  echo "$DIR"
  exit 0
fi
start=$SECONDS
printf 'build-prometheus: building promtool and prometheus %s (several minutes cold)\n' "$VERSION" >&2
tmp=$(mktemp -d "$DIR/.build.XXXXXX")
GOFLAGS=-buildvcs=false GOBIN="$tmp" CGO_ENABLED=0 nice -n 19 go install -trimpath -ldflags "-s -w" \
  "github.com/prometheus/prometheus/cmd/promtool@$VERSION" \
  "github.com/prometheus/prometheus/cmd/prometheus@$VERSION" ||
  { rm -rf "$tmp"; die "go install of prometheus $VERSION failed"; }
"$tmp/promtool" --version >/dev/null 2>&1 || { rm -rf "$tmp"; die "the built promtool does not run"; }
mv -f "$tmp/promtool" "$tmp/prometheus" "$DIR/"
rm -rf "$tmp"
printf 'build-prometheus: done in %ss: %s\n' "$((SECONDS - start))" "$DIR" >&2
echo "$DIR"

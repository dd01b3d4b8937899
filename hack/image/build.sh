#!/usr/bin/env bash
# Usage: hack/image/build.sh node|manager|seaweedfs [--tag REF] [--binary PATH] [--docker] [--load auto|docker|kind|none]
#
# Builds the container image of the Raft node (default tag buytracker/node:dev, /buytracker-node),
# of the operator (buytracker/operator:dev, /manager), or of the end-to-end suite's object store
# (buytracker/seaweedfs:dev, /weed: SeaweedFS's binary from hack/build-seaweedfs.sh, cached by
# version; daemonless only) with no image from any registry:
#   1. the static binary is built on this machine with the local Go toolchain (CGO_ENABLED=0,
#      GOARCH from the environment or the host), or taken from --binary (a prebuilt or stub one);
#   2. the image is a scratch image with that binary, uid 65532, and /etc/passwd naming it:
#      by default written daemonless by hack/image/scratchimage to bin/image/<target>.tar;
#      with --docker, `docker build --target <target>` from the repository's Dockerfile;
#   3. --load: auto (default: into Docker when a daemon answers), docker, kind (into the
#      hack/kind cluster, as an archive), or none.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="/usr/local/go/bin:$PATH" GOFLAGS=${GOFLAGS:--buildvcs=false}

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '[image] %s\n' "$*" >&2; }

target=${1:-}
case "$target" in
  node) package=./node/cmd/buytracker-node binary_name=buytracker-node tag=buytracker/node:dev ;;
  manager) package=. binary_name=manager tag=buytracker/operator:dev ;;
  seaweedfs) package="" binary_name=weed tag=buytracker/seaweedfs:dev ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac
shift
binary="" use_docker=0 load=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; tag=$2; shift 2 ;;
    --tag=*) tag=${1#--tag=}; shift ;;
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary=$2; shift 2 ;;
    --binary=*) binary=${1#--binary=}; shift ;;
    --docker) use_docker=1; shift ;;
    --load) [ $# -ge 2 ] || die "--load needs a value"; load=$2; shift 2 ;;
    --load=*) load=${1#--load=}; shift ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
case "$load" in auto | docker | kind | none) ;; *) die "--load must be auto, docker, kind or none" ;; esac
command -v go >/dev/null || die "go not found: install Go 1.26 into /usr/local/go"

docker_up() { command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; }

cd "$REPO_ROOT"
goarch=${GOARCH:-$(go env GOARCH)}
stage=bin/image/$target
archive=bin/image/$target.tar
# The Dockerfile copies both stage directories (the legacy builder builds every stage before
# the target), so both exist, if empty.
mkdir -p bin/image/node bin/image/manager
mkdir -p "$stage"
rm -f "$stage/$binary_name"
if [ "$target" = seaweedfs ]; then
  [ "$use_docker" = 0 ] || die "the seaweedfs image is built daemonless only"
  [ -n "$binary" ] || binary=$(hack/build-seaweedfs.sh -q)
fi

if [ -n "$binary" ]; then
  [ -f "$binary" ] || die "--binary $binary: no such file"
  install -m0755 "$binary" "$stage/$binary_name"
  log "Using $binary as /$binary_name"
else
  if ! go list "$package" >/dev/null 2>&1; then
    die "$package does not build here yet (go list $package fails); pass --binary PATH"
  fi
  log "Building $package for linux/$goarch (CGO_ENABLED=0)"
  CGO_ENABLED=0 GOOS=linux GOARCH=$goarch nice -n 19 go build -trimpath -ldflags "-s -w" \
    -o "$stage/$binary_name" "$package"
fi
file_type=$(od -An -c -N4 "$stage/$binary_name" | tr -d ' ')
[ "$file_type" = '177ELF' ] || log "warning: $stage/$binary_name is not an ELF binary"

revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$use_docker" = 1 ]; then
  docker_up || die "--docker needs a Docker daemon (hack/kind/prereqs.sh starts one); without --docker none is needed"
  log "docker build --target $target -t $tag"
  docker build --quiet --target "$target" --label "org.opencontainers.image.revision=$revision" \
    -t "$tag" -f Dockerfile . >/dev/null
  docker save -o "$archive" "$tag"
else
  log "Writing $archive (daemonless)"
  # scratchimage is in the tooling's module (hack/go.mod), so it runs from hack/ on
  # absolute paths.
  nice -n 19 go -C hack run ./image/scratchimage \
    -file "$REPO_ROOT/$stage/$binary_name:/$binary_name" -entrypoint "/$binary_name" -platform "linux/$goarch" \
    -label "org.opencontainers.image.title=buytracker-$target" \
    -label "org.opencontainers.image.revision=$revision" \
    -tag "$tag" -o "$REPO_ROOT/$archive"
fi

case "$load" in
  auto) if [ "$use_docker" = 0 ] && docker_up; then docker load -q -i "$archive" >&2; fi ;;
  docker) docker_up || die "--load docker: no Docker daemon answers"; [ "$use_docker" = 1 ] || docker load -q -i "$archive" >&2 ;;
  kind) "$REPO_ROOT/hack/kind/cluster.sh" load "$REPO_ROOT/$archive" ;;
  none) ;;
esac
log "$tag: $archive"
echo "$tag"

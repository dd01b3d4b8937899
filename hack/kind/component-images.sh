#!/usr/bin/env bash
# Usage: hack/kind/component-images.sh   (as root, with a Docker daemon)
#
# Builds the images kubeadm and kind start inside the node, none of which can be pulled here:
# kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, etcd, pause, CoreDNS and
# kind's local-path provisioner and helper. Every one is the same layer (the "base" rootfs plus
# the binaries from hack/kind/build-k8s.sh) under the name and tag the cluster asks for; pause
# and CoreDNS get their own entrypoint. The result is one `docker save` archive, cached at
# $BUYTRACKER_CACHE/kind/images/<k8s version>/components.tar, that node-image.sh pre-loads
# into the node's containerd.
set -euo pipefail
# shellcheck source=hack/kind/lib.sh
source "$(dirname "$0")/lib.sh"

case "${1:-}" in
  "") ;;
  -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (usage: hack/kind/component-images.sh)" ;;
esac
need_root "hack/kind/component-images.sh"

archive=$IMAGES_DIR/components.tar
key="$(hash_of "$KIND_DIR/lib.sh" "$0") $K8S_VERSION $ETCD_VERSION $COREDNS_VERSION $LOCAL_PATH_VERSION $KIND_VERSION"
if stamp_ok "$archive.done" "$key" && [ -f "$archive" ]; then
  log "Component images cached in $archive"
  exit 0
fi

"$KIND_DIR/build-k8s.sh" all
"$KIND_DIR/rootfs.sh" base
need_docker

# The local-path images are the ones kind's own storage manifest names (pkg/build/nodeimage).
kind_src=$(go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)
storage_consts=$kind_src/pkg/build/nodeimage/const_storage.go
provisioner_image=$(sed -nE 's/^const storageProvisionerImage = "(.*)"$/\1/p' "$storage_consts")
helper_image=$(sed -nE 's/^const storageHelperImage = "(.*)"$/\1/p' "$storage_consts")
if [ -z "$provisioner_image" ] || [ -z "$helper_image" ]; then
  die "cannot read the storage images from $storage_consts"
fi

work=$IMAGES_DIR/component-rootfs
mkdir -p "$IMAGES_DIR"
no_mounts_under "$ROOTFS_DIR/base"
rm -rf "$work"
mkdir -p "$work"
tar -C "$ROOTFS_DIR/base" --one-file-system -c . | tar -C "$work" -x
for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd; do
  install -m0755 "$K8S_BIN/$b" "$work/usr/local/bin/$b"
done
for b in pause coredns local-path-provisioner; do
  install -m0755 "$EXTRA_BIN/$b" "$work/usr/local/bin/$b"
done

shared=buytracker/kind-components:$K8S_VERSION
log "Importing the shared component layer as $shared"
tar -C "$work" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$shared" >/dev/null
rm -rf "$work"

images=()
# tag_as REF: the shared image under REF (kubeadm's manifests name the command to run).
tag_as() { docker tag "$shared" "$1"; images+=("$1"); }
# with_entrypoint REF PATH: the shared image plus an empty layer that sets ENTRYPOINT.
with_entrypoint() {
  local container
  container=$(docker create "$shared" /bin/true)
  docker commit --change "ENTRYPOINT [\"$2\"]" --change 'CMD []' "$container" "$1" >/dev/null
  docker rm "$container" >/dev/null
  images+=("$1")
}

for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  tag_as "registry.k8s.io/$c:$K8S_VERSION"
done
tag_as "registry.k8s.io/etcd:$ETCD_IMAGE_TAG"
for t in $PAUSE_TAGS; do with_entrypoint "registry.k8s.io/pause:$t" /usr/local/bin/pause; done
with_entrypoint "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" /usr/local/bin/coredns
tag_as "$provisioner_image"
tag_as "$helper_image"

log "Saving ${#images[@]} images to $archive"
docker save -o "$archive.tmp" "${images[@]}"
mv -f "$archive.tmp" "$archive"
printf '%s\n' "${images[@]}" >"$IMAGES_DIR/components.list"
stamp_set "$archive.done" "$key"
log "Component images: $(tr '\n' ' ' <"$IMAGES_DIR/components.list")"

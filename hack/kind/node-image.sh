#!/usr/bin/env bash
# Usage: hack/kind/node-image.sh [--force]   (as root, with a Docker daemon)
#
# Builds the kind node image $NODE_IMAGE (default buytracker/kind-node:<k8s version>) with no
# registry: the debootstrapped "node" rootfs dressed the way kind's base image is (kind's own
# files from its Go module: entrypoint, systemd units, containerd config, kubelet drop-ins),
# plus kubeadm, kubelet and kubectl, a static bridge CNI, kind's default storage manifest, and
# the component images pre-loaded into containerd. Skipped when the image already carries the
# label of the same inputs; --force rebuilds it.
#
# Settings this VM forces: containerd's restrict_oom_score_adj = true (without CAP_SYS_RESOURCE
# runc cannot lower oom_score_adj, and every pod sandbox dies with "can't get final child's PID
# from pipe: EOF"); the kubelet's failCgroupV1: false is set by cluster.sh's kind config.
set -euo pipefail
# shellcheck source=hack/kind/lib.sh
source "$(dirname "$0")/lib.sh"

force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (usage: hack/kind/node-image.sh [--force])" ;;
esac
need_root "hack/kind/node-image.sh"
need_docker
need containerd "run hack/kind/prereqs.sh (the host's containerd pre-loads the images)"
need ctr "run hack/kind/prereqs.sh"

label=dev.buytracker.kind-node.inputs
key=$(hash_of "$KIND_DIR/lib.sh" "$0" "$KIND_DIR/rootfs.sh" "$KIND_DIR/component-images.sh" "$KIND_DIR/build-k8s.sh")
key="$key-$K8S_VERSION-$KIND_VERSION-$ETCD_VERSION-$COREDNS_VERSION-$CRICTL_VERSION"
have=$(docker image inspect "$NODE_IMAGE" --format "{{ index .Config.Labels \"$label\" }}" 2>/dev/null || true)
if [ "$force" = 0 ] && [ "$have" = "$key" ]; then
  log "$NODE_IMAGE is up to date"
  exit 0
fi

"$KIND_DIR/build-k8s.sh" all
"$KIND_DIR/rootfs.sh" node
"$KIND_DIR/component-images.sh"

kind_src=$(go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)
files=$kind_src/images/base/files
[ -d "$files" ] || die "kind's base image files are missing from $kind_src"

root=$IMAGES_DIR/node-rootfs
no_mounts_under "$ROOTFS_DIR/node"
[ -d "$root" ] && no_mounts_under "$root"
rm -rf "$root"
mkdir -p "$root"
log "Assembling the node rootfs in $root"
tar -C "$ROOTFS_DIR/node" --one-file-system -c . | tar -C "$root" -x

# kind's base image (images/base/Dockerfile), with Debian's containerd, runc and CNI plugins.
install -m0755 "$files"/usr/local/bin/* "$root/usr/local/bin/"
mkdir -p "$root/kind/bin"
cp -r "$files/kind/." "$root/kind/"
chmod 0755 "$root/kind" "$root/kind/bin" "$root"/kind/bin/*
mkdir -p "$root/etc/containerd" "$root/etc/default" "$root/etc/sysctl.d" \
  "$root/etc/systemd/system/kubelet.service.d" "$root/etc/kubernetes/manifests" \
  "$root/opt/cni/bin" "$root/etc/cni/net.d" "$root/kind/manifests"
install -m0644 "$files/etc/crictl.yaml" "$root/etc/"
install -m0644 "$files/etc/default/kubelet" "$root/etc/default/"
install -m0644 "$files"/etc/sysctl.d/* "$root/etc/sysctl.d/"
install -m0644 "$files"/etc/systemd/system/kubelet.service.d/* "$root/etc/systemd/system/kubelet.service.d/"
for unit in containerd.service kubelet.service kubelet.slice undo-mount-hacks.service; do
  install -m0644 "$files/etc/systemd/system/$unit" "$root/etc/systemd/system/"
done
sed 's/^\([[:space:]]*restrict_oom_score_adj\) = false/\1 = true/' \
  "$files/etc/containerd/config.toml" >"$root/etc/containerd/config.toml"
grep -q 'restrict_oom_score_adj = true' "$root/etc/containerd/config.toml" ||
  die "kind's containerd config no longer has restrict_oom_score_adj; update $0"

# Debian's containerd lives in /usr/bin; kind's unit (which wins over Debian's in /lib) runs
# /usr/local/bin/containerd.
ln -sf /usr/bin/containerd "$root/usr/local/bin/containerd"
install -m0755 "$EXTRA_BIN/crictl" "$root/usr/local/bin/crictl"

# systemd as kind trims it: no units but ours, no kmsg reading, /sbin/init.
find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
  "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
  "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
grep -q '^ReadKMsg=no' "$root/etc/systemd/journald.conf" || echo 'ReadKMsg=no' >>"$root/etc/systemd/journald.conf"
ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
systemctl --root="$root" enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
systemctl --root="$root" mask systemd-binfmt.service >/dev/null 2>&1

# CRI's base runtime spec: kind's product-files hook, and no rlimits (the VM cannot raise them).
chroot "$root" ctr oci spec |
  jq '.hooks.createContainer += [{"path": "/kind/bin/mount-product-files.sh"}] | del(.process.rlimits)' \
    >"$root/etc/containerd/cri-base.json"

# CNI: Debian's plugins where containerd looks, and one static bridge network. kindnetd has no
# Go module to build it from here, so the cluster is single-node.
for p in host-local loopback ptp portmap bridge; do cp "$root/usr/lib/cni/$p" "$root/opt/cni/bin/"; done
cat >"$root/etc/cni/net.d/10-buytracker-bridge.conflist" <<'JSON'
{
  "cniVersion": "0.4.0",
  "name": "buytracker-bridge",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
# kind applies this file as "the CNI"; the network itself is the static file above.
cat >"$root/kind/manifests/default-cni.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: buytracker-static-cni
  namespace: kube-system
data:
  note: "single-node bridge network from /etc/cni/net.d/10-buytracker-bridge.conflist (hack/kind/node-image.sh)"
YAML
# kind's default StorageClass manifest, taken from its source with the image names filled in.
storage_consts=$kind_src/pkg/build/nodeimage/const_storage.go
provisioner_image=$(sed -nE 's/^const storageProvisionerImage = "(.*)"$/\1/p' "$storage_consts")
helper_image=$(sed -nE 's/^const storageHelperImage = "(.*)"$/\1/p' "$storage_consts")
# shellcheck disable=SC2016 # the backticks are Go's raw-string quotes, not shell
sed -n '/^const defaultStorageManifest = `/,/^`$/p' "$storage_consts" | sed '1d;$d' |
  sed -e "s#\` + storageProvisionerImage + \`#$provisioner_image#g" \
    -e "s#\` + storageHelperImage + \`#$helper_image#g" >"$root/kind/manifests/default-storage.yaml"
grep -q 'kind: StorageClass' "$root/kind/manifests/default-storage.yaml" ||
  die "could not extract kind's storage manifest from $storage_consts"
! grep -q '` +' "$root/kind/manifests/default-storage.yaml" ||
  die "kind's storage manifest has substitutions this script does not know; update $0"

# The node image stage of `kind build node-image`.
for b in kubeadm kubelet kubectl; do install -m0755 "$K8S_BIN/$b" "$root/usr/bin/$b"; done
printf '%s' "$K8S_VERSION" >"$root/kind/version"

preload_images() {
  local state=$KIND_CACHE/preload-containerd pid
  rm -rf "$state"
  mkdir -p "$state"
  cat >"$state/config.toml" <<TOML
version = 2
root = "$root/var/lib/containerd"
state = "$state/run"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$state/containerd.sock"
TOML
  containerd --config "$state/config.toml" >"$state/containerd.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 60); do [ -S "$state/containerd.sock" ] && break; sleep 0.5; done
  [ -S "$state/containerd.sock" ] || { kill "$pid"; die "throwaway containerd did not start ($state/containerd.log)"; }
  # As `kind build node-image` does: pinned, not unpacked (the node unpacks on first use).
  ctr -a "$state/containerd.sock" -n k8s.io images import --label=io.cri-containerd.pinned=pinned \
    --all-platforms --no-unpack --digests "$IMAGES_DIR/components.tar" >/dev/null
  ctr -a "$state/containerd.sock" -n k8s.io images ls -q >&2
  kill "$pid"
  wait "$pid" || true
  rm -rf "$state"
}
log "Pre-loading the component images into the node's containerd"
with_lock preload preload_images

no_mounts_under "$root"
# kind's image also sets STOPSIGNAL SIGRTMIN+3, which `docker import` (20.10) refuses; kind
# removes nodes with `docker rm -f`, so the stop signal never matters.
log "Importing $NODE_IMAGE"
tar -C "$root" --one-file-system -c . | docker import \
  --change 'ENV container=docker' \
  --change "LABEL $label=$key" \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
  - "$NODE_IMAGE" >/dev/null
rm -rf "$root"
log "$NODE_IMAGE built ($(docker image inspect "$NODE_IMAGE" --format '{{.Size}}') bytes)"

#!/usr/bin/env bash
# Usage: hack/kind/rootfs.sh [node|base|all]   (default: all; as root)
#
# debootstraps the two Debian root file systems the offline kind images start from, and keeps
# them pristine under $BUYTRACKER_CACHE/kind/rootfs/<suite>/ (later steps work on copies):
#   node: systemd, containerd, runc and the CNI plugins, the distribution kind's base image has
#   base: a minimal userland (shell, iptables, conntrack) under the control-plane component
#         images; kube-proxy needs iptables and the local-path helper needs a shell
# Downloaded .debs are kept in $BUYTRACKER_CACHE/kind/debs, so a rebuild downloads nothing.
set -euo pipefail
# shellcheck source=hack/kind/lib.sh
source "$(dirname "$0")/lib.sh"

what=${1:-all}
case "$what" in
  node | base | all) ;;
  -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$what' (usage: hack/kind/rootfs.sh [node|base|all])" ;;
esac
need_root "hack/kind/rootfs.sh"
need debootstrap "run hack/kind/prereqs.sh"

NODE_PACKAGES=systemd,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod
NODE_PACKAGES+=,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,containerd,runc
NODE_PACKAGES+=,containernetworking-plugins,socat,ebtables,e2fsprogs,less
BASE_PACKAGES=iptables,nftables,conntrack,ipset,kmod,ca-certificates

# bootstrap NAME PACKAGES: debootstrap into $ROOTFS_DIR/NAME unless its stamp matches.
bootstrap() {
  local name=$1 packages=$2 dir=$ROOTFS_DIR/$1 key m
  key="$DEBIAN_SUITE $DEBIAN_MIRROR $packages"
  if stamp_ok "$dir.done" "$key"; then
    log "$name rootfs cached in $dir"
    return
  fi
  mkdir -p "$ROOTFS_DIR" "$KIND_CACHE/debs"
  [ -d "$dir" ] && no_mounts_under "$dir" && rm -rf "$dir"
  rm -f "$dir.done"
  log "debootstrap $name rootfs ($DEBIAN_SUITE; log: $dir.log)"
  if ! debootstrap --variant=minbase --include="$packages" --cache-dir="$KIND_CACHE/debs" \
    "$DEBIAN_SUITE" "$dir" "$DEBIAN_MIRROR" >"$dir.log" 2>&1; then
    tail -n 20 "$dir.log" >&2
    die "debootstrap of the $name rootfs failed (log: $dir.log)"
  fi
  # debootstrap can leave the target's /proc mounted.
  for m in dev/pts dev sys proc; do
    if mountpoint -q "$dir/$m"; then umount -l "$dir/$m"; fi
  done
  no_mounts_under "$dir"
  chroot "$dir" apt-get clean
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
  stamp_set "$dir.done" "$key"
}

case "$what" in
  node) with_lock rootfs-node bootstrap node "$NODE_PACKAGES" ;;
  base) with_lock rootfs-base bootstrap base "$BASE_PACKAGES" ;;
  all)
    with_lock rootfs-node bootstrap node "$NODE_PACKAGES"
    with_lock rootfs-base bootstrap base "$BASE_PACKAGES"
    ;;
esac

#!/usr/bin/env bash
# Usage: hack/kind/prereqs.sh [--no-start]
#
# Installs what an offline kind cluster needs on a Debian machine (as root) and starts the
# Docker daemon: docker.io, debootstrap, containerd (its ctr pre-loads images into the node),
# jq, and raised inotify limits. Safe to run again: it installs only what is missing and leaves
# a healthy daemon alone.
#
# On a host whose capability bounding set lacks CAP_SYS_RESOURCE (this VM), Docker < 23 or
# runc < 1.2 cannot start --privileged containers; then hack/kind/runc-nosysresource becomes
# dockerd's default runtime. Docker >= 23 with runc >= 1.2 needs no wrapper.
set -euo pipefail
# shellcheck source=hack/kind/lib.sh
source "$(dirname "$0")/lib.sh"

start=1
case "${1:-}" in
  "") ;;
  --no-start) start=0 ;;
  -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (usage: hack/kind/prereqs.sh [--no-start])" ;;
esac
need_root "hack/kind/prereqs.sh"
need apt-get "a Debian or Ubuntu machine is required"

wrapper_path=/usr/local/sbin/buytracker-runc-nosysresource
daemon_json=/etc/docker/daemon.json

install_packages() {
  local pkgs=(docker.io containerd runc debootstrap jq iptables util-linux procps ca-certificates)
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "Debian packages present"
    return
  fi
  log "Installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# version_ge A B: true when dotted version A >= B.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# CAP_SYS_RESOURCE is capability 24.
host_lacks_sys_resource() {
  local bnd
  bnd=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)
  (( (0x$bnd >> 24 & 1) == 0 ))
}

needs_wrapper() {
  host_lacks_sys_resource || return 1
  local dockerd_v runc_v
  dockerd_v=$(dockerd --version | sed -E 's/^Docker version ([0-9.]+).*/\1/')
  runc_v=$(runc --version | awk 'NR == 1 { print $3 }' | sed -E 's/[^0-9.].*//')
  log "Host lacks CAP_SYS_RESOURCE; dockerd $dockerd_v, runc $runc_v"
  ! { version_ge "$dockerd_v" 23 && version_ge "$runc_v" 1.2; }
}

# configure_runtime: prints "changed" when daemon.json was rewritten.
configure_runtime() {
  if ! needs_wrapper; then
    log "No OCI runtime wrapper needed"
    return
  fi
  install -m0755 "$KIND_DIR/runc-nosysresource" "$wrapper_path.new"
  if ! cmp -s "$wrapper_path.new" "$wrapper_path" 2>/dev/null; then
    mv "$wrapper_path.new" "$wrapper_path"
  else
    rm -f "$wrapper_path.new"
  fi
  local current='{}' wanted
  [ -s "$daemon_json" ] && current=$(cat "$daemon_json")
  wanted=$(jq --arg p "$wrapper_path" \
    '.runtimes.nosysresource.path = $p | ."default-runtime" = "nosysresource"' <<<"$current")
  if [ "$(jq -S . <<<"$current")" != "$(jq -S . <<<"$wanted")" ]; then
    mkdir -p "$(dirname "$daemon_json")"
    printf '%s\n' "$wanted" >"$daemon_json"
    log "dockerd default runtime: $wrapper_path ($daemon_json)"
    echo changed
  fi
}

# kind nodes run systemd, kubelet and many watchers; Debian's defaults are too small for them.
raise_inotify_limits() {
  local key want have
  for key in fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512; do
    want=${key#*=}
    have=$(sysctl -n "${key%%=*}")
    [ "$have" -ge "$want" ] || sysctl -q -w "$key"
  done
}

docker_up() { timeout 10 docker info >/dev/null 2>&1; }

start_docker() {
  local restart=$1
  if docker_up && [ "$restart" = 0 ]; then
    log "Docker daemon running"
    return
  fi
  if [ -d /run/systemd/system ]; then
    log "Starting docker with systemd"
    systemctl enable docker >/dev/null 2>&1 || true
    if [ "$restart" = 1 ]; then systemctl restart docker; else systemctl start docker; fi
  else
    # No init system (a container or a bare VM): dockerd runs in the background, started here.
    if [ "$restart" = 1 ] && [ -f /var/run/docker.pid ]; then
      log "Restarting dockerd for the new default runtime"
      kill "$(cat /var/run/docker.pid)" 2>/dev/null || true
      for _ in $(seq 1 30); do [ -f /var/run/docker.pid ] || break; sleep 1; done
    fi
    log "Starting dockerd (log: /var/log/buytracker-dockerd.log)"
    nohup setsid dockerd >>/var/log/buytracker-dockerd.log 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do
    docker_up && { log "Docker daemon ready"; return; }
    sleep 1
  done
  die "dockerd did not answer within 60 s; see /var/log/buytracker-dockerd.log"
}

install_packages
raise_inotify_limits
changed=$(configure_runtime)
if [ "$start" = 1 ]; then
  restart=0
  [ "$changed" = changed ] && restart=1
  start_docker "$restart"
  docker version --format 'Docker client {{.Client.Version}}, daemon {{.Server.Version}}' >&2
fi
need go "install Go 1.26 (https://go.dev/dl) into /usr/local/go"
log "Prerequisites ready"

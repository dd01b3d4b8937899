#!/usr/bin/env bash
# Usage: hack/bench/run.sh [-h]
#
# The cluster load benchmark of docs/benchmarks.md (issue 2). Builds the node,
# the load generator and the ceiling server into bin/, starts three nodes on
# 127.0.0.1 and measures, in this order:
#   1. the ceiling: a trivial Go HTTP server, POST /buy then GET /stats, $CONNS connections
#   2. POST /buy, $CONNS connections
#   3. the prototype's loads replayed open-loop: 50, 200, 300 users offering 21, 83, 114 req/s
#   4. GET /stats, $CONNS connections, with 1,000 purchases (on a fresh cluster)
#   5. a preload to $PRELOAD purchases, then GET /stats again
#   6. a snapshot of that state on every node (asked for through the admin API,
#      POST /snapshot), each node's resident memory, and a follower's restart
#      from its snapshot (restore time, time to ready)
#   7. a backup of that state (admin API GET /backup, linearizable, to a file:
#      time and size), then a new three-node cluster started from it with
#      --restore-from (time until every node is ready, and its count checked)
# PHASES=buy runs 1 and 2 only (the ceiling's POST /buy, then POST /buy), in
# under a minute: the quick measurement for tuning writes.
# It prints a Markdown report and writes it to $BENCH_DIR/bench-results.md.
#
# Environment [default]:
#   PHASES         all: every run above; buy: the ceiling's POST /buy and POST /buy only [all]
#   TARGET         all: load spread over the three client URLs, as a Service would [all]
#                  leader: the leader's client URL only
#   CONNS          closed-loop connections [256]
#   WARMUP         warm-up before each measurement [2s]
#   DURATION       measured time of each closed-loop run [10s]
#   OPEN_DURATION  measured time of each open-loop run [30s]
#   MIX            open-loop request mix [buy=60,stats=30,health=10]
#   STATS_QUERY    query of GET /stats [timeframe_hours=1]
#   PRELOAD        purchases recorded before the second GET /stats run [1000000]
#   PRELOAD_LIMIT  time allowed for the preload [300s]
#   NODE_FLAGS     extra flags for every node [--snapshot-interval=5s]
#   READY_TIMEOUT  seconds allowed for the nodes to become ready [60]
#   SNAPSHOT_WAIT  seconds allowed for each node to snapshot the preloaded state [60]
#   BENCH_DIR      data, logs and results [a new directory under ${TMPDIR:-/tmp}]
#   KEEP_DATA      1 keeps the nodes' data directories after the run [0]
#   SKIP_BUILD     1 uses the binaries already in bin/ [0]
#   CLIENT         the load generator's HTTP client: raw (minimal, cheap) or std (net/http) [raw]
#   LOADGEN_CPUS   pin the load generator to these CPUs with taskset, e.g. 1 [not pinned]
#   NODE_BIN       the node binary to measure, for A/B runs of two builds [bin/buytracker-node]
#   TLS            1: the members talk mutual TLS (--tls-dir), as make run and the
#                  operator run them; 0: plain TCP, to measure what TLS costs [1]
set -euo pipefail

if [ $# -gt 0 ]; then
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
  [ "$1" = -h ] || [ "$1" = --help ] && exit 0
  exit 2
fi
cd "$(dirname "$0")/../.."

PHASES=${PHASES:-all}
TARGET=${TARGET:-all}
CONNS=${CONNS:-256}
WARMUP=${WARMUP:-2s}
DURATION=${DURATION:-10s}
OPEN_DURATION=${OPEN_DURATION:-30s}
MIX=${MIX:-buy=60,stats=30,health=10}
STATS_QUERY=${STATS_QUERY:-timeframe_hours=1}
PRELOAD=${PRELOAD:-1000000}
PRELOAD_LIMIT=${PRELOAD_LIMIT:-300s}
NODE_FLAGS=${NODE_FLAGS---snapshot-interval=5s}
READY_TIMEOUT=${READY_TIMEOUT:-60}
SNAPSHOT_WAIT=${SNAPSHOT_WAIT:-60}
KEEP_DATA=${KEEP_DATA:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
CLIENT=${CLIENT:-raw}
LOADGEN_CPUS=${LOADGEN_CPUS:-}
TLS=${TLS:-1}
case $TLS in 0 | 1) ;; *) echo "run.sh: TLS=$TLS: want 0 or 1" >&2; exit 2 ;; esac
case $PHASES in all | buy) ;; *) echo "run.sh: PHASES=$PHASES: want all or buy" >&2; exit 2 ;; esac
case $CLIENT in raw | std) ;; *) echo "run.sh: CLIENT=$CLIENT: want raw or std" >&2; exit 2 ;; esac
case $TARGET in all | leader) ;; *) echo "run.sh: TARGET=$TARGET: want all or leader" >&2; exit 2 ;; esac
SMALL=1000 # purchases for the first GET /stats run
[ "$PRELOAD" -gt "$SMALL" ] || { echo "run.sh: PRELOAD=$PRELOAD: want more than $SMALL" >&2; exit 2; }

node_bin=${NODE_BIN:-bin/buytracker-node} certs_bin=bin/buytracker-certs loadgen=bin/bench-loadgen ceiling_bin=bin/bench-ceiling report_bin=bin/bench-report
ceiling_url=http://127.0.0.1:18090
cluster=n1=127.0.0.1:17081,n2=127.0.0.1:17082,n3=127.0.0.1:17083
read -ra node_flags <<<"$NODE_FLAGS"

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
client_url() { echo "http://127.0.0.1:1808$1"; }

# Processes this script started; cleanup stops every one of them.
node_pid=([1]="" [2]="" [3]="")
ceiling_pid="" sampler_pid="" loadgen_pid=""

stop_pid() { # stop_pid PID: SIGTERM, up to 30 s to finish, then SIGKILL
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop_node() { [ -z "${node_pid[$1]}" ] || stop_pid "${node_pid[$1]}"; node_pid[$1]=""; }
stop_sampler() { [ -z "$sampler_pid" ] || stop_pid "$sampler_pid"; sampler_pid=""; }
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_sampler
  [ -z "$loadgen_pid" ] || stop_pid "$loadgen_pid"
  [ -z "$ceiling_pid" ] || stop_pid "$ceiling_pid"
  for i in 1 2 3; do stop_node "$i"; done
  if [ "$KEEP_DATA" != 1 ] && [ -n "${data:-}" ]; then rm -rf "$data"; fi
  [ -z "${out:-}" ] || log "logs and results in $out"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_node() { # start_node I: node nI on ports 1808I (client), 1908I (admin), 1708I (Raft)
  local i=$1 tls=()
  [ "$TLS" = 0 ] || tls=(--tls-dir="$out/tls/n$i")
  "$node_bin" --id="n$i" --data-dir="$data/n$i" \
    --http-addr="127.0.0.1:1808$i" --admin-addr="127.0.0.1:1908$i" --raft-addr="127.0.0.1:1708$i" \
    --initial-cluster="$cluster" --admin-token-file="$out/admin-token" "${tls[@]}" "${node_flags[@]}" \
    >>"$out/logs/n$i.log" 2>&1 &
  node_pid[i]=$!
}

wait_ready() { # wait_ready I...: until GET /ready answers 200 on each, at most READY_TIMEOUT s
  local deadline=$((SECONDS + READY_TIMEOUT)) i
  for i in "$@"; do
    until curl -fsS --max-time 2 -o /dev/null "$(client_url "$i")/ready" 2>/dev/null; do
      kill -0 "${node_pid[$i]}" 2>/dev/null || die "node n$i exited; see $out/logs/n$i.log"
      if [ "$SECONDS" -ge "$deadline" ]; then
        die "node n$i not ready after ${READY_TIMEOUT}s: $(curl -sS --max-time 2 "$(client_url "$i")/ready" 2>&1); see $out/logs/n$i.log"
      fi
      sleep 0.2
    done
  done
}

start_fresh_cluster() {
  for i in 1 2 3; do stop_node "$i"; done
  rm -rf "$data" && mkdir -p "$data"
  for i in 1 2 3; do start_node "$i"; done
  wait_ready 1 2 3
  log "cluster ready, leader $(leader_id)"
}

leader_id() { curl -fsS --max-time 5 "$(client_url 1)/ready" | sed -n 's/.*"leader":"\([^"]*\)".*/\1/p'; }

# targets: the URLs the load goes to, per TARGET.
targets() {
  if [ "$TARGET" = leader ]; then
    local id
    id=$(leader_id)
    [ -n "$id" ] || die "no leader known"
    client_url "${id#n}"
  else
    echo "$(client_url 1),$(client_url 2),$(client_url 3)"
  fi
}

measure() { # measure NAME LABEL LOADGEN-ARGS...: one load run, its result in results/NAME.json
  local name=$1 label=$2
  shift 2
  log "$label"
  # In the background so that a signal reaches cleanup at once, not after the run.
  local pin=()
  [ -z "$LOADGEN_CPUS" ] || pin=(taskset -c "$LOADGEN_CPUS")
  "${pin[@]}" "$loadgen" -json -label "$label" -client "$CLIENT" -stats-query "$STATS_QUERY" "$@" >"$out/results/$name.json" &
  loadgen_pid=$!
  local status=0
  wait "$loadgen_pid" || status=$?
  loadgen_pid=""
  return "$status"
}

metric_value() { # metric_value URL NAME: the value of an unlabelled metric, as an integer
  curl -fsS --max-time 5 "$1/metrics" | awk -v name="$2" '$1 == name { printf "%.0f", $2; exit }'
}

# The sampler reads every node's snapshot metrics and purchase count once a
# second, so that each snapshot can be matched with the purchases it held.
sample_once() {
  for i in 1 2 3; do
    curl -fsS --max-time 1 "$(client_url "$i")/metrics" 2>/dev/null |
      awk -v node="n$i" '/^buytracker_purchases |^[a-z_]*snapshot[a-z_]*_(sum|count) / { print node, $1, $2 }' || true
  done >>"$out/snapshot-samples.txt"
}
start_sampler() {
  (while :; do sample_once; sleep 1; done) &
  sampler_pid=$!
}

# Each snapshot or restore seen by the sampler: node, metric, purchases at the time, seconds.
snapshot_table() {
  echo "| node | histogram | purchases held (about) | seconds |"
  echo "| --- | --- | ---: | ---: |"
  awk '
    $2 == "buytracker_purchases" { held[$1] = $3; next }
    {
      family = $2; sub(/_(sum|count)$/, "", family); key = $1 " " family
      if ($2 ~ /_sum$/) { sum[key] = $3; next }
      if ((key in count) && $3 > count[key]) {
        n = $3 - count[key]
        printf "| %s | %s | %d | %.3f%s |\n", $1, family, held[$1], (sum[key] - lastsum[key]) / n, (n > 1 ? " (mean of " n ")" : "")
      }
      count[key] = $3; lastsum[key] = sum[key]
    }' "$out/snapshot-samples.txt"
}

# --- setup -------------------------------------------------------------------

for port in 18081 18082 18083 19081 19082 19083 17081 17082 17083 18090; do
  port_free "$port" || die "port $port on 127.0.0.1 is in use: stop whatever listens there first"
done
out=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/buytracker-bench.XXXXXX")}
data=$out/data
mkdir -p "$out/logs" "$out/results" "$data"
: >"$out/snapshot-samples.txt"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$out/admin-token"
chmod 600 "$out/admin-token"
log "writing to $out"

if [ "$SKIP_BUILD" != 1 ]; then
  log "building bin/buytracker-node (make build) and the benchmark tools"
  if ! make build >"$out/logs/build.log" 2>&1; then
    # The benchmark needs the node only: an operator that does not build yet
    # must not stop it.
    log "make build failed (see $out/logs/build.log); building the node alone"
    go build -o "$node_bin" ./node/cmd/buytracker-node
  fi
  # The tools are the module hack/go.mod: built there, written to bin/.
  [ -x "$certs_bin" ] || go -C hack build -o "$PWD/$certs_bin" ./certs
  go -C hack build -o "$PWD/$loadgen" ./bench/loadgen
  go -C hack build -o "$PWD/$ceiling_bin" ./bench/ceiling
  go -C hack build -o "$PWD/$report_bin" ./bench/report
fi
for bin in "$node_bin" "$certs_bin" "$loadgen" "$ceiling_bin" "$report_bin"; do
  [ -x "$bin" ] || die "$bin is missing"
done
admin_curl=(curl -fsS)
if [ "$TLS" = 1 ]; then
  "$certs_bin" -dir "$out/tls" -ids n1,n2,n3 -ips 127.0.0.1 -dns localhost >"$out/logs/certs.log"
  admin_curl+=(--cacert "$out/tls/ca/ca.crt")
fi
admin_url() { if [ "$TLS" = 1 ]; then echo "https://127.0.0.1:1908$1"; else echo "http://127.0.0.1:1908$1"; fi; }
started=$(date -u +%FT%TZ)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. the ceiling --------------------------------------------------------------

start_fresh_cluster # idle while the ceiling runs, as in every other measurement
"$ceiling_bin" -addr 127.0.0.1:18090 >>"$out/logs/ceiling.log" 2>&1 &
ceiling_pid=$!
for _ in $(seq 50); do curl -fsS --max-time 1 -o /dev/null "$ceiling_url/health" 2>/dev/null && break; sleep 0.1; done
measure ceiling-buy "ceiling: POST /buy" -url "$ceiling_url" -mode buy -conns "$CONNS" -warmup "$WARMUP" -duration "$DURATION"
[ "$PHASES" = buy ] ||
  measure ceiling-stats "ceiling: GET /stats" -url "$ceiling_url" -mode stats -conns "$CONNS" -warmup "$WARMUP" -duration "$DURATION"
stop_pid "$ceiling_pid"
ceiling_pid=""

# --- 2. and 3. writes, then the prototype's loads ---------------------------------

load_buy_before=$(cut -d' ' -f1-3 /proc/loadavg)
measure buy "POST /buy" -url "$(targets)" -mode buy -conns "$CONNS" -warmup "$WARMUP" -duration "$DURATION"
load_buy_after=$(cut -d' ' -f1-3 /proc/loadavg)

# report_header: what every report starts with.
report_header() {
  echo "# buytracker load benchmark, $started"
  echo
  echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- node 2>/dev/null || echo ' (node/ modified)')"
  echo "- machine: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3)"
  echo "- load average before / after the whole run: $load_before / $(cut -d' ' -f1-3 /proc/loadavg); before / after POST /buy: $load_buy_before / $load_buy_after"
  echo "- three nodes, the load generator and the ceiling server on this one machine; load to: $TARGET"
  echo "- load generator: $CLIENT HTTP client, $([ -n "$LOADGEN_CPUS" ] && echo "pinned to CPU $LOADGEN_CPUS with taskset" || echo "not pinned")"
  echo "- closed loop: $CONNS connections, ${WARMUP} warm-up, ${DURATION} measured; open loop: ${OPEN_DURATION} measured, mix $MIX"
  echo "- GET /stats query: $STATS_QUERY (linearizable); node flags: ${NODE_FLAGS:-(none)}"
}

if [ "$PHASES" = buy ]; then
  {
    report_header
    echo
    "$report_bin" -ceiling "$out/results/ceiling-buy.json" "$out/results/ceiling-buy.json" "$out/results/buy.json"
  } >"$out/bench-results.md"
  echo
  cat "$out/bench-results.md"
  log "results written to $out/bench-results.md"
  exit 0
fi

for load in 50:21 200:83 300:114; do
  users=${load%:*} rate=${load#*:}
  measure "open-$users" "prototype load, $users users" -url "$(targets)" -mode mix -mix "$MIX" \
    -rate "$rate" -conns "$users" -warmup "$WARMUP" -duration "$OPEN_DURATION"
done

# --- 4. and 5. reads with 1,000 purchases, then with $PRELOAD ---------------------------

log "starting a fresh cluster for the reads"
start_fresh_cluster
start_sampler
measure preload-small "preload to $SMALL" -url "$(targets)" -preload "$SMALL" -conns "$CONNS" -duration "$PRELOAD_LIMIT"
measure stats-small "GET /stats, $SMALL purchases" -url "$(targets)" -mode stats -conns "$CONNS" -warmup "$WARMUP" -duration "$DURATION"
preload_note=""
if ! measure preload "preload to $PRELOAD" -url "$(targets)" -preload "$((PRELOAD - SMALL))" -conns "$CONNS" -duration "$PRELOAD_LIMIT"; then
  preload_note="The preload did not reach $PRELOAD purchases within $PRELOAD_LIMIT (see its errors)."
  log "$preload_note"
fi
measure stats-large "GET /stats, $PRELOAD purchases" -url "$(targets)" -mode stats -conns "$CONNS" -warmup "$WARMUP" -duration "$DURATION"

# --- 6. snapshots, memory, restore ----------------------------------------------

# Every node is asked for a snapshot of the whole preloaded state now, through
# its admin API (POST /snapshot), so that the snapshot times and the restore
# below are those of that state.
leader=$(leader_id)
snapshot_note=""
for i in 1 2 3; do
  if ! "${admin_curl[@]}" --max-time "$SNAPSHOT_WAIT" -X POST -H "Authorization: Bearer $(cat "$out/admin-token")" \
    "$(admin_url "$i")/snapshot" >"$out/snapshot-n$i.json"; then
    snapshot_note+=" Node n$i did not take a snapshot within ${SNAPSHOT_WAIT}s."
  fi
done
[ -z "$snapshot_note" ] || log "$snapshot_note"

leader=$(leader_id)
recorded=$(metric_value "$(client_url "${leader#n}")" buytracker_purchases || true)
memory_rows=""
for i in 1 2 3; do
  role=follower
  [ "n$i" = "$leader" ] && role=leader
  rss=$(awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/${node_pid[$i]}/status")
  hwm=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/${node_pid[$i]}/status")
  memory_rows+="| n$i | $role | $rss | $hwm |"$'\n'
done

follower=1
[ "$leader" = n1 ] && follower=2
log "restarting follower n$follower to time its restore"
stop_node "$follower"
restart_began=$EPOCHREALTIME
start_node "$follower"
wait_ready "$follower"
restart_s=$(awk -v a="$restart_began" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
restarted_rss=$(awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/${node_pid[$follower]}/status")
stop_sampler
sample_once # the restarted node's restore, whatever the sampler last saw

# --- 7. backup and restore ---------------------------------------------------------

backup_file=$out/backup.btbackup
log "taking a backup of the preloaded state into $backup_file"
backup_began=$EPOCHREALTIME
"${admin_curl[@]}" --max-time 600 -H "Authorization: Bearer $(cat "$out/admin-token")" \
  -D "$out/backup-headers.txt" -o "$backup_file" "$(admin_url "${leader#n}")/backup" ||
  die "GET /backup failed"
backup_s=$(awk -v a="$backup_began" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
backup_bytes=$(stat -c %s "$backup_file")
header() { grep -i "^$1:" "$out/backup-headers.txt" | tr -d '\r' | cut -d' ' -f2; }
backup_index=$(header Buytracker-Backup-Index)
backup_purchases=$(header Buytracker-Backup-Purchases)
# The trailer: "BTSHA256" and the SHA-256 of every byte before it.
[ "$(tail -c 32 "$backup_file" | od -An -tx1 | tr -d ' \n')" = "$(head -c -40 "$backup_file" | sha256sum | cut -d' ' -f1)" ] ||
  die "the backup's SHA-256 does not match its trailer"
log "backup: $backup_purchases purchases at index $backup_index, $backup_bytes bytes in ${backup_s}s"

log "starting a new cluster from the backup (--restore-from)"
for i in 1 2 3; do stop_node "$i"; done
rm -rf "$data" && mkdir -p "$data"
node_flags+=(--restore-from="$backup_file")
restore_began=$EPOCHREALTIME
for i in 1 2 3; do start_node "$i"; done
wait_ready 1 2 3
restore_s=$(awk -v a="$restore_began" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
restored=$(curl -fsS --max-time 10 "$(client_url 1)/stats" | sed -n 's/.*"total_buys":\([0-9]*\).*/\1/p')
restored_rss=""
for i in 1 2 3; do restored_rss+="$(awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/${node_pid[$i]}/status") "; done
[ "$restored" = "$backup_purchases" ] || die "the restored cluster counts ${restored:-?} purchases, the backup $backup_purchases"
log "restored: $restored purchases, every node ready ${restore_s}s after the start"
snapshot_lines=""
for i in 1 2 3; do
  snapshot_lines+="# n$i"$'\n'
  snapshot_lines+=$(curl -fsS --max-time 5 "$(client_url "$i")/metrics" | grep snapshot || echo "(no metric matches snapshot)")
  snapshot_lines+=$'\n'
done

# --- report -----------------------------------------------------------------------

results=$out/results
{
  report_header
  echo
  echo "## Throughput and latency"
  echo
  "$report_bin" -ceiling "$results/ceiling-buy.json" -ceiling "$results/ceiling-stats.json" \
    "$results/ceiling-buy.json" "$results/buy.json" "$results/preload.json" \
    "$results/ceiling-stats.json" "$results/stats-small.json" "$results/stats-large.json" \
    "$results/open-50.json" "$results/open-200.json" "$results/open-300.json"
  [ -z "$preload_note" ] || { echo; echo "$preload_note"; }
  echo
  echo "## Memory with ${recorded:-?} purchases"
  echo
  echo "| node | role | VmRSS MiB | VmHWM (peak) MiB |"
  echo "| --- | --- | ---: | ---: |"
  printf '%s' "$memory_rows"
  echo
  echo "n$follower after its restart (state rebuilt from its latest snapshot, if it has one, and the log after it): VmRSS $restarted_rss MiB."
  echo
  echo "## Snapshots and restore"
  echo
  echo "n$follower restarted with ${recorded:-?} purchases: ready (GET /ready 200) ${restart_s} s after it was started."
  [ -z "$snapshot_note" ] || { echo; echo "$snapshot_note"; }
  echo
  echo "Every snapshot and restore the nodes timed during the reads phase, with the purchases the node held when it was seen:"
  echo
  snapshot_table
  echo
  echo "<details><summary>/metrics lines matching \"snapshot\" at the end</summary>"
  echo
  echo '```'
  printf '%s' "$snapshot_lines"
  echo '```'
  echo
  echo "</details>"
  echo
  echo "## Backup and restore"
  echo
  echo "| what | purchases | Raft index | bytes | seconds |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  echo "| backup: GET /backup (linearizable) from the leader to a file | $backup_purchases | $backup_index | $backup_bytes | $backup_s |"
  echo "| restore: three new nodes started with --restore-from until every one is ready | $restored | $backup_index | | $restore_s |"
  echo
  echo "The restored cluster's GET /stats count equals the backup's; its nodes' VmRSS after the restore: ${restored_rss% } MiB."
  echo
  echo "## Targets (issue 2)"
  echo
  echo "- POST /buy at 256 connections: >= 20,000 acknowledged buys/s with p99 <= 25 ms (goal about 40,000/s)"
  echo "- prototype loads (21, 83, 114 req/s open loop): p99 <= 5 ms, no errors (the prototype averaged 6, 41 and 253 ms)"
  echo "- GET /stats (linearizable) at 256 connections: >= 30,000/s, the same latency with 1,000,000 purchases as with 1,000"
} >"$out/bench-results.md"

echo
cat "$out/bench-results.md"
log "results written to $out/bench-results.md"

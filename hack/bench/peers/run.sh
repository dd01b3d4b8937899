#!/usr/bin/env bash
# Usage: hack/bench/peers/run.sh [-h]
#
# Issue 5: buytracker side by side with its peers, on this one machine, in
# one run (docs/benchmarks-peers.md). Systems, each acknowledging a purchase
# only once it is on disk:
#   buytracker  three nodes on 127.0.0.1 (bin/buytracker-node, its defaults), load over the 3 client URLs
#   postgres    Debian's PostgreSQL, fsync and synchronous_commit on, behind the adapter
#   redis       Debian's Redis, appendonly yes + appendfsync always, behind the adapter
#   etcd        three etcd v3.6 members (hack/build-k8s-assets.sh etcd), behind the adapter
# The peers sit behind hack/bench/peers/adapter, one Go HTTP server serving
# POST /buy and GET /stats for each. Every system starts empty and takes,
# through hack/bench/loadgen:
#   1. a preload to 1,000 purchases, then GET /stats ($READ_CONNS connections)
#   2. POST /buy at 1, 64 and 256 connections (closed loop)
#   3. 90 % POST /buy, 10 % GET /stats ($READ_CONNS connections)
#   4. a preload to $PRELOAD purchases (buytracker: through HTTP; peers: their
#      own bulk path unless PEER_PRELOAD=http), then GET /stats again
# Rounds alternate A B C D A B C D, so drift in the machine's speed shows in
# both rounds alike. Tables and an SVG plot (hack/bench/peers/compare) go to
# $BENCH_DIR; with UPDATE_DOC=1 also into docs/benchmarks-peers.md (its
# Results section) and docs/benchmarks-peers.svg.
#
# Installs redis-server and postgresql with apt-get when missing (as root).
#
# Environment [default]:
#   SYSTEMS        systems in order, the first the baseline [buytracker postgres redis etcd]
#   ROUNDS         rounds over all systems [2]
#   WARMUP         warm-up before each measurement [2s]
#   DURATION       measured time of each run [10s]
#   READ_CONNS     connections of the mixed and GET /stats runs [64]
#   STATS_QUERY    query of GET /stats [timeframe_hours=1]
#   PRELOAD        purchases held by the second GET /stats run [1000000]
#   PRELOAD_LIMIT  time allowed for each preload [300s]
#   PEER_PRELOAD   bulk: the peers' own bulk path; http: POST /buy like buytracker [bulk]
#   PEER_CONNS     connections from the adapter to PostgreSQL or Redis [64]
#   READY_TIMEOUT  seconds allowed for a system to start [60]
#   MAX_LOAD       a 1-minute load average above this at the start turns UPDATE_DOC off [1.5]
#   UPDATE_DOC     1 writes the results into docs/; 0 does not
#                  [1 when every size setting above is its default and the load is below MAX_LOAD]
#   BENCH_DIR      data, logs and results [a new directory under ${TMPDIR:-/tmp}]
#   KEEP_DATA      1 keeps the systems' data after the run [0]
#   SKIP_BUILD     1 uses the binaries already in bin/ [0]
#   SKIP_TESTS     1 skips the adapter's tests against real servers [0]
set -euo pipefail

if [ $# -gt 0 ]; then
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
  [ "$1" = -h ] || [ "$1" = --help ] && exit 0
  exit 2
fi
cd "$(dirname "$0")/../../.."

SYSTEMS=${SYSTEMS:-buytracker postgres redis etcd}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-2s}
DURATION=${DURATION:-10s}
READ_CONNS=${READ_CONNS:-64}
STATS_QUERY=${STATS_QUERY:-timeframe_hours=1}
PRELOAD=${PRELOAD:-1000000}
PRELOAD_LIMIT=${PRELOAD_LIMIT:-300s}
PEER_PRELOAD=${PEER_PRELOAD:-bulk}
PEER_CONNS=${PEER_CONNS:-64}
READY_TIMEOUT=${READY_TIMEOUT:-60}
MAX_LOAD=${MAX_LOAD:-1.5}
KEEP_DATA=${KEEP_DATA:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
SKIP_TESTS=${SKIP_TESTS:-0}
SMALL=1000 # purchases of the first GET /stats run
read -ra systems <<<"$SYSTEMS"
for s in "${systems[@]}"; do
  case $s in buytracker | postgres | redis | etcd) ;; *) echo "run.sh: SYSTEMS: unknown system $s" >&2; exit 2 ;; esac
done
case $PEER_PRELOAD in bulk | http) ;; *) echo "run.sh: PEER_PRELOAD=$PEER_PRELOAD: want bulk or http" >&2; exit 2 ;; esac
[ "$PRELOAD" -gt "$SMALL" ] || { echo "run.sh: PRELOAD=$PRELOAD: want more than $SMALL" >&2; exit 2; }

node_bin=bin/buytracker-node loadgen=bin/bench-loadgen adapter_bin=bin/bench-peers-adapter compare_bin=bin/bench-peers-compare
adapter_url=http://127.0.0.1:27090
pg_port=27432 redis_port=27379
cluster=n1=127.0.0.1:27281,n2=127.0.0.1:27282,n3=127.0.0.1:27283
etcd_cluster=e1=http://127.0.0.1:27311,e2=http://127.0.0.1:27312,e3=http://127.0.0.1:27313
etcd_clients=http://127.0.0.1:27301,http://127.0.0.1:27302,http://127.0.0.1:27303

log() { printf '[peers %s] %s\n' "$(date +%T)" "$*" >&2; }
grouped() { sed ':a;s/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/;ta' <<<"$1"; } # 1000000 -> 1,000,000
brief() { awk -v n="$1" 'BEGIN { if (n >= 1e6) printf "%gM", n / 1e6; else if (n >= 1e3) printf "%gk", n / 1e3; else print n }'; }
die() { log "error: $*"; exit 1; }
node_url() { echo "http://127.0.0.1:2708$1"; }

# Processes this script started; cleanup stops every one of them.
node_pid=([1]="" [2]="" [3]="")
etcd_pid=([1]="" [2]="" [3]="")
redis_pid="" adapter_pid="" job_pid="" pg_data=""

stop_pid() { # stop_pid PID: SIGTERM, up to 30 s to finish, then SIGKILL
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
as_postgres() { # PostgreSQL refuses to run as root: run its tools as the postgres user then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
stop_systems() {
  local i
  [ -z "$adapter_pid" ] || stop_pid "$adapter_pid"
  adapter_pid=""
  for i in 1 2 3; do
    [ -z "${node_pid[$i]}" ] || stop_pid "${node_pid[$i]}"
    [ -z "${etcd_pid[$i]}" ] || stop_pid "${etcd_pid[$i]}"
    node_pid[i]="" etcd_pid[i]=""
  done
  [ -z "$redis_pid" ] || stop_pid "$redis_pid"
  redis_pid=""
  if [ -n "$pg_data" ]; then
    as_postgres "$pg_bin/pg_ctl" stop -D "$pg_data" -m fast -w >>"$out/logs/postgres.log" 2>&1 || true
    pg_data=""
  fi
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [ -z "$job_pid" ] || stop_pid "$job_pid"
  stop_systems
  if [ "$KEEP_DATA" != 1 ] && [ -n "${data:-}" ]; then rm -rf "$data"; fi
  [ -z "${out:-}" ] || log "logs and results in $out"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for NAME PID CMD...: until CMD succeeds, while PID lives, at most READY_TIMEOUT s.
wait_for() {
  local name=$1 pid=$2 deadline=$((SECONDS + READY_TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || die "$name exited; see $out/logs"
    [ "$SECONDS" -lt "$deadline" ] || die "$name not ready after ${READY_TIMEOUT}s; see $out/logs"
    sleep 0.2
  done
}

# --- the systems ----------------------------------------------------------------

start_buytracker() {
  local i
  for i in 1 2 3; do
    "$node_bin" --id="n$i" --data-dir="$data/buytracker/n$i" \
      --http-addr="127.0.0.1:2708$i" --admin-addr="127.0.0.1:2718$i" --raft-addr="127.0.0.1:2728$i" \
      --initial-cluster="$cluster" --admin-token-file="$out/admin-token" >>"$out/logs/$tag-n$i.log" 2>&1 &
    node_pid[i]=$!
  done
  for i in 1 2 3; do wait_for "buytracker n$i" "${node_pid[$i]}" curl -fsS --max-time 2 "$(node_url "$i")/ready"; done
}

start_postgres() {
  pg_data=$data/postgres
  mkdir -p "$pg_data"
  [ "$(id -u)" != 0 ] || chown postgres: "$pg_data"
  as_postgres "$pg_bin/initdb" -D "$pg_data" -U bench --auth=trust -E UTF8 >>"$out/logs/postgres.log" 2>&1 ||
    die "initdb failed; see $out/logs/postgres.log"
  # Durable commits (the defaults, written out), room for the adapter's pool.
  cat >>"$pg_data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pg_data'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = $((PEER_CONNS + 50))
shared_buffers = 512MB
EOF
  as_postgres "$pg_bin/pg_ctl" start -D "$pg_data" -w -t "$READY_TIMEOUT" -l "$pg_data/server.log" >>"$out/logs/postgres.log" 2>&1 ||
    die "PostgreSQL did not start; see $pg_data/server.log"
}

start_redis() {
  mkdir -p "$data/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$data/redis" \
    --appendonly yes --appendfsync always --save "" >>"$out/logs/$tag-redis.log" 2>&1 &
  redis_pid=$!
  wait_for redis "$redis_pid" redis-cli -p "$redis_port" ping
}

start_etcd() {
  local i
  for i in 1 2 3; do
    "$etcd_bin" --name="e$i" --data-dir="$data/etcd/e$i" \
      --listen-client-urls="http://127.0.0.1:2730$i" --advertise-client-urls="http://127.0.0.1:2730$i" \
      --listen-peer-urls="http://127.0.0.1:2731$i" --initial-advertise-peer-urls="http://127.0.0.1:2731$i" \
      --initial-cluster="$etcd_cluster" --initial-cluster-state=new --initial-cluster-token=peers-bench \
      --quota-backend-bytes=8589934592 --log-level=warn >>"$out/logs/$tag-e$i.log" 2>&1 &
    etcd_pid[i]=$!
  done
  for i in 1 2 3; do wait_for "etcd e$i" "${etcd_pid[$i]}" curl -fsS --max-time 2 "http://127.0.0.1:2730$i/health"; done
}

adapter_flags() { # the adapter's flags for backend $1
  echo -backend "$1" -conns "$PEER_CONNS" -postgres "postgres://bench@127.0.0.1:$pg_port/postgres" \
    -redis "127.0.0.1:$redis_port" -etcd "$etcd_clients"
}

start_system() { # start_system SYSTEM: empty, started, ready to serve
  rm -rf "$data" && mkdir -p "$data" && chmod 755 "$data"
  log "round $round: starting $1"
  "start_$1"
  if [ "$1" != buytracker ]; then
    # shellcheck disable=SC2046 # adapter_flags is a list of words
    "$adapter_bin" -addr "${adapter_url#http://}" $(adapter_flags "$1") >>"$out/logs/$tag-adapter.log" 2>&1 &
    adapter_pid=$!
    wait_for "the $1 adapter" "$adapter_pid" curl -fsS --max-time 2 "$adapter_url/health"
  fi
}

targets() { # the URLs the load goes to
  if [ "$1" = buytracker ]; then echo "$(node_url 1),$(node_url 2),$(node_url 3)"; else echo "$adapter_url"; fi
}

total_buys() { # total_buys SYSTEM: the count GET /stats reports
  curl -fsS --max-time 30 "$(targets "$1" | cut -d, -f1)/stats" | sed -n 's/.*"total_buys":\([0-9]*\).*/\1/p'
}

# run_job FILE CMD...: CMD in the background (so a signal stops it at once), stdout to FILE.
run_job() {
  local file=$1 status=0
  shift
  "$@" >"$file" &
  job_pid=$!
  wait "$job_pid" || status=$?
  job_pid=""
  return "$status"
}

measure() { # measure KEY LABEL LOADGEN-ARGS...: one load run into $dir/KEY.json
  local key=$1 label=$2
  shift 2
  log "round $round, $system: $label"
  run_job "$dir/$key.json" "$loadgen" -json -label "$label" -stats-query "$STATS_QUERY" -url "$(targets "$system")" "$@"
}

# --- one system, one round ------------------------------------------------------------

bench_system() {
  local closed=(-warmup "$WARMUP" -duration "$DURATION") n need held
  start_system "$system"
  measure preload-small "preload to $(grouped "$SMALL")" -preload "$SMALL" -conns "$READ_CONNS" -duration "$PRELOAD_LIMIT"
  measure stats-small "GET /stats, $(grouped "$SMALL") purchases, $READ_CONNS conns" -mode stats -conns "$READ_CONNS" "${closed[@]}"
  for n in 1 64 256; do
    measure "buy-$n" "POST /buy, $n conn$([ "$n" = 1 ] || echo s)" -mode buy -conns "$n" "${closed[@]}"
  done
  measure mix "90 % buy, 10 % stats, $READ_CONNS conns" -mode mix -mix buy=90,stats=10 -conns "$READ_CONNS" "${closed[@]}"
  [ "$system" = buytracker ] || curl -fsS --max-time 5 "$adapter_url/adapter/counters" >"$dir/counters.json"

  held=$(total_buys "$system")
  need=$((PRELOAD - held))
  echo "held_before_preload=$held" >>"$dir/notes"
  if [ "$need" -gt 0 ]; then
    if [ "$system" = buytracker ] || [ "$PEER_PRELOAD" = http ]; then
      measure preload "preload to $(grouped "$PRELOAD")" -preload "$need" -conns 256 -duration "$PRELOAD_LIMIT" ||
        log "$system: the preload fell short of $PRELOAD within $PRELOAD_LIMIT"
    else
      log "round $round, $system: bulk preload of $need purchases"
      # shellcheck disable=SC2046
      run_job "$dir/preload.json" "$adapter_bin" $(adapter_flags "$system") -preload "$need" \
        -preload-limit "$PRELOAD_LIMIT" -label "preload to $(grouped "$PRELOAD")" 2>>"$out/logs/$tag-adapter.log" ||
        log "$system: the bulk preload fell short of $PRELOAD within $PRELOAD_LIMIT"
    fi
  fi
  held=$(total_buys "$system")
  echo "held=$held" >>"$dir/notes"
  measure stats-large "GET /stats, $(grouped "$PRELOAD") purchases, $READ_CONNS conns" -mode stats -conns "$READ_CONNS" "${closed[@]}"
  echo "disk_kib=$(du -sk "$data" | cut -f1)" >>"$dir/notes"
  stop_systems
}

# --- setup -----------------------------------------------------------------------

for port in 27081 27082 27083 27181 27182 27183 27281 27282 27283 27301 27302 27303 27311 27312 27313 \
  "$pg_port" "$redis_port" 27090; do
  port_free "$port" || die "port $port on 127.0.0.1 is in use: stop whatever listens there first"
done

pg_bin_dir() { find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1; }
if ! command -v redis-server >/dev/null || [ -z "$(pg_bin_dir)" ]; then
  [ "$(id -u)" = 0 ] || die "redis-server or PostgreSQL is missing: apt-get install -y postgresql redis-server (as root)"
  log "installing postgresql and redis-server (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null
fi
pg_bin=$(pg_bin_dir)
[ -x "$pg_bin/initdb" ] || die "initdb not found under /usr/lib/postgresql"

out=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/buytracker-peers.XXXXXX")}
data=$out/data
mkdir -p "$out/logs" "$out/results"
chmod 755 "$out" # PostgreSQL's user reaches its data directory through it
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$out/admin-token"
chmod 600 "$out/admin-token"
log "writing to $out"

etcd_bin=$(hack/build-k8s-assets.sh -q etcd)/etcd
if [ "$SKIP_BUILD" != 1 ]; then
  log "building the node, the load generator, the adapter and compare"
  go build -o "$node_bin" ./node/cmd/buytracker-node
  # The tools are the module hack/go.mod: built there, written to bin/.
  go -C hack build -o "$PWD/$loadgen" ./bench/loadgen
  go -C hack build -o "$PWD/$adapter_bin" ./bench/peers/adapter
  go -C hack build -o "$PWD/$compare_bin" ./bench/peers/compare
fi
for bin in "$node_bin" "$loadgen" "$adapter_bin" "$compare_bin" "$etcd_bin"; do
  [ -x "$bin" ] || die "$bin is missing"
done
if [ "$SKIP_TESTS" != 1 ]; then
  log "checking the adapter against real etcd, Redis and PostgreSQL (go test -tags integration)"
  ETCD_BIN=$etcd_bin PG_BIN=$pg_bin go -C hack test -tags integration -count=1 ./bench/peers/adapter/ >"$out/logs/adapter-tests.log" 2>&1 ||
    die "the adapter's tests failed; see $out/logs/adapter-tests.log"
fi

defaults=0
if [ "$SYSTEMS" = "buytracker postgres redis etcd" ] && [ "$ROUNDS" = 2 ] && [ "$WARMUP" = 2s ] && [ "$DURATION" = 10s ] &&
  [ "$READ_CONNS" = 64 ] && [ "$PRELOAD" = 1000000 ] && [ "$PEER_PRELOAD" = bulk ]; then
  defaults=1
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
busy=$(awk -v l="${load_before%% *}" -v m="$MAX_LOAD" 'BEGIN { print (l > m) ? 1 : 0 }')
if [ -z "${UPDATE_DOC:-}" ]; then
  UPDATE_DOC=0
  if [ "$defaults" = 1 ] && [ "$busy" = 0 ]; then UPDATE_DOC=1; fi
fi
[ "$busy" = 0 ] || log "warning: the 1-minute load average is ${load_before%% *} (above $MAX_LOAD): the machine is busy, figures will be low"
[ "$UPDATE_DOC" = 1 ] || log "this run will not update docs/ (UPDATE_DOC=0)"
started=$(date -u +%FT%TZ) began=$SECONDS

# --- the rounds ---------------------------------------------------------------------

for round in $(seq "$ROUNDS"); do
  for system in "${systems[@]}"; do
    dir=$out/results/r$round/$system tag=r$round-$system
    mkdir -p "$dir"
    bench_system
  done
done

# --- report -------------------------------------------------------------------------

note() { # note ROUND SYSTEM KEY: a value bench_system wrote down
  sed -n "s/^$3=//p" "$out/results/r$1/$2/notes" 2>/dev/null | tail -n 1
}
per_round() { # per_round SYSTEM CMD...: CMD ROUND SYSTEM for every round, joined by " / "
  local system=$1 r s=""
  shift
  for r in $(seq "$ROUNDS"); do s+="${s:+ / }$("$@" "$r" "$system")"; done
  echo "$s"
}
held() { grouped "$(note "$1" "$2" held)"; }
disk_per_replica() {
  local kib replicas=1
  kib=$(note "$1" "$2" disk_kib)
  case $2 in buytracker | etcd) replicas=3 ;; esac
  [ -n "$kib" ] && awk -v k="$kib" -v n="$replicas" 'BEGIN { printf "%.0f", k / n / 1024 }' || echo "—"
}
cas() {
  local f=$out/results/r$1/$2/counters.json a s
  a=$(sed -n 's/.*"attempts":\([0-9]*\).*/\1/p' "$f" 2>/dev/null) s=$(sed -n 's/.*"successes":\([0-9]*\).*/\1/p' "$f" 2>/dev/null)
  [ -n "$s" ] && [ "$s" -gt 0 ] && awk -v a="$a" -v s="$s" 'BEGIN { printf "%.1f", a / s }' || echo "—"
}

loads=(-load "stats-small=stats, $(brief "$SMALL")" -load "buy-1=buy ×1" -load "buy-64=buy ×64" -load "buy-256=buy ×256"
  -load "mix=90/10 ×$READ_CONNS" -load "stats-large=stats, $(brief "$PRELOAD")")
compare=("$compare_bin" -results "$out/results" -systems "$(tr ' ' , <<<"$SYSTEMS")" "${loads[@]}")
"${compare[@]}" -tables loads -svg "$out/benchmarks-peers.svg" >"$out/loads.md"
"${compare[@]}" -tables preload >"$out/preload.md"
versions() {
  local v=""
  v+="PostgreSQL $("$pg_bin/postgres" --version | awk '{ print $3 }')"
  v+=", Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
  v+=", etcd $("$etcd_bin" --version | sed -n 's/^etcd Version: //p')"
  v+=", $(go version | cut -d' ' -f3); clients: $(go list -m github.com/jackc/pgx/v5 github.com/redis/go-redis/v9 go.etcd.io/etcd/client/v3 | tr '\n' ',' | sed 's/,$//; s/,/, /g')"
  echo "$v"
}

{
  echo "## Results"
  echo
  echo "<!-- Written by hack/bench/peers/run.sh from the run below; a new full run replaces this section. -->"
  echo
  echo "Run of $started (UTC), $(((SECONDS - began) / 60)) min $(((SECONDS - began) % 60)) s, commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- node hack/bench 2>/dev/null || echo ' (with uncommitted changes)'):"
  echo
  echo "- machine: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), $(sed -n "s/^PRETTY_NAME=//p" /etc/os-release | tr -d '"')"
  echo "- versions: $(versions)"
  echo "- load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- command: \`make bench-peers\` (\`hack/bench/peers/run.sh\`); $ROUNDS rounds of ${systems[*]}, in that order; ${WARMUP} warm-up and ${DURATION} measured per run; GET /stats?$STATS_QUERY; mixed and GET /stats runs at $READ_CONNS connections; adapter pool $PEER_CONNS connections"
  echo "- durability: every acknowledged purchase is on disk: buytracker and etcd on a majority of their three members (fsynced Raft log), PostgreSQL (fsync, synchronous_commit) and Redis (appendfsync always) on their one server"
  echo
  echo "### Throughput and latency"
  echo
  cat "$out/loads.md"
  echo
  echo "![Throughput and p99 latency of every system and load](benchmarks-peers.svg)"
  echo
  echo "### Reaching $(grouped "$PRELOAD") purchases"
  echo
  cat "$out/preload.md"
  echo
  echo "A preload of — means the system already held that many purchases after its write runs."
  echo
  echo "| system | purchases held at the last GET /stats run | data on disk per replica, MiB | etcd: transactions per acknowledged buy |"
  echo "| --- | ---: | ---: | ---: |"
  for system in "${systems[@]}"; do
    c="—"
    [ "$system" != etcd ] || c=$(per_round "$system" cas)
    echo "| $system | $(per_round "$system" held) | $(per_round "$system" disk_per_replica) | $c |"
  done
  echo
  echo "Data on disk: the system's data directories after the last run, divided by its replicas (3 for buytracker and etcd); etcd preallocates its write-ahead log in 64 MiB files."
  echo "etcd's transactions per acknowledged buy: every compare-and-swap the adapter sent during the round's HTTP writes (the preload to 1,000, the three POST /buy runs and the mix, warm-ups included), over the purchases they recorded."
} >"$out/results.md"

echo
cat "$out/results.md"
if [ "$UPDATE_DOC" = 1 ]; then
  doc=docs/benchmarks-peers.md
  [ -f "$doc" ] || die "$doc is missing"
  # Everything before "## Results" stays; the section is replaced.
  { sed '/^## Results$/,$d' "$doc"; cat "$out/results.md"; } >"$out/doc.md"
  cp "$out/doc.md" "$doc"
  cp "$out/benchmarks-peers.svg" docs/benchmarks-peers.svg
  log "updated $doc and docs/benchmarks-peers.svg"
fi
log "results written to $out/results.md and $out/benchmarks-peers.svg"

#!/usr/bin/env bash
# Usage: [RESTORE_FROM=FILE] hack/run-local.sh [DATA_DIR]
# Runs a local cluster of three buytracker nodes on 127.0.0.1. Data lives in
# DATA_DIR (default .run/), so a second run continues where the first
# stopped. Ctrl-C stops all three cleanly (SIGTERM, then a wait).
# With RESTORE_FROM (a file from hack/backup.sh) and a DATA_DIR whose nodes
# have no data yet, the new cluster starts from that backup.
set -euo pipefail
restore=""
if [ -n "${RESTORE_FROM:-}" ]; then
  [ -f "$RESTORE_FROM" ] || { echo "run-local: RESTORE_FROM=$RESTORE_FROM is not a file" >&2; exit 1; }
  restore="--restore-from=$(realpath "$RESTORE_FROM")"
fi
cd "$(dirname "$0")/.."

data=${1:-.run}
bin=${BUYTRACKER_NODE:-bin/buytracker-node}
certs=${BUYTRACKER_CERTS:-bin/buytracker-certs}
for b in "$bin" "$certs"; do
  [ -x "$b" ] || { echo "run-local: $b is missing: run 'make build' first" >&2; exit 1; }
done
mkdir -p "$data"
chmod 700 "$data"
token="$data/admin-token"
[ -s "$token" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token"
chmod 600 "$token"
# A client token with the export role, for GET /buys (POST /buy and GET
# /stats stay open, as the prototype's clients expect).
export_token="$data/export-token"
[ -s "$export_token" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$export_token"
chmod 600 "$export_token"
client_auth="$data/client-auth.json"
printf '{"tokens": [{"name": "local", "token": "%s", "roles": ["write", "read", "export"]}]}\n' "$(cat "$export_token")" >"$client_auth"
chmod 600 "$client_auth"
# Mutual TLS between the members, as under the operator: a local CA and one
# certificate per member, kept across runs and renewed when near expiry.
"$certs" -dir "$data/tls" -ids n1,n2,n3 -ips 127.0.0.1 -dns localhost >/dev/null

# Written once the cluster first served (every node ready): from then on a
# node that finds its data dir empty never bootstraps a new cluster, it waits
# to rejoin (docs/node.md "Bootstrap once"). Delete the whole DATA_DIR to
# start afresh.
created="$data/cluster-created"

ids=(n1 n2 n3)
cluster="n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003"
pids=()
stop() {
  trap - INT TERM EXIT
  echo "Stopping the nodes..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "Stopped. Data is kept in $data/"
}
trap stop INT TERM EXIT

for i in 1 2 3; do
  id=${ids[$((i - 1))]}
  "$bin" --id="$id" --data-dir="$data/$id" \
    --http-addr="127.0.0.1:808$i" --admin-addr="127.0.0.1:918$i" --raft-addr="127.0.0.1:700$i" \
    --initial-cluster="$cluster" --admin-token-file="$token" --tls-dir="$data/tls/$id" \
    --client-auth-file="$client_auth" --cluster-created-file="$created" ${restore:+"$restore"} \
    2>>"$data/$id.log" &
  pids+=($!)
done

ready=0
for i in 1 2 3; do
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:808$i/ready" >/dev/null 2>&1 && { ready=$((ready + 1)); break; }
    if ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
      echo "run-local: n$i stopped; the end of $data/n$i.log:" >&2
      tail -n 3 "$data/n$i.log" >&2
      exit 1
    fi
    sleep 0.1
  done
done

if [ "$ready" = 3 ] && [ ! -s "$created" ]; then
  echo true >"$created"
  chmod 600 "$created"
fi

cat <<INFO
buytracker: three nodes running (logs in $data/n*.log)
  client URLs: http://127.0.0.1:8081  http://127.0.0.1:8082  http://127.0.0.1:8083
  admin URLs:  https://127.0.0.1:9181  https://127.0.0.1:9182  https://127.0.0.1:9183
               (token in $token, CA in $data/tls/ca/ca.crt; members talk mutual TLS)
  GET /buys needs the export token in $export_token
Try:
  curl -s -XPOST localhost:8081/buy -H 'Content-Type: application/json' \\
       -d '{"user_id":1,"promotion_id":7,"product_id":42,"product_amount":"19.99"}'
  curl -s 'localhost:8082/stats?timeframe_hours=1'
Ctrl-C stops all three.
INFO
wait

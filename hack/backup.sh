#!/usr/bin/env bash
# Usage: hack/backup.sh FILE [DATA_DIR]
# Takes a backup of the local cluster `make run` started (admin token and CA
# from DATA_DIR, default .run/) into FILE, through the first node that
# answers, and checks the file's SHA-256 trailer. Restore it into a new
# cluster with: make run RUN_DIR=.run-restored RESTORE_FROM=FILE
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 FILE [DATA_DIR]" >&2; exit 2; }
out=$1
data=${2:-.run}
token="$data/admin-token"
ca="$data/tls/ca/ca.crt"
for f in "$token" "$ca"; do
  [ -s "$f" ] || { echo "backup: $f is missing: is 'make run' using $data?" >&2; exit 1; }
done
headers=$(mktemp)
trap 'rm -f "$headers"' EXIT
for port in 9181 9182 9183; do
  if curl -fsS --cacert "$ca" -H "Authorization: Bearer $(cat "$token")" \
      -D "$headers" -o "$out.partial" "https://127.0.0.1:$port/backup"; then
    # The last 40 bytes are the trailer: "BTSHA256" and the SHA-256 of the rest.
    want=$(tail -c 32 "$out.partial" | od -An -tx1 | tr -d ' \n')
    got=$(head -c -40 "$out.partial" | sha256sum | cut -d' ' -f1)
    if [ "$want" != "$got" ]; then
      echo "backup: the file's SHA-256 $got does not match its trailer $want" >&2
      rm -f "$out.partial"
      exit 1
    fi
    mv "$out.partial" "$out"
    index=$(grep -i '^Buytracker-Backup-Index:' "$headers" | tr -d '\r' | cut -d' ' -f2)
    purchases=$(grep -i '^Buytracker-Backup-Purchases:' "$headers" | tr -d '\r' | cut -d' ' -f2)
    echo "backup: $out from 127.0.0.1:$port: index $index, $purchases purchases, $(stat -c %s "$out") bytes, sha256 $got"
    exit 0
  fi
done
rm -f "$out.partial"
echo "backup: no node of the local cluster answered GET /backup" >&2
exit 1

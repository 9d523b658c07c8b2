#!/usr/bin/env bash
# Load benchmarks: builds release, starts Portcullis on SQLite then PostgreSQL, provisions
# clients through the CLI and the real login page, and runs wrk against each endpoint at
# 16 and 64 connections, several runs each. Writes bench/results/results.{md,json}.
#
#   bench/run.sh                      # everything (about 15 minutes on 2 cores)
#   BACKENDS=sqlite RUNS=1 bench/run.sh
#   LOADS="client_credentials_es256 introspection" BACKENDS=sqlite bench/run.sh   # some loads
#   BIN=/tmp/old/portcullis bench/run.sh                                          # another build
#
# Needs: wrk (Debian package), python3 with requests, PostgreSQL on 127.0.0.1:5432 for
# the postgres backend (PG_URL to override).
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS=${BACKENDS:-"sqlite postgres"}
CONNS=${CONNS:-"16 64"}
RUNS=${RUNS:-3}
# Space-separated load names to run (default: all of them).
LOADS=${LOADS:-}
DURATION=${DURATION:-10s}
CODE_DURATION=${CODE_DURATION:-4s}
CODES_PER_RUN=${CODES_PER_RUN:-16000}
export FLOOD_WORKERS=${FLOOD_WORKERS:-16}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PORT=19090
ISSUER="http://127.0.0.1:$PORT"
KEK="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
OUT=bench/results
mkdir -p "$OUT"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
python3 -c 'import requests' 2>/dev/null || pip install -q requests

# BIN=path/to/portcullis runs an existing build (to compare two builds on one machine).
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p portcullis-cli
  BIN=$PWD/target/release/portcullis
fi
# The server runs in a scratch directory: a relative BIN must not change meaning there.
BIN=$(realpath "$BIN")
[ -x "$BIN" ] || { echo "BIN=$BIN is not an executable" >&2; exit 1; }
# The cost of an RSA-2048 signature on this CPU, the bound of the RS256 loads, measured
# before any load runs (summarize.py reports it beside the figures).
RSA_SPEED_FILE=$OUT/openssl-speed-rsa2048.txt
openssl speed -seconds 3 rsa2048 > "$RSA_SPEED_FILE" 2>/dev/null || : > "$RSA_SPEED_FILE"
export RSA_SPEED_FILE
WORK=$(mktemp -d)
trap 'kill "${SERVER:-0}" 2>/dev/null || true; cp "$WORK/server.log" "$OUT/server.log" 2>/dev/null; rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.jsonl
: > "$RESULTS"

wanted() { [ -z "$LOADS" ] || [[ " $LOADS " == *" $1 "* ]]; }

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

start_server() {
  local t0 t1
  t0=$(date +%s%N)
  (cd "$WORK" && exec "$BIN" --config "$WORK/portcullis.toml" serve >>"$WORK/server.log" 2>&1) &
  SERVER=$!
  until curl -sf "$ISSUER/readyz" >/dev/null 2>&1; do
    # A server that exits while starting (a bad setting, a port in use) ends the run.
    kill -0 "$SERVER" 2>/dev/null || { echo "the server exited while starting:" >&2; tail -5 "$WORK/server.log" >&2; exit 1; }
    sleep 0.005
  done
  t1=$(date +%s%N)
  READY_MS=$(( (t1 - t0) / 1000000 ))
}

stop_server() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }

# PostgreSQL plans a prepared statement once per connection and keeps the plan until the
# tables' statistics change. The benchmark grows its tables from empty within minutes:
# with autovacuum off (as on the machines these figures come from) nothing re-analyzes
# them, and the plans made for an empty `grants` table (a sequential scan, cheapest on one
# page) stay in use as it grows to tens of thousands of rows, so each refresh reads them
# all. Analyze after preparing each run's data, as autovacuum (on by default) does for a
# production database.
#
# A server in use holds many refresh tokens, and PostgreSQL plans the rotation statement
# for the table it finds: for a nearly empty one (the few tokens prepare.py makes) a
# sequential scan, which a connection keeps using while the run grows the table to tens of
# thousands of rows (every batch then read all of them: 31 million rows in 9 s of one
# run). With SEED_REFRESH_TOKENS tokens (unusable: random digests, one grant) the table
# is planned at a realistic size, as a production server's is. 0 leaves it empty.
export SEED_REFRESH_TOKENS=${SEED_REFRESH_TOKENS:-100000}
analyze_pg() {
  [ "$1" = sqlite ] && return 0
  local have
  have=$(psql "$PG_URL/portcullis_bench" -Atc 'SELECT count(*) FROM refresh_tokens')
  if [ "$have" -lt "$SEED_REFRESH_TOKENS" ]; then
    psql "$PG_URL/portcullis_bench" -qc "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, created_at, expires_at)
      SELECT sha256(convert_to('bench seed ' || i, 'UTF8')), g.id, g.client_id, g.scope, now(), now() + interval '30 days'
      FROM generate_series(1, $SEED_REFRESH_TOKENS) i, (SELECT id, client_id, scope FROM grants LIMIT 1) g
      ON CONFLICT DO NOTHING" >/dev/null
  fi
  psql "$PG_URL/portcullis_bench" -qc 'ANALYZE' >/dev/null
}

# run_load NAME BACKEND CONNS DURATION SCRIPT [ENV…]: one wrk run, RSS sampled during it.
run_load() {
  local name=$1 backend=$2 conns=$3 duration=$4 script=$5
  shift 5
  wanted "$name" || return 0
  cat "bench/lua/$script" bench/lua/report.lua > "$WORK/load.lua"
  local peak=0 out
  ( while kill -0 "$SERVER" 2>/dev/null; do r=$(rss_kb "$SERVER"); echo "$r"; sleep 0.2; done ) > "$WORK/rss.txt" &
  local sampler=$!
  out=$(env "$@" THREADS=2 wrk -t2 -c"$conns" -d"$duration" --latency -s "$WORK/load.lua" "$ISSUER$PATH_") || true
  kill $sampler 2>/dev/null || true
  peak=$(sort -n "$WORK/rss.txt" | tail -1)
  local json
  json=$(echo "$out" | sed -n 's/^JSON //p')
  non2xx=$(echo "$out" | sed -n 's/.*Non-2xx or 3xx responses: \([0-9]*\).*/\1/p')
  echo "{\"load\":\"$name\",\"backend\":\"$backend\",\"connections\":$conns,\"rss_peak_kb\":${peak:-0},\"non2xx\":${non2xx:-0},\"result\":$json}" >> "$RESULTS"
  echo "  $name $backend c=$conns: $json non2xx=${non2xx:-0} rss_peak=${peak}kB"
}

# provision [ALG]: with ALG, the web client registers it for its ID tokens
# (id_token_signed_response_alg), so a refresh signs both tokens with the server's ALG.
provision() {
  "$BIN" --config "$WORK/portcullis.toml" migrate >/dev/null
  CC=$("$BIN" --config "$WORK/portcullis.toml" client create --name bench-cc --grant-type client_credentials --scope "api:read" --json)
  WEB=$("$BIN" --config "$WORK/portcullis.toml" client create --name bench-web --first-party \
        --redirect-uri http://127.0.0.1/cb --grant-type authorization_code --grant-type refresh_token --scope openid \
        ${1:+--id-token-alg "$1"} --json)
  echo 'bench password 123' | "$BIN" --config "$WORK/portcullis.toml" user create bench >/dev/null
  # One account per login-flood worker: sign-ins to one account take turns (lockout).
  if wanted login || wanted client_credentials_during_login_flood; then
    for n in $(seq 0 $((FLOOD_WORKERS - 1))); do
      echo 'bench password 123' | "$BIN" --config "$WORK/portcullis.toml" user create "flood$n" >/dev/null
    done
  fi
  CC_ID=$(echo "$CC" | python3 -c 'import json,sys;print(json.load(sys.stdin)["client_id"])')
  CC_SECRET=$(echo "$CC" | python3 -c 'import json,sys;print(json.load(sys.stdin)["client_secret"])')
  WEB_ID=$(echo "$WEB" | python3 -c 'import json,sys;print(json.load(sys.stdin)["client_id"])')
  WEB_SECRET=$(echo "$WEB" | python3 -c 'import json,sys;print(json.load(sys.stdin)["client_secret"])')
  CC_BASIC=$(printf '%s:%s' "$CC_ID" "$CC_SECRET" | base64 -w0)
  WEB_BASIC=$(printf '%s:%s' "$WEB_ID" "$WEB_SECRET" | base64 -w0)
}

write_config() {
  local url=$1 alg=${2:-RS256}
  cat > "$WORK/portcullis.toml" <<TOML
issuer = "$ISSUER"
public_addr = "127.0.0.1:$PORT"
admin_addr = "127.0.0.1:$((PORT + 1))"
database_url = "$url"
kek = "$KEK"
log_level = "warn"
code_ttl = 600
signing_alg = "$alg"
# The load comes from one address: per-address limits are off so the server, not the
# limiter, is measured.
rate_limit_token_ip = "off"
rate_limit_token_client = "off"
rate_limit_introspect = "off"
rate_limit_revoke = "off"
rate_limit_login = "off"
rate_limit_sessions = "off"
${BENCH_EXTRA_CONFIG:-}
TOML
}

for backend in $BACKENDS; do
  echo "== $backend"
  if [ "$backend" = sqlite ]; then
    rm -f "$WORK"/bench.db*
    url="sqlite://$WORK/bench.db?mode=rwc"
  else
    psql "$PG_URL/postgres" -qc 'drop database if exists portcullis_bench' -qc 'create database portcullis_bench' >/dev/null
    url="$PG_URL/portcullis_bench"
  fi
  write_config "$url"
  provision
  start_server; stop_server
  start_server
  echo "  start to ready on an existing database: ${READY_MS} ms"
  sleep 1
  IDLE_KB=$(rss_kb "$SERVER")
  echo "{\"load\":\"startup\",\"backend\":\"$backend\",\"ready_ms\":$READY_MS,\"rss_idle_kb\":$IDLE_KB}" >> "$RESULTS"
  TOKEN=$(curl -s -u "$CC_ID:$CC_SECRET" -d grant_type=client_credentials "$ISSUER/token" | python3 -c 'import json,sys;print(json.load(sys.stdin)["access_token"])')
  for c in $CONNS; do
    for r in $(seq 1 "$RUNS"); do
      PATH_="/.well-known/openid-configuration" run_load discovery "$backend" "$c" "$DURATION" get.lua
      PATH_="/token" run_load client_credentials_rs256 "$backend" "$c" "$DURATION" client_credentials.lua BASIC="$CC_BASIC"
      PATH_="/introspect" run_load introspection "$backend" "$c" "$DURATION" introspect.lua BASIC="$CC_BASIC" TOKEN="$TOKEN"
      wanted refresh_rotation || wanted code_exchange || continue
      if ! python3 bench/prepare.py "$ISSUER" "$WEB_ID" "$WEB_SECRET" http://127.0.0.1/cb bench 'bench password 123' \
        "$WORK/codes.txt" "$CODES_PER_RUN" "$WORK/refresh.txt" $((c * 2)); then
        echo "  preparing codes and refresh tokens failed; skipping the refresh and code loads of this run"
        continue
      fi
      analyze_pg "$backend"
      PATH_="/token" run_load refresh_rotation "$backend" "$c" "$DURATION" refresh.lua BASIC="$WEB_BASIC" TOKENS="$WORK/refresh.txt"
      PATH_="/token" run_load code_exchange "$backend" "$c" "$CODE_DURATION" code_exchange.lua BASIC="$WEB_BASIC" CODES="$WORK/codes.txt" REDIRECT=http://127.0.0.1/cb
    done
  done
  # Password logins (argon2id) alone, then a login flood while client_credentials runs:
  # the token endpoint must stay responsive (p99) while argon2 saturates its pool.
  if wanted login; then
    python3 bench/login_flood.py "$ISSUER" "$WEB_ID" http://127.0.0.1/cb 'flood{n}' 'bench password 123' "$FLOOD_WORKERS" "${DURATION%s}" \
      | sed -n 's/^JSON //p' | sed "s/^/{\"load\":\"login\",\"backend\":\"$backend\",\"result\":/; s/$/}/" >> "$RESULTS"
    echo "  login $backend: $(tail -1 "$RESULTS")"
  fi
  if wanted client_credentials_during_login_flood; then
    python3 bench/login_flood.py "$ISSUER" "$WEB_ID" http://127.0.0.1/cb 'flood{n}' 'bench password 123' "$FLOOD_WORKERS" "${DURATION%s}" \
      > "$WORK/flood.txt" &
    flood=$!
    PATH_="/token" run_load client_credentials_during_login_flood "$backend" 16 "$DURATION" client_credentials.lua BASIC="$CC_BASIC"
    wait $flood
    # How many logins got through while the token load ran beside them.
    sed -n 's/^JSON //p' "$WORK/flood.txt" \
      | sed "s/^/{\"load\":\"login_during_token_load\",\"backend\":\"$backend\",\"result\":/; s/$/}/" >> "$RESULTS"
    echo "  login during the token load $backend: $(tail -1 "$RESULTS")"
  fi
  stop_server
  # ES256 access tokens: a fresh database whose keys are generated as P-256.
  if [ "$backend" = sqlite ]; then rm -f "$WORK"/bench.db*; else
    psql "$PG_URL/postgres" -qc 'drop database if exists portcullis_bench' -qc 'create database portcullis_bench' >/dev/null; fi
  write_config "$url" ES256
  provision ES256
  start_server
  for c in $CONNS; do
    for r in $(seq 1 "$RUNS"); do
      PATH_="/token" run_load client_credentials_es256 "$backend" "$c" "$DURATION" client_credentials.lua BASIC="$CC_BASIC"
      # Refresh rotation signs two tokens (access and ID token): with both ES256 (the web
      # client registered ES256 ID tokens) the signatures stop dominating and the store's
      # transaction is what is measured.
      if wanted refresh_rotation_es256 && python3 bench/prepare.py "$ISSUER" "$WEB_ID" "$WEB_SECRET" http://127.0.0.1/cb bench 'bench password 123' \
        "$WORK/codes.txt" 0 "$WORK/refresh.txt" $((c * 2)); then
        analyze_pg "$backend"
        PATH_="/token" run_load refresh_rotation_es256 "$backend" "$c" "$DURATION" refresh.lua BASIC="$WEB_BASIC" TOKENS="$WORK/refresh.txt"
      fi
    done
  done
  stop_server
done

python3 bench/summarize.py "$RESULTS" "$OUT/results.md" "$OUT/results.json"
cat "$OUT/results.md"

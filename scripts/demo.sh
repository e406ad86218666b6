#!/usr/bin/env bash
# The whole walkthrough in one command, on a fresh clone:
#   builds, creates what is missing (certificates, keys), starts jwt-factory,
#   servicea, serviceb and servicec, waits until each answers, runs every
#   scenario valid and expired, prints each request and response, checks each
#   outcome, and stops every process it started (also on Ctrl-C or failure).
# Exit status: 0 when every outcome is the expected one, 1 otherwise.
# Logs of the four processes: target/demo-logs/*.log
set -euo pipefail

cd "$(dirname "$0")/.."
LOGS=target/demo-logs
BIN=target/release
PIDS=()
FAILED=0
PASSED=0

if [ -t 1 ]; then BOLD=$'\033[1m' RED=$'\033[31m' OFF=$'\033[0m'; else BOLD='' RED='' OFF=''; fi
say()  { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$OFF"; }
die()  { printf '%sdemo: %s%s\n' "$RED" "$*" "$OFF" >&2; exit 1; }

cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [ ${#PIDS[@]} -gt 0 ]; then
    say "stopping ${#PIDS[@]} processes (pids ${PIDS[*]})"
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do
      # Bounded wait: a graceful stop takes milliseconds; force after 10 s.
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'echo; say "interrupted"; exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_ready NAME PID URL [curl args...]: poll until URL answers, bounded.
wait_ready() {
  local name=$1 pid=$2 url=$3; shift 3
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$LOGS/$name.log" >&2; die "$name exited during start-up (log above)"; }
    curl -fsS --max-time 1 "$@" "$url" >/dev/null 2>&1 && { echo "$name is ready ($url)"; return 0; }
    sleep 0.05
  done
  tail -20 "$LOGS/$name.log" >&2
  die "$name did not become ready within 10 s"
}

start() {
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=("$!")
  echo "started $name (pid $!): $*"
}

# check NAME EXPECTED_STATUS PATTERN... : one scenario request and its verdict.
check() {
  local path=$1 want=$2; shift 2
  local out status body
  printf '\n$ curl localhost:3000%s\n' "$path"
  out=$(curl -sS --max-time 15 -w '\n%{http_code}' "localhost:3000$path") || out=$'\n000'
  status=${out##*$'\n'}
  body=${out%$'\n'*}
  printf '%s\nHTTP %s\n' "$body" "$status"
  local ok=1
  [ "$status" = "$want" ] || { echo "  expected HTTP $want, got $status"; ok=0; }
  for pattern in "$@"; do
    grep -qF -- "$pattern" <<<"$body" || { echo "  expected the body to contain: $pattern"; ok=0; }
  done
  if [ $ok = 1 ]; then PASSED=$((PASSED + 1)); echo "  ok: as expected"
  else FAILED=$((FAILED + 1)); echo "  WRONG OUTCOME"; fi
}

say "building (release)"
cargo build --release --bin app --bin jwt-factory

for p in 5555 3000 3001 3002 8443 9443; do
  port_in_use "$p" && die "port $p is in use: stop whatever runs there (an earlier demo?) and retry"
done

if [ ! -f certs/ca.pem ] || [ ! -f certs/localhost.pem ] || [ ! -f certs/localhost-key.pem ]; then
  say "creating the local CA and localhost certificate (once)"
  echo "$ cargo run --release --bin app -- gen-certs"
  "$BIN/app" gen-certs --force
fi

mkdir -p "$LOGS"
say "starting the four services (logs in $LOGS/)"
start jwt-factory "$BIN/jwt-factory"
start servicea "$BIN/app" servicea
start serviceb "$BIN/app" serviceb
start servicec "$BIN/app" servicec
wait_ready jwt-factory "${PIDS[0]}" http://localhost:5555/utils/keys
wait_ready servicea "${PIDS[1]}" http://localhost:3000/hello
wait_ready serviceb "${PIDS[2]}" http://localhost:3001/hello
wait_ready serviceb "${PIDS[2]}" https://localhost:8443/hello --cacert certs/ca.pem
wait_ready servicec "${PIDS[3]}" http://localhost:3002/hello
wait_ready servicec "${PIDS[3]}" https://localhost:9443/hello --cacert certs/ca.pem

say "jwt-factory: a key pair for servicea, saved to keys/"
echo "$ curl localhost:5555/keys/servicea"
curl -sS --max-time 10 localhost:5555/keys/servicea | cut -c1-90; echo "..."
echo "$ curl -X POST localhost:5555/utils/dump"
curl -sS --max-time 10 -X POST localhost:5555/utils/dump; echo

say "scenario 1: token from jwt-factory, serviceb asks jwt-factory to verify it"
check /scenario1 200 '"valid":true' '"aud":"serviceb"'
check '/scenario1?expired=1' 403 '"TokenExpiredError"' '"jwt expired"'

say "scenario 2: one token per audience, serviceb and servicec called concurrently"
check /scenario2 200 '"serviceb":{"valid":true' '"servicec":{"valid":true'
check '/scenario2?expired=1' 403 '"serviceb":{"valid":true' '"servicec":{"message":"invalid token"' '"TokenExpiredError"'

say "scenario 3: servicea signs its own token; serviceb verifies it locally, over https"
if [ ! -f scenario-3-keys/jwt-private.pem ]; then
  echo "(no scenario-3 key pair yet: servicea answers 503 and says how to make one)"
  check /scenario3 503 'jwt-private.pem' 'gen-keys'
  echo "$ curl -X POST localhost:3000/gen-keys"
  curl -sS --max-time 10 -X POST localhost:3000/gen-keys; echo
fi
check /scenario3 200 '"valid":true' '"iss":"https://service-issuer"'
check '/scenario3?expired=1' 403 '"TokenExpiredError"'

say "scenario 4: one self-signed token per audience, both over https"
check /scenario4 200 '"serviceb":{"valid":true' '"servicec":{"valid":true'
check '/scenario4?expired=1' 403 '"serviceb":{"message":"invalid token"' '"servicec":{"message":"invalid token"'

say "result"
echo "demo: $PASSED outcomes as expected, $FAILED wrong"
if [ "$FAILED" -gt 0 ]; then
  echo "Logs: $LOGS/*.log"
  exit 1
fi

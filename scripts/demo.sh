#!/usr/bin/env bash
# The whole walkthrough in one command, on a fresh clone:
#   builds, creates what is missing (certificates, keys), starts jwt-factory,
#   servicea, serviceb and servicec, waits until each answers, runs every
#   scenario valid and expired, prints each request and response, checks each
#   outcome, and stops every process it started (also on Ctrl-C or failure).
# Exit status: 0 when every outcome is the expected one, 1 otherwise.
# Logs of the four processes: target/demo-logs/*.log
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
FAILED=0
PASSED=0

# check PATH EXPECTED_STATUS PATTERN... : one scenario request and its verdict.
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

build
ensure_certs
start_stack

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

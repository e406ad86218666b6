#!/usr/bin/env bash
# The workshop console, with everything behind it, in one command:
#   builds, creates what is missing (certificates, keys), starts the nine
#   processes (as demo.sh does: the four services, the gateway's verifier,
#   nginx, three Envoy sidecars), prints the console's address, and keeps
#   them running until Ctrl-C, which stops every one.
# Open http://localhost:3000/ in a browser; logs in target/demo-logs/.
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

bring_up

say "the workshop console: open http://localhost:3000/ (Ctrl-C here stops everything)"
echo "each Run is a real request: $ curl \"localhost:3000/scenario1?trace=1\""
# Until Ctrl-C, or until one of them stops on its own (then all stop).
wait -n "${PIDS[@]}" || true
die "a process stopped on its own (logs: $LOGS/*.log)"

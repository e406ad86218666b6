#!/usr/bin/env bash
# The workshop console, with everything behind it, in one command:
#   builds, creates what is missing (certificates, keys), starts the nine
#   processes (as demo.sh does: the four services, the gateway's verifier,
#   nginx, three Envoy sidecars), prints the console's address, and keeps
#   them running until Ctrl-C, which stops every one (so does the failure
#   of any of them). `cargo xtask up` supervises them in the foreground.
# Logs in target/demo-logs/.
cd "$(dirname "$0")/.."
exec cargo xtask up --keys

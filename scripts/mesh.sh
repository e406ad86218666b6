#!/usr/bin/env bash
# The seed's Istio walkthrough on a laptop, with real Envoy sidecars
# configured from the Istio YAML in deploy/istio (scenario 10):
#   builds, creates what is missing, starts the stack with a sidecar beside
#   servicea, serviceb and servicec, then applies the four steps while
#   everything runs (no policy; allow-nothing; allow servicea's principal;
#   require a request principal too) and checks each outcome.
# Exit status: 0 when every outcome is the expected one, 1 otherwise.
# Logs: target/demo-logs/*.log (the sidecars' access logs: sidecar-*.log)
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# shellcheck source=scripts/mesh-steps.sh
. scripts/mesh-steps.sh

up --keys

mesh_steps

say "what serviceb's sidecar decided (its access log, last 6 lines)"
tail -6 "$LOGS/sidecar-serviceb.log"

result mesh

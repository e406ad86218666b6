#!/usr/bin/env bash
# Puts the checkout back as cloned, so the walkthrough by hand starts from
# "no keys yet" again: removes what the demo, the scripts and the services
# generate (the git-ignored keys/, certs/*.pem, scenario-3-keys/*.pem, the
# OpenBao credentials in openbao/) and their run folders under target/
# (logs, nginx's and Envoy's files, the supervisor's control files,
# OpenBao's state and certificates).
# Keeps the builds (target/debug, target/release) and the installed tools
# (target/venv): they are not state, and take minutes to make again.
#   scripts/reset.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Only files git ignores, only in these folders: nothing committed goes.
git clean -fdX -- keys certs scenario-3-keys openbao
rm -rf target/demo-logs target/bench-logs target/gateway target/mesh target/console target/tmp target/xtask target/openbao
echo "reset: generated keys, certificates and run folders removed; the next start begins with none"

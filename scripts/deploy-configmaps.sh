#!/usr/bin/env bash
# Writes deploy/k8s/configmaps.yaml from env/ (scripts/deploy_configmaps.py
# says how), or checks it:
#   scripts/deploy-configmaps.sh          # (re)write deploy/k8s/configmaps.yaml
#   scripts/deploy-configmaps.sh --check  # exit 1 if the committed file is stale
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/deploy_configmaps.py "$@"

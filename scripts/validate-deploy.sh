#!/usr/bin/env bash
# Validates deploy/ offline, without a cluster: the ConfigMaps are current
# and verbatim, every deploy/k8s/*.yaml passes kubernetes-validate
# --strict, every document under deploy/istio/ passes the JSON schema of
# its kind from ISTIO_SCHEMAS_DIR (default ../shared/schemas/istio).
# Runs every check, then exits non-zero if any failed. K8S_DIR and
# ISTIO_DIR (default deploy/k8s, deploy/istio) point it at other copies.
# The checks are `cargo xtask validate-deploy` (crates/xtask).
cd "$(dirname "$0")/.."
exec cargo xtask validate-deploy

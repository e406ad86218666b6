#!/usr/bin/env bash
# Validates deploy/ offline, without a cluster:
#   1. deploy/k8s/configmaps.yaml is what scripts/deploy-configmaps.sh
#      writes from env/, and holds each file verbatim;
#   2. every deploy/k8s/*.yaml against the Kubernetes schemas
#      (kubernetes-validate --strict: unknown fields fail);
#   3. every document under deploy/istio/ against the JSON schema of its kind,
#      from ISTIO_SCHEMAS_DIR (default ../shared/schemas/istio, relative to
#      the repository root; referenced there, never copied in).
# Runs every check, then exits non-zero if any failed.
#
# K8S_DIR and ISTIO_DIR (default deploy/k8s, deploy/istio) point it at other
# copies, e.g. to see a broken manifest fail.
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

K8S_DIR=${K8S_DIR:-deploy/k8s}
ISTIO_DIR=${ISTIO_DIR:-deploy/istio}
ISTIO_SCHEMAS_DIR=${ISTIO_SCHEMAS_DIR:-../shared/schemas/istio}

# Settings first: a missing folder is a set-up mistake, not a failed check.
[ -d "$ISTIO_SCHEMAS_DIR" ] || die "ISTIO_SCHEMAS_DIR=$ISTIO_SCHEMAS_DIR is not a folder: set ISTIO_SCHEMAS_DIR to the Istio JSON schemas (shared/schemas/istio beside the project; see ../shared/schemas/README.md)"
for schema in peerauthentication_v1.json requestauthentication_v1.json authorizationpolicy_v1.json; do
  [ -f "$ISTIO_SCHEMAS_DIR/$schema" ] || die "ISTIO_SCHEMAS_DIR=$ISTIO_SCHEMAS_DIR has no $schema: set ISTIO_SCHEMAS_DIR to the Istio JSON schemas (see ../shared/schemas/README.md)"
done
[ -d "$K8S_DIR" ] || die "K8S_DIR=$K8S_DIR is not a folder"
[ -d "$ISTIO_DIR" ] || die "ISTIO_DIR=$ISTIO_DIR is not a folder"

VENV=${VENV:-target/venv}
cargo xtask install venv

FAILED=()

say "1/3 ConfigMaps: deploy/k8s/configmaps.yaml from env/"
if scripts/deploy-configmaps.sh --check; then
  # The generator's own promise: each data value is its file, byte for byte.
  if ! "$VENV/bin/python" scripts/deploy_configmaps.py --verbatim; then
    FAILED+=("configmaps.yaml does not hold env/ verbatim")
  fi
else
  FAILED+=("configmaps.yaml is stale")
fi

say "2/3 Kubernetes manifests: $VENV/bin/kubernetes-validate --strict $K8S_DIR/*.yaml"
rc=0
out=$("$VENV/bin/python" scripts/validate_k8s.py "$K8S_DIR" 2>&1) || rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 0 ] || FAILED+=("Kubernetes manifests")
resources=$(sed -n 's/^kubernetes: \([0-9]*\) resources valid.*/\1/p' <<<"$out")

say "3/3 Istio policies: $ISTIO_DIR against $ISTIO_SCHEMAS_DIR"
rc=0
out=$("$VENV/bin/python" scripts/validate_istio.py --schemas "$ISTIO_SCHEMAS_DIR" "$ISTIO_DIR" 2>&1) || rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 0 ] || FAILED+=("Istio policies")
istio_docs=$(sed -n 's/^istio: \([0-9]*\) documents valid.*/\1/p' <<<"$out")

if [ ${#FAILED[@]} -gt 0 ]; then
  printf -v list '%s; ' "${FAILED[@]}"
  printf '\n'
  die "${#FAILED[@]} failed: ${list%; }"
fi
say "deploy/ is valid: ConfigMaps current, $resources Kubernetes resources, ${istio_docs:-0} Istio documents (offline; the image is not built here)"

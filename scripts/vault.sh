#!/usr/bin/env bash
# Scenario 11 alone, "keys in a vault" (seed 002): builds, starts the
# stack, then moves jwt-factory's keys into a real OpenBao and back (see
# scripts/vault-steps.sh and docs/scenario-11.md).
# Exit status: 0 when every outcome is the expected one, 1 otherwise.
# Logs: target/demo-logs/*.log (OpenBao's: openbao.log, openbao-audit.log)
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# shellcheck source=scripts/vault-steps.sh
. scripts/vault-steps.sh

up --keys

vault_steps

result vault

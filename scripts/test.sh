#!/usr/bin/env bash
# The whole test suite: installs the official SDKs the end-to-end tests use,
# checks formatting and lints, runs every test in the workspace, then every
# fuzz target for FUZZ_SECONDS (10) each.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi

# The end-to-end suites with the official SDKs again, every engine on
# PostgreSQL (a fresh database per engine on INGOT_TEST_POSTGRES, default
# the server this machine runs at 127.0.0.1:5432).
PG_E2E=(-p ingot-cli --test e2e_js --test e2e_py --test e2e_flow --test e2e_steps)
if cargo nextest --version >/dev/null 2>&1; then
    INGOT_TEST_STORE=postgres cargo nextest run --no-fail-fast "${PG_E2E[@]}"
else
    INGOT_TEST_STORE=postgres cargo test --no-fail-fast "${PG_E2E[@]}"
fi

# Every fuzz target for a short, bounded time (scripts/fuzz.sh for longer runs).
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
bash scripts/fuzz.sh "${FUZZ_SECONDS:-10}"

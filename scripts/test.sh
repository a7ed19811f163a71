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

# Every fuzz target for a short, bounded time (scripts/fuzz.sh for longer runs).
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
bash scripts/fuzz.sh "${FUZZ_SECONDS:-10}"

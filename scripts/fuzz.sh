#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ and runs each for SECONDS (default 60),
# one at a time, starting from the committed seeds in fuzz/corpus/<target>/.
# Exits non-zero if a target fails to build or finds a crash (its input is
# left in fuzz/artifacts/<target>/).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Only a stable toolchain is
# required: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the nightly-only flags.
# Built without a sanitizer (the code is safe Rust; libFuzzer still catches
# panics, aborts and stack overflows) and with debug assertions, so integer
# overflow panics instead of wrapping.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(event_body sdk_reply register_body cel_expr time_string signature_header)
fi
export RUSTC_BOOTSTRAP=1
flags=(--sanitizer none --debug-assertions)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi

start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz: built in $(( $(date +%s) - start ))s"

failed=()
for t in "${targets[@]}"; do
    # libFuzzer writes new inputs into the first corpus dir: use a scratch
    # copy so the committed seeds stay as they are.
    work="corpus/$t/run"
    mkdir -p "$work" "artifacts/$t"
    echo "fuzz: $t for ${seconds}s"
    if cargo fuzz run "${flags[@]}" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
        -print_final_stats=1 2>"artifacts/$t/log.txt"; then
        grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "artifacts/$t/log.txt" | sed "s/^/fuzz: $t: /" || true
    else
        echo "fuzz: $t FAILED; log in fuzz/artifacts/$t/log.txt" >&2
        tail -40 "artifacts/$t/log.txt" >&2
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s without a crash"

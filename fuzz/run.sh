#!/usr/bin/env bash
# Runs halo's fuzz targets with cargo-fuzz (libFuzzer) on the stable
# toolchain, each for a bounded time.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target: the argument, else $FUZZ_TIME, else 120.
# TARGET: request_head, chunked (default: both).
# $FUZZ_ARGS: extra libFuzzer arguments (e.g. "-max_len=512 -seed=1").
# $HALO_FUZZ_SKIP: checks to turn off in request_head (see its source).
# $CARGO_BUILD_JOBS: build parallelism (cargo's own variable).
#
# New corpus entries go to fuzz/work/<target>/ (ignored by git); the seed
# corpus fuzz/corpus/<target>/ is only read. Failing inputs are written to
# fuzz/artifacts/<target>/. Exits non-zero if any target failed.
set -uo pipefail
cd "$(dirname "$0")"

secs="${1:-${FUZZ_TIME:-120}}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request_head chunked)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked || exit 1
fi

# -s none: no sanitizer, so no nightly-only -Zsanitizer flag (the parsers
# are safe Rust). -a: debug assertions and overflow checks on.
flags=(-s none -a)
cargo fuzz build "${flags[@]}" || exit 1

status=0
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "artifacts/$t"
    dict=()
    [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
    echo "== $t: ${secs}s" >&2
    # shellcheck disable=SC2086
    if ! cargo fuzz run "${flags[@]}" "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 "${dict[@]}" ${FUZZ_ARGS:-}; then
        echo "== $t: FAILED (input in fuzz/artifacts/$t/)" >&2
        status=1
    fi
done
exit $status

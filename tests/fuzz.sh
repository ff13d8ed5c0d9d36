#!/usr/bin/env bash
# Builds Kennel's fuzz targets (fuzz/: cargo-fuzz and libFuzzer on the
# stable toolchain, see fuzz/README.md) and runs each for a short while,
# starting from its corpus in the repository. Fails if any target crashes:
# a panic, a broken property, a timeout or running out of memory; the
# input is left in fuzz/artifacts/<target>/.
#
#   sudo tests/fuzz.sh [TARGET...]      all targets when none is named
#
#   FUZZ_SECONDS=20   seconds per target; the tarball and backup targets,
#                     the slowest and richest, get three times as long
#                     (default: 4m20s of fuzzing in all, plus the build)
#   FUZZ_MERGE=1      afterwards, add to fuzz/corpus/ the new inputs that
#                     reach new edges (review what it adds before a commit)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (sudo $0): the tarball and backup targets chown what they unpack" >&2; exit 3; }

seconds=${FUZZ_SECONDS:-20}
cargo_fuzz_version=0.13.2
all=(tarball backup ve_conf host_conf units address rate forward netif)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

scripts/install-deps.sh   # g++, for libFuzzer itself
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    echo "==> cargo install cargo-fuzz $cargo_fuzz_version"
    cargo install --locked --quiet cargo-fuzz --version "$cargo_fuzz_version"
fi

# Everything the targets write goes below one tmpfs directory of this run:
# new inputs, and the tarball and backup targets' scratch directories (which a
# crashed target cannot remove itself).
work=$(mktemp -d /dev/shm/kennel-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
export KENNEL_FUZZ_SCRATCH="$work/scratch"
mkdir "$KENNEL_FUZZ_SCRATCH"

cd fuzz
# -s none: no sanitizer, the only choice on stable (the targets are safe
# Rust); -a: debug assertions, so that overflows panic.
fuzz=(-s none -a)
echo "==> cargo fuzz build (release, coverage-instrumented)"
cargo fuzz build "${fuzz[@]}"
bin=target/x86_64-unknown-linux-gnu/release

failed=()
printf '==> fuzzing, %ss a target\n' "$seconds"
printf '%-10s %5s %10s %8s %6s %7s %s\n' target secs execs exec/s cov corpus result
for t in "${targets[@]}"; do
    secs=$seconds
    opts=(-timeout=20 -rss_limit_mb=2048 -print_final_stats=1)
    if [ "$t" = tarball ] || [ "$t" = backup ]; then
        secs=$((seconds * 3))
        opts+=(-max_len=65536)
    fi
    mkdir -p "$work/new/$t"
    log="$work/$t.log"
    result=ok
    # New inputs go to the first directory; corpus/ is only read.
    cargo fuzz run "${fuzz[@]}" "$t" "$work/new/$t" "corpus/$t" -- \
        -max_total_time="$secs" "${opts[@]}" >"$log" 2>&1 || result=FAILED
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    printf '%-10s %5s %10s %8s %6s %7s %s\n' "$t" "$secs" "${execs:--}" "${rate:--}" "${cov:--}" "${corp:--}" "$result"
    if [ "$result" != ok ]; then
        failed+=("$t")
        grep -E -A12 'panicked at|ERROR: libFuzzer|Failing input' "$log" | head -40 >&2 || tail -40 "$log" >&2
    elif [ "${FUZZ_MERGE:-0}" = 1 ]; then
        # Only inputs that reach new edges (not new hit counts), and small
        # ones: the corpus stays a few hundred kilobytes.
        len=512
        [ "$t" = tarball ] && len=2048
        [ "$t" = backup ] && len=8192
        "$bin/$t" -set_cover_merge=1 -use_counters=0 -max_len=$len "corpus/$t" "$work/new/$t" \
            >"$work/$t.merge.log" 2>&1
        echo "   into fuzz/corpus/$t: $(grep -o '[0-9]* new files with [0-9]* new features' "$work/$t.merge.log" || echo '?')"
    fi
done
rm -rf "$KENNEL_FUZZ_SCRATCH"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found failures in: ${failed[*]} (inputs in fuzz/artifacts/; replay one with" >&2
    echo "  cd fuzz && cargo fuzz run -s none -a TARGET artifacts/TARGET/crash-...)" >&2
    exit 1
fi
echo "==> fuzzing: no failures"

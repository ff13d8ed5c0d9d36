#!/usr/bin/env bash
# Kennel's whole test suite, as CI runs it (.ci/run):
#   1. install what the tests need (Debian packages);
#   2. formatting and lints; the systemd drop-ins Kennel installs;
#   3. unit and integration tests on this host (real VEs; cgroup v1/hybrid here),
#      the hostile-tenant attack suite among them (crates/kennel/tests/security);
#      then the API service against its OpenAPI document (tests/api-schema.sh),
#      and, alone, the tests that lower a host-wide limit (marked `ignore`);
#   4. a short run of every fuzz target (tests/fuzz.sh; the corpus is also
#      replayed by step 3);
#   5. the same test binaries on a pure cgroup v2 kernel in a VM (tests/v2/run.sh).
#
#   sudo tests/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "==> cargo fmt --check, cargo clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
echo "==> the systemd units and drop-in Kennel installs (scripts/systemd)"
tests/systemd-units.sh
echo "==> tests on this host ($(uname -r))"
cargo test --workspace
echo "==> the API service against its OpenAPI document (schemathesis)"
tests/api-schema.sh
echo "==> tests that bring a host-wide limit down (kernel.pid_max, namespaces), alone"
cargo test -p kennel --test host_check -- --ignored --test-threads=1
# 10 s a target here: a smoke run (step 3 replays the whole corpus);
# longer runs are tests/fuzz.sh's own default.
export FUZZ_SECONDS=${FUZZ_SECONDS:-10}
echo "==> fuzzing (every parser of untrusted input, FUZZ_SECONDS=$FUZZ_SECONDS per target)"
tests/fuzz.sh
echo "==> tests on a pure cgroup v2 kernel (VM)"
tests/v2/run.sh
echo "==> all tests passed"

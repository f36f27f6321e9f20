#!/usr/bin/env bash
# Long-running tests kept out of CI: stress soak and a large proptest run.
set -euo pipefail
cd "$(dirname "$0")/.."
export SNAPBASE_STRESS_SECS="${SNAPBASE_STRESS_SECS:-300}"
cargo test --release --test stress -- --ignored --nocapture
PROPTEST_CASES="${PROPTEST_CASES:-20000}" cargo test --release --test model
LOOM_MAX_PREEMPTIONS=3 scripts/loom.sh

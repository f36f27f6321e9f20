#!/usr/bin/env bash
# Loom model checking of the concurrency core (see loom_tests/main.rs).
# Tier 1 models our own synchronization; tier 2 also models crossbeam-epoch's atomics.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom"   # --cfg changes invalidate the normal cache
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export RUSTFLAGS="--cfg loom -C debug-assertions ${RUSTFLAGS:-}"
echo "loom tier 1 (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS)"
cargo test --release --test loom "$@"
echo "loom tier 2: crossbeam-epoch modelled too"
# The whole-database GC race runs in tier 1 only: with the epoch modelled, its three passes
# exceed loom's branch limit. Tier 2 checks the same race on the chain alone (chain::an_install_racing_a_prune_...).
RUSTFLAGS="$RUSTFLAGS --cfg crossbeam_loom" \
  cargo test --release --features loom --test loom "$@" -- chain gc publication committers \
    --skip a_replace_racing_a_pass

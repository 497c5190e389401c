#!/usr/bin/env bash
# The generated C cross-compiled for arm64 and run under qemu user mode (no root file system,
# no Python on the arm64 side): installs gcc-aarch64-linux-gnu and qemu-user-static with
# apt-get when missing (needs root; without it, ONE loud line and exit 0, as run.sh), then
# boards/arm64/cross_c.py exports zoo bundles, builds each main.c self-check for x86 and for
# arm64 (sdot kernel and plain C) and compares. Exit 1 if arm64 differs from x86 or a
# self-check fails. Environment: ARM64_CACHE (default build/arm64), HOST_PY.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${ARM64_CACHE:-$REPO/build/arm64}/c
HOST_PY=${HOST_PY:-$REPO/.venv/bin/python}

if ! command -v aarch64-linux-gnu-gcc >/dev/null ||
	! { command -v qemu-aarch64-static || command -v qemu-aarch64; } >/dev/null; then
	echo "[arm64 c] installing gcc-aarch64-linux-gnu and qemu-user-static" >&2
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
		qemu-user-static >/dev/null; } || {
		echo "!!!!!!!! ARM64 C CHECK DID NOT RUN: apt-get could not install the cross tools !!!!!!!!" >&2
		exit 0
	}
fi
rm -rf "$OUT"
exec "$HOST_PY" "$REPO/boards/arm64/cross_c.py" "$OUT"

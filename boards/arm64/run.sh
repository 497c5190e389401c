#!/usr/bin/env bash
# The runtime on emulated Raspberry Pi OS 64-bit (Debian bookworm arm64) under qemu user mode:
# builds a cached arm64 root, installs rnnedge's runtime there WITHOUT torch (the wheel of this
# checkout with its onnx and tflite extras, so the pins are pyproject's), and under QEMU_CPU
# cortex-a72 (Pi 4) and cortex-a76 (Pi 5) runs the runtime tests, streams bundles exported
# natively on x86 through every backend and compares with x86, holds every int8 file to the numpy
# integer spec (in TFLite's fixed point for LiteRT on arm64), and measures the installed size
# and peak RSS. See docs/arm64.md. Emulated timings mean nothing and are not reported.
#
# Needs root (apt-get, mount, chroot). If binfmt_misc cannot be used it prints ONE loud line
# and exits 0, so CI does not fail for lack of privileges; it exits 1 if arm64 results differ
# from x86 beyond tolerance, an int8 output is more than 2 quantisation steps from the spec, or
# the runtime does not install or pass its tests there.
#
# Environment: ARM64_CACHE (default build/arm64), ARM64_CPUS (default "cortex-a72
# cortex-a76"), ARM64_STEPS (steps per stream, default 1000), ARM64_SPEC_STEPS (steps of each
# int8 bundle against the numpy spec, default 200), HOST_PY (default .venv/bin/python).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/boards/arm64
CACHE=${ARM64_CACHE:-$REPO/build/arm64}
CPUS=${ARM64_CPUS:-cortex-a72 cortex-a76}
STEPS=${ARM64_STEPS:-1000}
SPEC_STEPS=${ARM64_SPEC_STEPS:-200}
HOST_PY=${HOST_PY:-$REPO/.venv/bin/python}
SUITE=bookworm
INCLUDE=python3-venv,python3-pip,dash,coreutils,libstdc++6
ROOT=$CACHE/root
OPT=/opt/rnnedge-arm64 # inside the root
VENV=/opt/venv         # inside the root
OUT=$CACHE/out
BINFMT=/proc/sys/fs/binfmt_misc
CHROOT=$(PATH=$PATH:/usr/sbin:/sbin command -v chroot) # env -i below clears PATH
T0=$SECONDS

MOUNTS=()           # mounted by us, unmounted in reverse order on exit
UNREGISTER=""       # the binfmt entry we registered, removed on exit
CHILD=""            # the running child, killed if we are interrupted

say() { printf '[arm64 %4ds] %s\n' $((SECONDS - T0)) "$*" >&2; }
did_not_run() {
	echo "!!!!!!!! ARM64 CHECK DID NOT RUN: $* !!!!!!!!" >&2
	exit 0
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
		kill -TERM "$CHILD" 2>/dev/null || true
		wait "$CHILD" 2>/dev/null || true
	fi
	local i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" ||
			echo "arm64: could not unmount ${MOUNTS[i]}" >&2
	done
	if [ -n "$UNREGISTER" ] && [ -e "$BINFMT/$UNREGISTER" ]; then
		echo -1 >"$BINFMT/$UNREGISTER" || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command in the background and waits, so that INT/TERM reach our trap at once.
run() {
	"$@" &
	CHILD=$!
	wait "$CHILD"
	local rc=$?
	CHILD=""
	return $rc
}

mount_tracked() { # mount ARGS... TARGET
	mount "$@" || return 1
	MOUNTS+=("${@: -1}")
}

ensure_tools() {
	command -v qemu-aarch64-static >/dev/null && command -v mmdebstrap >/dev/null && return
	say "installing qemu-user-static and mmdebstrap"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends qemu-user-static mmdebstrap >/dev/null; } ||
		did_not_run "apt-get could not install qemu-user-static and mmdebstrap"
}

# binfmt_misc is not registered automatically without systemd: mount it and register
# qemu-aarch64 from the package's binfmt.d file (its F flag opens the interpreter now, so it
# also runs inside the chroot); both are undone on exit if we did them.
register_binfmt() {
	if [ ! -e "$BINFMT/register" ]; then
		mount_tracked -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null ||
			did_not_run "cannot mount binfmt_misc at $BINFMT (not root, or no privileges)"
	fi
	if [ ! -e "$BINFMT/qemu-aarch64" ]; then
		local conf=/usr/lib/binfmt.d/qemu-aarch64.conf
		[ -r "$conf" ] || did_not_run "$conf is missing (qemu-user-static not installed?)"
		(cat "$conf" >"$BINFMT/register") 2>/dev/null ||
			did_not_run "cannot register qemu-aarch64 with binfmt_misc"
		UNREGISTER=qemu-aarch64
	fi
	grep -q '^enabled' "$BINFMT/qemu-aarch64" ||
		did_not_run "binfmt_misc entry qemu-aarch64 is disabled"
}

# The root: bookworm arm64, only the packages the runtime needs (extract: no maintainer
# scripts run, so it takes seconds). libstdc++6: onnxruntime does not import without it.
build_root() {
	local stamp="$SUITE $INCLUDE"
	if [ -f "$ROOT/.rnnedge-stamp" ] && [ "$(cat "$ROOT/.rnnedge-stamp")" = "$stamp" ]; then
		say "arm64 root: cached ($ROOT)"
		return
	fi
	say "building the $SUITE arm64 root with mmdebstrap"
	rm -rf "$ROOT" "$ROOT.tmp"
	run mmdebstrap --quiet --arch=arm64 --variant=extract --include="$INCLUDE" \
		"$SUITE" "$ROOT.tmp"
	echo "$stamp" >"$ROOT.tmp/.rnnedge-stamp"
	mv "$ROOT.tmp" "$ROOT"
}

# What the chroot needs from the host; /sys is NEVER mounted: onnxruntime crashes under qemu
# when it reads the host's real CPU list there.
prepare_root() {
	cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
	mkdir -p "$ROOT/etc/ssl/certs"
	cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
	local dev
	for dev in null:1:3 zero:1:5 random:1:8 urandom:1:9; do
		IFS=: read -r name major minor <<<"$dev"
		[ -c "$ROOT/dev/$name" ] || { rm -f "$ROOT/dev/$name" &&
			mknod -m 666 "$ROOT/dev/$name" c "$major" "$minor"; }
	done
	mkdir -p "$ROOT/proc" "$ROOT/root" "$ROOT$OPT"
	mount_tracked -t proc proc "$ROOT/proc"
}

# A command inside the root, with a clean environment: the host's PIP_* settings and pip
# config must not leak in (the root reaches PyPI itself, as a Pi would).
in_root() { # CPU COMMAND...
	local cpu=$1
	shift
	run env -i QEMU_CPU="$cpu" HOME=/root LANG=C.UTF-8 PATH="$VENV/bin:/usr/bin:/bin" \
		PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
		PYTHONDONTWRITEBYTECODE=1 "$CHROOT" "$ROOT" "$@"
}

# The wheel of this checkout, built on the host from a copy (so nothing is written into the
# shared tree); pure Python, so the same wheel installs on arm64.
build_wheel() {
	local src=$CACHE/src
	rm -rf "$src" "$CACHE/wheel"
	mkdir -p "$src"
	tar -C "$REPO" --exclude=./.venv --exclude=./build --exclude=./.git --exclude='*.rnnedge' \
		--exclude=__pycache__ --exclude='.*_cache' --exclude=.hypothesis --exclude='*.egg-info' \
		-cf - . | tar -C "$src" -xf -
	run "$HOST_PY" -m pip wheel -q --no-deps -w "$CACHE/wheel" "$src" >/dev/null
	WHEEL=$(ls "$CACHE"/wheel/rnnedge-*.whl)
}

# Bundles exported natively on x86, cached on a hash of the code that shapes them.
export_bundles() {
	local hash
	hash=$(cd "$REPO" && find rnnedge export quantize runtime tests/models.py \
		boards/arm64/export_bundles.py -name '*.py' -print0 | sort -z | xargs -0 sha256sum |
		sha256sum | cut -c1-16)
	BUNDLES=$CACHE/bundles-$hash
	if [ -d "$BUNDLES" ]; then
		say "x86 bundles: cached ($BUNDLES)"
		return
	fi
	say "exporting bundles natively on x86 (zoo models and the demo)"
	rm -rf "$CACHE"/bundles-*
	run "$HOST_PY" "$HERE/export_bundles.py" "$BUNDLES.tmp" >/dev/null
	run "$HOST_PY" -m rnnedge demo --out "$BUNDLES.tmp" --steps 200 >/dev/null
	mv "$BUNDLES.tmp" "$BUNDLES"
}

# The venv: the runtime's dependencies from the wheel's own extras (pyproject's pins), plus
# pytest for the runtime tests; redone when pyproject.toml changes. rnnedge itself is
# reinstalled every run, without dependencies, from this checkout's wheel.
install_runtime() {
	local stamp
	stamp=$(sha256sum "$REPO/pyproject.toml" | cut -c1-16)
	mkdir -p "$ROOT$OPT"
	rm -rf "$ROOT$OPT/wheel" && mkdir -p "$ROOT$OPT/wheel"
	cp "$WHEEL" "$ROOT$OPT/wheel/"
	local whl=$OPT/wheel/$(basename "$WHEEL")
	if [ "$(cat "$ROOT$VENV/.rnnedge-stamp" 2>/dev/null)" != "$stamp" ]; then
		say "installing the runtime in the arm64 root: rnnedge[onnx,tflite] (no torch)"
		rm -rf "$ROOT$VENV"
		in_root cortex-a72 /usr/bin/python3 -m venv "$VENV"
		in_root cortex-a72 "$VENV/bin/pip" install -q --retries 5 "$whl[onnx,tflite]" pytest
		echo "$stamp" >"$ROOT$VENV/.rnnedge-stamp"
	else
		say "arm64 venv: cached"
	fi
	in_root cortex-a72 "$VENV/bin/pip" install -q --no-deps --force-reinstall "$whl"
	in_root cortex-a72 "$VENV/bin/python" -c \
		'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is not None)' ||
		{ echo "arm64: torch is installed in the runtime venv; it must not be" >&2; return 1; }
}

stage_inputs() {
	local opt=$ROOT$OPT
	rm -rf "$opt/bundles" "$opt/tests" "$opt/out"
	mkdir -p "$opt/tests/runtime" "$opt/out"
	cp -r "$BUNDLES" "$opt/bundles"
	cp "$HERE"/{compare.py,spec_steps.py,footprint.py} "$opt/"
	cp "$REPO"/tests/helpers.py "$opt/tests/"
	cp "$REPO"/tests/runtime/{test_runtime.py,test_no_torch.py} "$opt/tests/runtime/"
	cp "$HERE/root_conftest.py" "$opt/tests/conftest.py"
	cp "$OUT/x86.npz" "$opt/x86.npz"
}

main() {
	[ "$(id -u)" = 0 ] || did_not_run "needs root (apt-get, mount, chroot)"
	[ -x "$HOST_PY" ] || { echo "arm64: $HOST_PY missing; run 'make setup' first" >&2; exit 1; }
	mkdir -p "$CACHE" "$OUT"
	exec 9>"$CACHE/.lock"
	flock -n 9 || { echo "arm64: another run holds $CACHE/.lock" >&2; exit 1; }
	ensure_tools
	register_binfmt
	build_root
	prepare_root
	in_root cortex-a72 /bin/true 2>/dev/null ||
		did_not_run "binfmt_misc is registered but arm64 binaries do not run in $ROOT"

	build_wheel
	export_bundles
	local bundles=("$BUNDLES"/*.rnnedge)
	say "x86 reference: streaming ${#bundles[@]} bundles, $STEPS steps, every backend"
	run "$HOST_PY" "$HERE/compare.py" record "${bundles[@]}" --steps "$STEPS" \
		--spec-steps "$SPEC_STEPS" --out "$OUT/x86.npz"
	run "$HOST_PY" "$HERE/footprint.py" rss "$BUNDLES/digits.rnnedge" >"$OUT/rss-x86.json"
	install_runtime
	stage_inputs

	local cpu records=()
	for cpu in $CPUS; do
		say "$cpu: runtime tests (tests/runtime/test_runtime.py, tests/runtime/test_no_torch.py)"
		if ! in_root "$cpu" "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
			--rootdir "$OPT/tests" "$OPT/tests" >"$OUT/pytest-$cpu.txt" 2>&1; then
			cat "$OUT/pytest-$cpu.txt"
			echo "arm64: the runtime tests failed on $cpu" >&2
			exit 1
		fi
		tail -n 1 "$OUT/pytest-$cpu.txt" | sed "s/^/  $cpu: /"
		say "$cpu: rnnedge check on the demo bundle (every backend x precision, 1000 steps)"
		if ! in_root "$cpu" "$VENV/bin/rnnedge" check "$OPT/bundles/digits.rnnedge" --steps 1000 \
			>"$OUT/check-$cpu.txt" 2>&1; then
			cat "$OUT/check-$cpu.txt"
			echo "arm64: rnnedge check failed on $cpu" >&2
			exit 1
		fi
		tail -n 1 "$OUT/check-$cpu.txt" | sed "s/^/  $cpu: /"
		say "$cpu: streaming every bundle through every backend; int8 against the numpy spec"
		in_root "$cpu" "$VENV/bin/python" "$OPT/compare.py" record "${bundles[@]/#$BUNDLES/$OPT/bundles}" \
			--reference "$OPT/x86.npz" --spec-steps "$SPEC_STEPS" --out "$OPT/out/$cpu.npz"
		in_root "$cpu" "$VENV/bin/python" "$OPT/footprint.py" rss "$OPT/bundles/digits.rnnedge" \
			>"$OUT/rss-$cpu.json"
		cp "$ROOT$OPT/out/$cpu.npz" "$OUT/$cpu.npz"
		records+=("$cpu=$OUT/$cpu.npz")
	done
	in_root cortex-a72 "$VENV/bin/python" "$OPT/footprint.py" sizes >"$OUT/sizes.json"

	local rss_args=(x86="$OUT/rss-x86.json")
	for cpu in $CPUS; do rss_args+=("$cpu=$OUT/rss-$cpu.json"); done
	echo
	echo "## arm64 footprint (installed size inside the arm64 root; peak RSS loading"
	echo "## digits.rnnedge and stepping it $STEPS times; emulated RSS includes qemu itself)"
	"$HOST_PY" "$HERE/footprint.py" table --sizes "$OUT/sizes.json" "${rss_args[@]}" |
		tee "$OUT/footprint.md"
	echo
	local rc=0
	"$HOST_PY" "$HERE/compare.py" report "$OUT/x86.npz" "${records[@]}" >"$OUT/report.md" || rc=$?
	cat "$OUT/report.md"
	say "done in $((SECONDS - T0)) s (emulated timings mean nothing; this is wall time only)"
	return $rc
}

main "$@"

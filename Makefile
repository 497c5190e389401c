# One entry point for set-up, demo and tests. Every target sets up .venv first if needed.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: setup demo test test-slow bench-step bench-int8 bench-chunk bench-native bench-tokens arm64 arm64-c format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 is pinned in pyproject: pip takes the CPU build from the local wheel cache
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	.venv/bin/rnnedge demo

# pytest-xdist, one worker per core of the 2-core CI machine; a file's tests stay on one
# worker (loadfile), so its module fixtures (exports, trainings) are computed once
test: setup
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .
	$(PY) -m pytest -q -n 2 --dist loadfile

# per-step cost against raw interpreter calls and PyTorch eager, one run (issue 4's numbers)
bench-step: setup
	$(PY) -m rnnedge.boards.sweeps.step

# the native backend (the bundle's C) vs raw LiteRT, onnxruntime and PyTorch, float and int8
bench-native: setup
	$(PY) -m rnnedge.boards.sweeps.native

# int8 vs float vs the peers' int8 per step, GRU/LSTM at hidden 64..512 (issue 3); the LiteRT
# int8 peer needs a Python with tensorflow: make bench-int8 TF_PYTHON=/tmp/tfvenv/bin/python
bench-int8: setup
	$(PY) -m rnnedge.boards.sweeps.int8 $(if $(TF_PYTHON),--tf-python $(TF_PYTHON))

# per-step cost of stream.run with K-step chunk models, K = 1, 4, 16 (issue 15, part 3)
bench-chunk: setup
	$(PY) -m rnnedge.boards.sweeps.chunk

# per-token step of tiny Mamba-1 / RWKV-4 models on every backend, float and int8, vs PyTorch
# eager's own cached decode, with board estimates and file sizes (issue 17, part 4)
bench-tokens: setup
	$(PY) -m rnnedge.boards.sweeps.tokens

test-slow: setup
	$(PY) -m pytest -q -m slow

# the runtime on emulated Raspberry Pi OS arm64 (qemu user mode; needs root): docs/arm64.md
arm64: setup
	bash boards/arm64/run.sh
	bash boards/arm64/cross_c.sh

# only the generated C: cross-compiled for arm64 (sdot and plain C), run under qemu-aarch64
arm64-c: setup
	bash boards/arm64/cross_c.sh

format: setup
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

clean:
	rm -rf .venv build .pytest_cache .ruff_cache

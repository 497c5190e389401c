# One entry point for set-up, demo and tests. Every target sets up .venv first if needed.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: setup demo test test-slow lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 is pinned in pyproject: pip takes the CPU build from the local wheel cache
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	.venv/bin/rnnedge demo

test: setup
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

format: setup
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

clean:
	rm -rf .venv build .pytest_cache .ruff_cache

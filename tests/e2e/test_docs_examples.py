"""Every ```python and ```sh block of README.md and docs/*.md runs verbatim, so the docs
cannot rot (issue 19: the README's int8 snippet called a name it never imported).

How blocks run, in a fresh working directory per block holding the files the examples name:
  python  exec'd with the names a reader is assumed to have: `model` (a small GRU taking
          (1, 1, 40) steps), `example` (one step of it), `x`, `xs` (T steps), `X` (32 steps
          stacked), `seqs` (8 sequences of (T, 40)), `x_test` / `y_test` (images and labels);
          anything else it uses it must import or define itself
  sh      bash -e, with this venv's `rnnedge` first on PATH; the files: model.py:make,
          path/to/model.py:factory + model.pt, net.py:make + net.pt, pkg/module.py:factory
          (a cell taking its state), seqs.npz and xs.npy. In `make test-slow` only: every
          command starts a Python, most import torch (about a minute for the README's)
Blocks in any other language (```text, ```json, ```yaml, untagged) are output or data.

A block that cannot run here is marked on the line just before its fence, and only so:
  <!-- docs-test: skip REASON -->   REASON is required: it needs root, a board, PyPI, or is
                                     the test suite itself
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")  # indented too: a block inside a list item
MARK = re.compile(r"^\s*<!-- docs-test: (skip)\b\s*(.*?)\s*-->$")
RUN = ("python", "sh")

MODEL_PY = textwrap.dedent(
    """
    import torch
    from torch import nn

    class KWS(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(40, 16, batch_first=True)
            self.head = nn.Linear(16, 12)

        def forward(self, x):
            return self.head(self.gru(x)[0])

    class Cell(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = nn.GRUCell(40, 128)

        def forward(self, x, h):
            h = self.cell(x, h)
            return h, h

    def make():
        torch.manual_seed(0)
        return KWS()

    def make_cell():
        return Cell()

    factory = make
    """
)


def _blocks() -> list:
    params = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            indent = m[1]
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```"))
            lang = m[2]
            body = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end]) + "\n"
            mark = MARK.match(lines[i - 1]) if i else None
            if lang in RUN:
                where = f"{page.relative_to(ROOT)}:{i + 1}"
                marks = [pytest.mark.slow] if lang == "sh" else []
                if mark:
                    marks = [pytest.mark.skip(reason=f"{where}: {mark[2]}")]
                params.append(pytest.param(lang, body, mark, id=where, marks=marks))
            i = end + 1
    return params


BLOCKS = _blocks()


def test_the_blocks_are_found_and_every_skip_says_why() -> None:
    ids = [p.id for p in BLOCKS]
    assert any(i.startswith("README.md") for i in ids) and len(ids) >= 6, ids
    for p in BLOCKS:
        _, _, mark = p.values
        if mark:
            assert len(mark[2]) > 10, f"{p.id}: a skip needs its reason"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    import torch

    d = tmp_path_factory.mktemp("docs_template")
    for path in ("model.py", "path/to/model.py", "net.py", "pkg/module.py"):
        (d / path).parent.mkdir(parents=True, exist_ok=True)
        (d / path).write_text(
            MODEL_PY.replace("factory = make", "factory = make_cell")
            if path == "pkg/module.py"
            else MODEL_PY
        )
    (d / "pkg" / "__init__.py").write_text("")
    ns: dict = {}
    exec(MODEL_PY, ns)
    torch.save(ns["make"]().state_dict(), d / "model.pt")
    shutil.copy(d / "model.pt", d / "net.pt")
    rng = np.random.default_rng(0)
    np.savez(d / "seqs.npz", *[rng.standard_normal((20, 40)).astype(np.float32) for _ in range(8)])
    np.save(d / "xs.npy", rng.standard_normal((30, 1, 1, 40)).astype(np.float32))
    return d, ns


@pytest.mark.parametrize(("lang", "body", "mark"), BLOCKS)
def test_block_runs_verbatim(lang, body, mark, workdir, tmp_path, monkeypatch) -> None:
    template, ns = workdir
    cwd = tmp_path / "work"
    shutil.copytree(template, cwd)
    if lang == "sh":
        bindir = str(Path(sys.executable).parent)
        env = {**os.environ, "PATH": bindir + os.pathsep + os.environ["PATH"]}
        r = subprocess.run(
            ["bash", "-e", "-c", body],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        return
    import torch

    rng = np.random.default_rng(1)
    reader = {
        "model": ns["make"](),
        "example": torch.zeros(1, 1, 40),
        "x": rng.standard_normal((1, 1, 40)).astype(np.float32),
        "xs": rng.standard_normal((25, 1, 1, 40)).astype(np.float32),
        "X": rng.standard_normal((32, 1, 40)).astype(np.float32),
        "seqs": [rng.standard_normal((20, 40)).astype(np.float32) for _ in range(8)],
        "x_test": rng.standard_normal((10, 8, 8)).astype(np.float32),
        "y_test": rng.integers(0, 10, 10),
    }
    monkeypatch.chdir(cwd)
    exec(compile(body, f"<{mark or 'block'}>", "exec"), {"__name__": "docs_block", **reader})

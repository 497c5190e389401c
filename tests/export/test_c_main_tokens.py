"""The `--target c` self-check (main.c) on a model whose input is token ids: the golden ids must
reach the C as the integers it reads (int64 or int32 items), not as float32 bit patterns."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from op_models import CharLM

from rnnedge.export.c.main_c import write_c_project
from rnnedge.export.pipeline import export_bundle


@pytest.fixture(scope="module", params=[torch.int64, torch.int32])
def token_c_project(request, tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tokens_c")
    rng = np.random.default_rng(0)
    dtype = np.int64 if request.param == torch.int64 else np.int32
    calib = [rng.integers(0, 30, (40, 1, 1)).astype(dtype) for _ in range(4)]
    path = export_bundle(
        CharLM().eval(),
        torch.zeros(1, 1, dtype=request.param),
        d / "lm.rnnedge",
        quantize="int8",
        calibration=calib,
        int8_budget={"max_err_pct": 100.0, "allow_drift": True},
    )
    write_c_project(path, d / "c")
    return d / "c"


@pytest.mark.parametrize("precision", ["float", "int8"])
def test_self_check_replays_token_ids(token_c_project, precision, tmp_path) -> None:
    model_c, main_c = (
        ("model.c", "main.c") if precision == "float" else ("model.int8.c", "main.int8.c")
    )
    exe = tmp_path / "a.out"
    cmd = ["cc", "-O2", "-Wall", "-Wextra", "-std=c99", "-Werror", model_c, main_c, "-lm", "-o"]
    subprocess.run([*cmd, str(exe)], cwd=token_c_project, check=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
    assert "max error" in run.stdout

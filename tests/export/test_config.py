"""ExportConfig: frozen, keyword-only, every option checked once before export does any work."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rnnedge.errors import BundleError, ExportError, InputError
from rnnedge.export.config import ExportConfig
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime.manifest import Task


def test_the_config_is_frozen_and_keyword_only() -> None:
    config = ExportConfig(quantize="int8-dynamic")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.quantize = "int8"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ExportConfig("int8-dynamic")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"quantize": "int4"}, ExportError, "quantize='int4': choose one of none, int8-dynamic"),
        ({"quantize": "int8"}, ExportError, "quantize='int8' needs calibration sequences"),
        ({"percentile": 40.0}, InputError, r"calibration percentile 40.0 must be in \(50, 100\]"),
        ({"task": {"kind": "classification", "axis": 1}}, ExportError, "task {'kind'"),
        ({"task": "classification"}, ExportError, "task must be a dict like"),
        ({"task": {"kind": "ranking"}}, BundleError, "task kind 'ranking' is not one of"),
    ],
)
def test_each_bad_option_is_one_clear_error(options, error, message) -> None:
    with pytest.raises(error, match=message):
        ExportConfig(**options)


def test_a_task_dict_becomes_a_task() -> None:
    config = ExportConfig(task={"kind": "regression", "output": "y"})
    assert config.task == Task(kind="regression", output="y")


def test_sequences_are_kept_as_a_tuple_and_the_callers_list_is_untouched() -> None:
    seqs = [np.zeros((3, 1, 2), np.float32) for _ in range(4)]
    config = ExportConfig(quantize="int8", calibration=iter(seqs), golden=seqs)
    assert isinstance(config.calibration, tuple) and len(config.calibration) == 4
    assert config.golden == tuple(seqs) and isinstance(seqs, list) and len(seqs) == 4
    # a second read sees the same sequences (an iterator would be spent)
    assert len(tuple(config.calibration)) == 4


def test_keywords_override_the_config_and_are_checked_before_capture() -> None:
    said: list[str] = []
    config = ExportConfig(progress=said.append)
    # the model is never touched: the option is refused first
    with pytest.raises(ExportError, match="quantize='int4'"):
        export_bundle(object(), None, "never.rnnedge", config, quantize="int4")
    with pytest.raises(TypeError):
        export_bundle(object(), None, "never.rnnedge", quantise="int8")
    assert said == []


def test_say_reports_to_the_callback_only_when_there_is_one() -> None:
    said: list[str] = []
    ExportConfig(progress=said.append).say("one")
    ExportConfig().say("nobody hears this")
    assert said == ["one"]

"""Step adapters: a library's model -> a StepModel (adapters/base.py), a model that takes its
state, built from the library's own step code so the numbers are the library's.

ADAPTERS is the one registry, name -> adapter; adding an adapter is one entry. The CLI's
`rnnedge export --adapter NAME` reads it. Each adapter imports its library (transformers)
only when called.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rnnedge.errors import ExportError
from rnnedge.export.adapters.base import StepModel
from rnnedge.export.adapters.hf_mamba import mamba_step
from rnnedge.export.adapters.hf_rwkv import rwkv_step
from rnnedge.export.adapters.hf_xlstm import xlstm_step

ADAPTERS: dict[str, Callable[[torch.nn.Module], StepModel]] = {
    "hf-rwkv": rwkv_step,  # transformers RwkvForCausalLM / RwkvModel (RWKV-4)
    "hf-mamba": mamba_step,  # transformers Mamba(2)ForCausalLM / Mamba(2)Model
    "hf-xlstm": xlstm_step,  # transformers xLSTMForCausalLM / xLSTMModel (mLSTM)
}


def adapt(name: str, model: torch.nn.Module) -> StepModel:
    """The StepModel of `model` by the adapter called `name`."""
    if name not in ADAPTERS:
        raise ExportError(f"unknown adapter {name!r}; choose one of {', '.join(ADAPTERS)}")
    return ADAPTERS[name](model)


__all__ = ["ADAPTERS", "StepModel", "adapt"]

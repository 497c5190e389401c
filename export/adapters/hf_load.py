"""A transformers model for `rnnedge export --adapter NAME PATH`: PATH is a from_pretrained
directory (config.json and its weights), or a config.json with `--weights` (a state_dict
.pt or .safetensors, as export/model_spec.load_weights reads them) or without (random
weights, for trying the pipeline). The head-bearing class (…ForCausalLM) is built, so the
bundle's output is logits."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rnnedge.errors import ModelSpecError
from rnnedge.export.model_spec import load_weights


def load_hf(path: str, weights: str | None = None) -> torch.nn.Module:
    try:
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError as e:  # the export extra pins it; a trimmed install may lack it
        raise ModelSpecError(
            f"--adapter needs transformers: pip install 'rnnedge[export]' ({e})"
        ) from e
    p = Path(path)
    config_file = p / "config.json" if p.is_dir() else p
    if not config_file.is_file():
        raise ModelSpecError(f"{path}: no config.json (give a from_pretrained directory or one)")
    if p.is_dir() and weights is None:
        try:
            return AutoModelForCausalLM.from_pretrained(str(p)).eval()
        except (OSError, ValueError) as e:
            raise ModelSpecError(f"{path}: transformers could not load it: {e}") from e
    try:
        fields = json.loads(config_file.read_text())
        config = AutoConfig.for_model(**fields)
    except (ValueError, KeyError, TypeError) as e:
        raise ModelSpecError(f"{config_file}: not a transformers config: {e}") from e
    model = AutoModelForCausalLM.from_config(config)
    if weights is not None:
        load_weights(model, Path(weights))
    return model.eval()

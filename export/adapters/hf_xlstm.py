"""Hugging Face transformers xLSTM (`xLSTMForCausalLM`, `xLSTMModel`; mLSTM blocks) as a step
model: the library's own single-token decode (`mlstm_recurrent_step_native`) with an
`xLSTMCache` holding the incoming states, read back after the token. Per layer three states,
as the cache names them: `layers.{i}.c` (batch, heads, dqk, dv), `layers.{i}.n` (batch,
heads, dqk) and `layers.{i}.m` (batch, heads, 1), all starting at zeros as in the library.
"""

from __future__ import annotations

import torch

from rnnedge.errors import ExportError, MissingDependencyError
from rnnedge.export.adapters.base import StepModel

KINDS = ("c", "n", "m")


class XLSTMStep(StepModel):
    """One token of a transformers xLSTM model, its mLSTM states explicit."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        from transformers.models.xlstm.modeling_xlstm import xLSTMCache

        self.model = model
        self.cache_class = xLSTMCache
        self.n_layers = int(model.config.num_hidden_layers)
        cache = xLSTMCache(model.config, 1, dtype=torch.float32)
        self.shapes = [tuple(t.shape[1:]) for i in range(self.n_layers) for t in cache.rnn_state[i]]
        self.state_names = tuple(f"layers.{i}.{k}" for i in range(self.n_layers) for k in KINDS)
        self.name_parameters()

    def step(self, ids: torch.Tensor, states: tuple[torch.Tensor, ...]) -> tuple:
        cache = self.cache_class(self.model.config, ids.shape[0], dtype=torch.float32)
        for i in range(self.n_layers):  # copies: the library updates its cache in place
            cache.rnn_state[i] = tuple(t.clone() for t in states[3 * i : 3 * i + 3])
        out = self.model(input_ids=ids, cache=cache, use_cache=True)
        y = out.logits if hasattr(out, "logits") else out.last_hidden_state
        return (y, *(t for i in range(self.n_layers) for t in cache.rnn_state[i]))

    def initial_states(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        return tuple(torch.zeros(batch, *s) for s in self.shapes)


def xlstm_step(model: torch.nn.Module) -> XLSTMStep:
    """`xLSTMForCausalLM` (y = logits) or `xLSTMModel` (y = last hidden state) -> XLSTMStep.
    Refuses other models and non-float32 weights (call `model.float()` first)."""
    try:
        import transformers as tf
    except ImportError as e:
        raise MissingDependencyError(
            "the xLSTM adapter needs transformers: pip install 'rnnedge[export]'"
        ) from e
    if not isinstance(model, tf.xLSTMForCausalLM | tf.xLSTMModel):
        raise ExportError(
            f"xlstm_step takes a transformers xLSTMForCausalLM or xLSTMModel, "
            f"got {type(model).__name__}"
        )
    if {p.dtype for p in model.parameters()} != {torch.float32}:
        raise ExportError("xlstm_step needs float32 weights: call model.float()")
    return XLSTMStep(model.eval()).eval()

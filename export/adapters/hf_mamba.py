"""Hugging Face transformers Mamba (`MambaForCausalLM`, `MambaModel`, and Mamba-2's
`Mamba2ForCausalLM`, `Mamba2Model`) as a step model.

One step is the library's own single-token decode: a transformers `DynamicCache` is filled
with the incoming states through its public `update_conv_state`/`update_recurrent_state`,
the model runs one token with it (the mixer's `causal_conv1d_update` shift register and
`selective_state_update` recurrence, i.e. the torch reference path), and the states are read
back from the cache. So the numbers are the library's: the test compares the stream with the
user's own loop `model(ids[:, t:t+1], cache=out.cache, use_cache=True)` token by token.

Per layer two states, named as in the cache: `layers.{i}.conv_state` (batch, channels, d_conv),
the last d_conv inputs of the depthwise conv (a shift register; channels = d_inner for
Mamba-1, d_inner + 2 groups N for Mamba-2), and `layers.{i}.ssm_state`, the selective-scan
state ((batch, d_inner, N) for Mamba-1, (batch, heads, head_dim, N) for Mamba-2). Both start at
zeros, as in the library; their shapes are read from the library's own cache after one token.
"""

from __future__ import annotations

import torch

from rnnedge.errors import ExportError, MissingDependencyError
from rnnedge.export.adapters.base import StepModel


class MambaStep(StepModel):
    """One token of a transformers Mamba(-2) model, its conv and ssm states explicit."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.n_layers = int(model.config.num_hidden_layers)
        self.shapes = _cache_shapes(model, self.n_layers)
        self.state_names = tuple(
            f"layers.{i}.{kind}"
            for i in range(self.n_layers)
            for kind in ("conv_state", "ssm_state")
        )
        self.name_parameters()

    def step(self, ids: torch.Tensor, states: tuple[torch.Tensor, ...]) -> tuple:
        from transformers.cache_utils import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for i in range(self.n_layers):  # copies: the library updates its cache in place
            cache.update_conv_state(states[2 * i], i)
            cache.update_recurrent_state(states[2 * i + 1], i)
        out = self.model(input_ids=ids, cache=cache, use_cache=True)
        y = out.logits if hasattr(out, "logits") else out.last_hidden_state
        new = []
        for i in range(self.n_layers):
            new += [cache.get_conv_state(i), cache.get_recurrent_state(i)]
        return (y, *new)

    def initial_states(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        return tuple(torch.zeros(batch, *s) for s in self.shapes)


def _cache_shapes(model: torch.nn.Module, n_layers: int) -> list[tuple[int, ...]]:
    """Per layer the conv and ssm state shapes (without batch), as the library's own cache
    allocates them on a first token."""
    with torch.no_grad():
        cache = model(torch.zeros(1, 1, dtype=torch.int64), use_cache=True).cache
    shapes = []
    for i in range(n_layers):
        shapes += [tuple(cache.get_conv_state(i).shape[1:])]
        shapes += [tuple(cache.get_recurrent_state(i).shape[1:])]
    return shapes


def mamba_step(model: torch.nn.Module) -> MambaStep:
    """`MambaForCausalLM` / `Mamba2ForCausalLM` (y = logits) or `MambaModel` / `Mamba2Model`
    (y = last hidden state) -> MambaStep. Refuses other models and non-float32 weights (call
    `model.float()` first)."""
    try:
        import transformers as tf
    except ImportError as e:
        raise MissingDependencyError(
            "the Mamba adapter needs transformers: pip install 'rnnedge[export]'"
        ) from e
    kinds = (tf.MambaForCausalLM, tf.MambaModel, tf.Mamba2ForCausalLM, tf.Mamba2Model)
    if not isinstance(model, kinds):
        raise ExportError(
            f"mamba_step takes a transformers MambaForCausalLM or MambaModel (or Mamba2's), "
            f"got {type(model).__name__}"
        )
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        names = ", ".join(sorted(str(d).removeprefix("torch.") for d in dtypes))
        raise ExportError(f"mamba_step needs float32 weights, got {names}: call model.float()")
    return MambaStep(model.eval()).eval()

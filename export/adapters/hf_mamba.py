"""Hugging Face transformers Mamba-1 (`MambaForCausalLM`, `MambaModel`) as a step model.

One step is the library's own single-token decode: a transformers `DynamicCache` is filled
with the incoming states through its public `update_conv_state`/`update_recurrent_state`,
the model runs one token with it (the mixer's `causal_conv1d_update` shift register and
`selective_state_update` recurrence, i.e. the torch reference path), and the states are read
back from the cache. So the numbers are the library's: the test compares the stream with the
user's own loop `model(ids[:, t:t+1], cache=out.cache, use_cache=True)` token by token.

Per layer two states, named as in the cache: `layers.{i}.conv_state` (batch, d_inner, d_conv),
the last d_conv inputs of the depthwise conv (a shift register), and `layers.{i}.ssm_state`
(batch, d_inner, N), the selective-scan state. Both start at zeros, as in the library.
"""

from __future__ import annotations

import inspect

import torch

from rnnedge.errors import ExportError, MissingDependencyError


class StepModel(torch.nn.Module):
    """The adapter contract (forward(ids, *states) -> (y, *states), `state_names`,
    `initial_states(batch)`, `example(batch)`); the state inputs of the exported graph are
    named after `state_names` (dots as underscores) through forward's signature."""

    state_names: tuple[str, ...] = ()

    def forward(self, ids: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(states) != len(self.state_names):
            raise ExportError(
                f"{type(self).__name__} takes {len(self.state_names)} states "
                f"({', '.join(self.state_names[:4])}, ...), got {len(states)}"
            )
        return self.step(ids, states)

    def step(self, ids: torch.Tensor, states: tuple[torch.Tensor, ...]) -> tuple:
        raise NotImplementedError

    def initial_states(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def example(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """One step of input: token ids (batch, 1) int64, then the initial states."""
        return (torch.zeros(batch, 1, dtype=torch.int64), *self.initial_states(batch))

    def name_parameters(self) -> None:
        """A forward whose parameters are `ids` and one per state (torch.export names the
        graph inputs after them); a one-off subclass, since the count depends on the model."""
        base = type(self)

        def forward(self, ids, *states):
            return base.forward(self, ids, *states)

        p = inspect.Parameter
        names = ["self", "ids", *(n.replace(".", "_") for n in self.state_names)]
        forward.__signature__ = inspect.Signature([p(n, p.POSITIONAL_OR_KEYWORD) for n in names])
        self.__class__ = type(base.__name__, (base,), {"forward": forward})


class MambaStep(StepModel):
    """One token of a transformers Mamba-1 model, its conv and ssm states explicit."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        cfg = model.config
        self.n_layers = int(cfg.num_hidden_layers)
        self.conv_shape = (int(cfg.intermediate_size), int(cfg.conv_kernel))
        self.ssm_shape = (int(cfg.intermediate_size), int(cfg.state_size))
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
        shapes = [self.conv_shape, self.ssm_shape] * self.n_layers
        return tuple(torch.zeros(batch, *s) for s in shapes)


def mamba_step(model: torch.nn.Module) -> MambaStep:
    """`MambaForCausalLM` (y = logits) or `MambaModel` (y = last hidden state) -> MambaStep.
    Refuses other models and non-float32 weights (call `model.float()` first)."""
    try:
        from transformers import MambaForCausalLM, MambaModel
    except ImportError as e:
        raise MissingDependencyError(
            "the Mamba adapter needs transformers: pip install 'rnnedge[export]'"
        ) from e
    if not isinstance(model, MambaForCausalLM | MambaModel):
        raise ExportError(
            f"mamba_step takes a transformers MambaForCausalLM or MambaModel, "
            f"got {type(model).__name__}"
        )
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        names = ", ".join(sorted(str(d).removeprefix("torch.") for d in dtypes))
        raise ExportError(f"mamba_step needs float32 weights, got {names}: call model.float()")
    return MambaStep(model).eval()

"""The token models `make bench-tokens` measures: one entry per architecture, each a random-
weight library model, its step adapter, and the library's own one-token eager step with its
cache carried (the PyTorch peer). Adding an architecture is adding an entry to MODELS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True, kw_only=True)
class TokenModel:
    name: str
    build: Callable[[int, int, int], torch.nn.Module]  # (layers, hidden, vocab), seeded
    adapter: Callable[[torch.nn.Module], torch.nn.Module]  # -> a model that takes its state
    eager: Callable[[torch.nn.Module], Callable[[], object]]  # the library's own token step


def _mamba(layers: int, hidden: int, vocab: int) -> torch.nn.Module:
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(0)
    cfg = MambaConfig(
        vocab_size=vocab, hidden_size=hidden, state_size=16, num_hidden_layers=layers, expand=2
    )
    return MambaForCausalLM(cfg).eval()


def _mamba_adapter(model: torch.nn.Module) -> torch.nn.Module:
    from rnnedge.export.adapters.hf_mamba import mamba_step

    return mamba_step(model)


def cached_decode(model: torch.nn.Module) -> Callable[[], object]:
    """transformers' own decode step: one token, the cache from the previous call carried
    (`model(ids, cache=cache, use_cache=True)`), as `generate` runs it."""
    ids = torch.zeros(1, 1, dtype=torch.int64)
    with torch.no_grad():
        cache = [model(ids, use_cache=True).cache]

    def call() -> None:
        with torch.no_grad():
            cache[0] = model(ids, cache=cache[0], use_cache=True).cache

    return call


def _rwkv(layers: int, hidden: int, vocab: int) -> torch.nn.Module:
    from transformers import RwkvConfig, RwkvForCausalLM

    torch.manual_seed(0)
    cfg = RwkvConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
        intermediate_size=4 * hidden, context_length=1024,
    )  # fmt: skip
    return RwkvForCausalLM(cfg).eval()


def _rwkv_adapter(model: torch.nn.Module) -> torch.nn.Module:
    from rnnedge.export.adapters import adapt

    return adapt("hf-rwkv", model)


def rwkv_decode(model: torch.nn.Module) -> Callable[[], object]:
    """transformers RWKV's own decode step: one token, `state` from the previous call."""
    ids = torch.zeros(1, 1, dtype=torch.int64)
    with torch.no_grad():
        state = [model(ids, use_cache=True).state]

    def call() -> None:
        with torch.no_grad():
            state[0] = model(ids, state=state[0], use_cache=True).state

    return call


MODELS: dict[str, TokenModel] = {
    "mamba-1": TokenModel(
        name="mamba-1", build=_mamba, adapter=_mamba_adapter, eager=cached_decode
    ),
    "rwkv-4": TokenModel(name="rwkv-4", build=_rwkv, adapter=_rwkv_adapter, eager=rwkv_decode),
}

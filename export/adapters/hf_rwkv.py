"""Hugging Face transformers RWKV-4 (RwkvForCausalLM, RwkvModel) -> a StepModel.

The step runs the library's own blocks (`RwkvBlock.forward` with `state=`, which calls its
attention, its `rwkv_linear_attention_cpu` recurrence and its feed-forward), so the numbers
are the library's. Only the model-level loop of `RwkvModel.forward` is repeated here
(embedding, blocks, the halving every `rescale_every` blocks, ln_out, head), because that
forward keeps all layers' states in five (batch, hidden, layers) tensors that each block
updates in place; in-place writes into a stacked tensor would trace as scatters.

Instead each block gets five `_LayerSlot`s holding just its layer's (batch, hidden) tensors:
the block reads `state[k][:, :, layer_id]` and writes it back, and a slot answers exactly
that index (anything else is refused: a library change that indexes differently must not
export silently wrong).

The token-shift slots (att_x, ffn_x) hand their (batch, hidden) value out as (batch, 1,
hidden). transformers' one-token path mixes `hidden` (batch, 1, hidden) with the stored
(batch, hidden) shift state, which broadcasts to (batch, batch, hidden) when batch > 1 (in
transformers 5.25, `model(ids[:, -1:], state=..., use_cache=True)` returns (2, 2, vocab)
logits for 2 sequences); at batch 1 both shapes give the same numbers, and (batch, 1, hidden)
keeps streams(n) independent.

States per layer i, in this order: layers.i.att_x (the last LN1 output, the token shift),
layers.i.att_num, layers.i.att_den, layers.i.att_max (the wkv numerator, denominator and
their running max exponent; the library starts max at -1e30), layers.i.ffn_x (the last LN2
output). The transformers state index of each is HF_INDEX.
"""

from __future__ import annotations

import torch

from rnnedge.errors import ExportError
from rnnedge.export.adapters.base import StepModel

KINDS = ("att_x", "att_num", "att_den", "att_max", "ffn_x")
HF_INDEX = {"ffn_x": 0, "att_x": 1, "att_num": 2, "att_den": 3, "att_max": 4}
TOKEN_SHIFT = ("att_x", "ffn_x")
MAX_INIT = -1e30  # RwkvModel.forward: state[4] -= 1e30 (exp(-1e30 - q) is exactly 0)


class _LayerSlot:
    """One layer's slice of a transformers RWKV state tensor, as the block indexes it."""

    def __init__(self, value: torch.Tensor, layer: int, token_shift: bool) -> None:
        self.value, self.layer, self.token_shift = value, layer, token_shift

    def _check(self, key: object) -> None:
        ok = isinstance(key, tuple) and len(key) == 3 and key[2] == self.layer
        if not ok or key[:2] != (slice(None), slice(None)):
            raise ExportError(
                f"the transformers RWKV block indexed its state as {key!r}, not "
                f"[:, :, {self.layer}]: this transformers version is not supported by hf-rwkv"
            )

    def __getitem__(self, key: object) -> torch.Tensor:
        self._check(key)
        return self.value.unsqueeze(1) if self.token_shift else self.value

    def __setitem__(self, key: object, value: torch.Tensor) -> None:
        self._check(key)
        self.value = value


class RwkvStep(StepModel):
    """One token of a transformers RWKV-4 model: (ids (B, 1), *states) -> (logits, *states);
    for an RwkvModel (no head) the first output is the last hidden state after ln_out."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rwkv = getattr(model, "rwkv", model)  # RwkvForCausalLM wraps an RwkvModel
        self.head = getattr(model, "head", None)
        cfg = self.rwkv.config
        self.layers, self.hidden = cfg.num_hidden_layers, cfg.hidden_size
        self.state_names = tuple(f"layers.{i}.{k}" for i in range(self.layers) for k in KINDS)
        self.name_parameters()

    def step(self, ids: torch.Tensor, states: tuple[torch.Tensor, ...]) -> tuple:
        rwkv, cfg = self.rwkv, self.rwkv.config
        hidden = rwkv.embeddings(ids)
        new: list[torch.Tensor] = []
        for i, block in enumerate(rwkv.blocks):
            mine = dict(zip(KINDS, states[len(KINDS) * i : len(KINDS) * (i + 1)]))
            slots = [None] * len(KINDS)
            for kind, value in mine.items():
                slots[HF_INDEX[kind]] = _LayerSlot(value, i, kind in TOKEN_SHIFT)
            hidden, slots, _ = block(hidden, state=slots, use_cache=True)
            new += [slots[HF_INDEX[k]].value for k in KINDS]
            # RwkvModel.forward: inference halves the hidden state every rescale_every blocks
            every = cfg.rescale_every if rwkv.layers_are_rescaled else 0
            if every > 0 and (i + 1) % every == 0:
                hidden = hidden / 2
        out = rwkv.ln_out(hidden)
        return (out if self.head is None else self.head(out), *new)

    def initial_states(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """The library's: zeros, and MAX_INIT for every att_max."""
        shape = (batch, self.hidden)
        return tuple(
            torch.full(shape, MAX_INIT if k == "att_max" else 0.0)
            for _ in range(self.layers)
            for k in KINDS
        )


def rwkv_step(model: torch.nn.Module) -> RwkvStep:
    """The StepModel of a transformers RwkvForCausalLM or RwkvModel, in eval mode with its
    layers rescaled for inference as the library's own eval forward does."""
    rwkv = getattr(model, "rwkv", model)
    if type(rwkv).__name__ != "RwkvModel" or not hasattr(rwkv, "blocks"):
        raise ExportError(
            f"adapter hf-rwkv takes a transformers RwkvForCausalLM or RwkvModel, got "
            f"{type(model).__name__}"
        )
    model.eval()
    if not rwkv.layers_are_rescaled:  # what RwkvModel.forward does on its first eval call
        rwkv._rescale_layers()
    return RwkvStep(model).eval()

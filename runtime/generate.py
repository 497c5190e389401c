"""Greedy text generation from a token-in / logits-out bundle, on the board (numpy and the
bundle's interpreter only; no torch, no tokenizer library).

Tokens: byte-level by default, token id = one UTF-8 byte (ids 0-255; the models of
docs/rwkv-mamba.md are trained so). A model with another vocabulary gives `vocab`: a JSON
list of strings, index = token id (`rnnedge generate --vocab vocab.json`), kept beside the
bundle; the prompt is then split greedily into the longest entries that match.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnedge.errors import InputError
from rnnedge.runtime.model import Model

BYTES = 256


def read_vocab(path: str | Path) -> list[str]:
    try:
        vocab = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"vocab {path}: cannot read a JSON list of strings: {e}") from e
    if not isinstance(vocab, list) or not all(isinstance(t, str) and t for t in vocab):
        raise InputError(f"vocab {path}: must be a JSON list of non-empty strings")
    return vocab


def encode(text: str, vocab: Sequence[str] | None = None) -> np.ndarray:
    """Token ids of `text`: its UTF-8 bytes, or the longest vocab entries, left to right."""
    if vocab is None:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
    index = {t: i for i, t in enumerate(vocab)}
    longest = max(map(len, vocab))
    ids, at = [], 0
    while at < len(text):
        for n in range(min(longest, len(text) - at), 0, -1):
            if text[at : at + n] in index:
                ids.append(index[text[at : at + n]])
                at += n
                break
        else:
            raise InputError(f"prompt character {text[at]!r} (at {at}) is not in the vocab")
    return np.asarray(ids, dtype=np.int64)


def decode(ids: Sequence[int], vocab: Sequence[str] | None = None) -> str:
    """The text of `ids`; an id with no token (a model whose vocabulary is wider than bytes,
    without `vocab`) is refused rather than printed as some other token."""
    size = BYTES if vocab is None else len(vocab)
    outside = [int(i) for i in ids if not 0 <= int(i) < size]
    if outside:
        what = "byte-level tokens (ids 0-255): give --vocab" if vocab is None else "the vocab"
        raise InputError(f"generate: token id {outside[0]} is outside {what}")
    if vocab is None:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")
    return "".join(vocab[int(i)] for i in ids)


def greedy(model: Model, prompt: np.ndarray, tokens: int) -> list[int]:
    """`tokens` new token ids, each the argmax of the logits after the prompt and the tokens
    before it, the state carried in one stream."""
    if len(prompt) == 0:
        raise InputError("generate: the prompt is empty (give at least one token)")
    if tokens < 0:
        raise InputError(f"generate: tokens must be >= 0, got {tokens}")
    spec = model.step_input
    if spec.dtype not in ("int32", "int64"):
        raise InputError(
            f"generate needs a bundle whose step input is token ids, not {spec.dtype} "
            f"{list(spec.shape)}"
        )
    shape, dtype = spec.shape, np.dtype(spec.dtype)
    stream = model.stream()
    logits = _logits(stream.run(np.asarray(prompt, dtype).reshape(-1, *shape))[-1])
    out: list[int] = []
    for _ in range(tokens):
        out.append(int(np.argmax(logits)))
        logits = _logits(stream.step(np.full(shape, out[-1], dtype)))
    return out


def _logits(y: object) -> np.ndarray:
    first = y[0] if isinstance(y, tuple) else y  # the logits are the first output
    return np.asarray(first).reshape(-1)

"""Tiny transformers Mamba-1 models for the adapter tests and the token benchmark: a random
one, a char-level corpus from a seeded grammar, and a short training on it."""

from __future__ import annotations

import numpy as np
import torch


def random_mamba(vocab: int = 64, hidden: int = 64, layers: int = 2, seed: int = 0):
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(seed)
    cfg = MambaConfig(
        vocab_size=vocab, hidden_size=hidden, state_size=8, num_hidden_layers=layers, expand=2
    )
    return MambaForCausalLM(cfg).eval()


def random_mamba2(vocab: int = 64, hidden: int = 64, layers: int = 2, seed: int = 0):
    from transformers import Mamba2Config, Mamba2ForCausalLM

    torch.manual_seed(seed)
    cfg = Mamba2Config(
        vocab_size=vocab, hidden_size=hidden, state_size=16, num_hidden_layers=layers,
        expand=2, head_dim=16, num_heads=2 * hidden // 16, n_groups=1, chunk_size=16,
    )  # fmt: skip
    return Mamba2ForCausalLM(cfg).eval()


def random_xlstm(vocab: int = 64, hidden: int = 64, layers: int = 2, seed: int = 0):
    from transformers import xLSTMConfig, xLSTMForCausalLM

    torch.manual_seed(seed)
    # qk_dim_factor 1: with the default 0.5, transformers 5.25's own cached decode refuses
    # its cache ("matC_old has wrong shape")
    cfg = xLSTMConfig(
        vocab_size=vocab, hidden_size=hidden, embedding_dim=hidden, num_heads=2,
        num_blocks=layers, num_hidden_layers=layers, mode="inference", qk_dim_factor=1.0,
        v_dim_factor=1.0,
    )  # fmt: skip
    return xLSTMForCausalLM(cfg).eval()


def library_logits(model, ids: np.ndarray) -> np.ndarray:
    """The library's own recurrent decode, as a user runs it: one token per call, its cache
    carried from call to call. ids: (T,) -> logits (T, vocab)."""
    rows, cache = [], None
    with torch.no_grad():
        for t in ids:
            out = model(torch.tensor([[int(t)]]), cache=cache, use_cache=True)
            rows.append(out.logits[0, -1].numpy())
            cache = out.cache
    return np.stack(rows)


SUBJECTS = ("the cat", "a dog", "my friend", "the old man", "a small bird", "the teacher")
VERBS = ("sees", "likes", "finds", "follows", "draws", "remembers")
OBJECTS = ("the red ball", "a green tree", "the river", "an open door", "a blue kite")
TAILS = ("today", "again", "at night", "in the rain", "with joy", "slowly")


def corpus(sentences: int, seed: int) -> str:
    """Sentences from a small seeded grammar: a text a tiny char-level model can learn in
    seconds, with held-out text from another seed."""
    rng = np.random.default_rng(seed)
    parts = (SUBJECTS, VERBS, OBJECTS, TAILS)
    return "".join(" ".join(str(rng.choice(p)) for p in parts) + ". " for _ in range(sentences))


def train_char_mamba(text: str, chars: str, steps: int = 80, seed: int = 0):
    """A 2-layer, hidden-64 char-level MambaForCausalLM trained on `text` (AdamW, windows of
    64 characters); measured ~50 s on one shared core for 80 steps, loss 5.2 -> 0.28."""
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(seed)
    vocab = len(chars)
    cfg = MambaConfig(vocab_size=vocab, hidden_size=64, state_size=8, num_hidden_layers=2)
    model = MambaForCausalLM(cfg)
    ids = encode(text, chars)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        starts = rng.integers(0, len(ids) - 65, 16)
        batch = torch.from_numpy(np.stack([ids[s : s + 65] for s in starts]))
        logits = model(batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), batch[:, 1:].ravel())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def encode(text: str, chars: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(chars)}
    return np.array([index[c] for c in text], dtype=np.int64)


def perplexity(logits: np.ndarray, ids: np.ndarray) -> float:
    """exp of the mean next-token NLL: logits[t] predicts ids[t + 1]."""
    z = logits[:-1].astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(np.exp(-logp[np.arange(len(ids) - 1), ids[1:]].mean()))

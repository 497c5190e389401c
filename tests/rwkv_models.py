"""Tiny RWKV-4 models for the adapter tests: transformers configs, a generated text to train
a byte-level one on, and a user-written step block in the style of the reference equations
(../shared/notes/rwkv-mamba.md section 1), which exports with no adapter at all."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

VOCAB = 256  # byte-level: token id = UTF-8 byte, the vocabulary `rnnedge generate` reads


def tiny_rwkv(seed: int = 0, hidden: int = 64, layers: int = 2, vocab: int = 64):
    from transformers import RwkvConfig, RwkvForCausalLM

    torch.manual_seed(seed)
    cfg = RwkvConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        intermediate_size=4 * hidden,
        context_length=1024,
    )
    return RwkvForCausalLM(cfg).eval()


WORDS = {
    "who": ["the cat", "a dog", "my friend", "the old man", "a small bird", "the teacher"],
    "did": ["sees", "likes", "finds", "follows", "calls", "watches"],
    "what": ["the red ball", "a green tree", "the river", "a quiet house", "the moon"],
    "how": ["today", "again", "slowly", "at night", "every day", "in the rain"],
}


def make_text(chars: int, seed: int) -> str:
    """Sentences from a tiny grammar: structure a 2-layer char model learns in a minute."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while sum(map(len, out)) < chars:
        words = [WORDS[k][rng.integers(len(WORDS[k]))] for k in ("who", "did", "what", "how")]
        out.append(" ".join(words) + ". ")
    return "".join(out)[:chars]


def encode(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int64)


def train_char_rwkv(steps: int = 150, seed: int = 0, hidden: int = 64):
    """A byte-level RwkvForCausalLM trained on make_text, returned in eval mode. Training runs
    parallel_logits (the same function as the library's forward, about 20x faster on CPU
    than its per-token loop); the tests then export and check the library's own step."""
    model = tiny_rwkv(seed, hidden=hidden, vocab=VOCAB)
    data = torch.from_numpy(encode(make_text(60_000, seed)))
    opt = torch.optim.Adam(model.parameters(), lr=4e-3)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        starts = rng.integers(0, len(data) - 65, 16)
        batch = torch.stack([data[s : s + 65] for s in starts])
        logits = parallel_logits(model, batch[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _shift(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.pad(x, (0, 0, 1, -1))  # x at t-1, zeros at t = 0


def _wkv(att, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """RWKV-4's wkv for every t at once: a softmax over i <= t of (t-1-i)*w + k_i (i < t) and
    u + k_t (i = t), applied to v; the same as the library's running num/den/max."""
    t = k.shape[1]
    w, u = -torch.exp(att.time_decay), att.time_first
    pos = torch.arange(t)
    lag = (pos[:, None] - 1 - pos[None, :]).float()  # (t, i)
    e = lag[None, :, :, None] * w + k[:, None, :, :]  # (B, t, i, C)
    e = torch.where((pos[:, None] == pos[None, :])[None, :, :, None], u + k[:, None], e)
    e = e.masked_fill((pos[None, :] > pos[:, None])[None, :, :, None], float("-inf"))
    return (torch.softmax(e, dim=2) * v[:, None]).sum(2)


def parallel_logits(model, ids: torch.Tensor) -> torch.Tensor:
    """RwkvForCausalLM's logits over a whole (B, T) sequence from a zero state, in parallel."""
    rwkv = model.rwkv
    x = rwkv.embeddings(ids)
    for block in rwkv.blocks:
        if block.layer_id == 0:
            x = block.pre_ln(x)
        att, ffn = block.attention, block.feed_forward
        h = block.ln1(x)
        s = _shift(h)
        k = att.key(h * att.time_mix_key + s * (1 - att.time_mix_key))
        v = att.value(h * att.time_mix_value + s * (1 - att.time_mix_value))
        r = torch.sigmoid(
            att.receptance(h * att.time_mix_receptance + s * (1 - att.time_mix_receptance))
        )
        x = x + att.output(r * _wkv(att, k, v))
        h = block.ln2(x)
        s = _shift(h)
        fk = torch.square(torch.relu(ffn.key(h * ffn.time_mix_key + s * (1 - ffn.time_mix_key))))
        fr = torch.sigmoid(
            ffn.receptance(h * ffn.time_mix_receptance + s * (1 - ffn.time_mix_receptance))
        )
        x = x + fr * ffn.value(fk)
    return model.head(rwkv.ln_out(x))


class UserRwkv4(nn.Module):
    """An RWKV-4 language model written as its step, as users write it from the equations:
    forward(ids, att_x, aa, bb, pp, ffn_x) -> (logits, att_x, aa, bb, pp, ffn_x), one layer."""

    def __init__(self, vocab: int = 32, c: int = 32) -> None:
        super().__init__()
        self.emb, self.ln0 = nn.Embedding(vocab, c), nn.LayerNorm(c)
        self.ln1, self.ln2, self.ln_out = nn.LayerNorm(c), nn.LayerNorm(c), nn.LayerNorm(c)
        self.mix = nn.Parameter(torch.rand(5, c))  # mu_k, mu_v, mu_r, ffn mu_k, ffn mu_r
        self.decay, self.first = nn.Parameter(torch.randn(c)), nn.Parameter(torch.randn(c))
        self.k, self.v, self.r, self.o = (nn.Linear(c, c, bias=False) for _ in range(4))
        self.fk, self.fv = nn.Linear(c, 4 * c, bias=False), nn.Linear(4 * c, c, bias=False)
        self.fr, self.head = nn.Linear(c, c, bias=False), nn.Linear(c, vocab, bias=False)

    def forward(self, ids, att_x, aa, bb, pp, ffn_x):
        x = self.ln0(self.emb(ids))[:, 0]
        xx = self.ln1(x)
        m = self.mix
        k = self.k(xx * m[0] + att_x * (1 - m[0]))
        v = self.v(xx * m[1] + att_x * (1 - m[1]))
        r = torch.sigmoid(self.r(xx * m[2] + att_x * (1 - m[2])))
        w, u = -torch.exp(self.decay), self.first
        q = torch.maximum(pp, u + k)
        e1, e2 = torch.exp(pp - q), torch.exp(u + k - q)
        wkv = (e1 * aa + e2 * v) / (e1 * bb + e2)
        q2 = torch.maximum(pp + w, k)
        e1, e2 = torch.exp(pp + w - q2), torch.exp(k - q2)
        aa, bb, pp = e1 * aa + e2 * v, e1 * bb + e2, q2
        x = x + self.o(r * wkv)
        yy = self.ln2(x)
        fk = torch.relu(self.fk(yy * m[3] + ffn_x * (1 - m[3]))) ** 2
        x = x + torch.sigmoid(self.fr(yy * m[4] + ffn_x * (1 - m[4]))) * self.fv(fk)
        return self.head(self.ln_out(x)), xx, aa, bb, pp, yy

    def initial_states(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        c = self.ln1.normalized_shape[0]
        z = torch.zeros(batch, c)
        return (z, z.clone(), z.clone(), torch.full((batch, c), -1e30), z.clone())

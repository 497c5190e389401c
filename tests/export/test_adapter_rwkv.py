"""hf-rwkv: a transformers RWKV-4 model exported through its own blocks streams like the
library's own recurrent forward on every backend; a user-written RWKV step block exports
without an adapter; the adapter and the indexed-write lowering refuse what they cannot do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rwkv_models import UserRwkv4, tiny_rwkv

import rnnedge
from rnnedge.cli import main
from rnnedge.cli_parser import adapter_names
from rnnedge.errors import ExportError, UnsupportedModelError
from rnnedge.export.adapters import ADAPTERS, adapt
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime import available_backends

pytest.importorskip("transformers")

TOKENS = 220
REL = 1e-4  # float parity, relative to the logits' magnitude


@pytest.fixture(scope="module")
def hf_bundle(tmp_path_factory):
    """Exported the user's way: save_pretrained, then `rnnedge export --adapter hf-rwkv`."""
    model = tiny_rwkv(seed=0, hidden=64, layers=2, vocab=64)
    root = tmp_path_factory.mktemp("rwkv")
    model.save_pretrained(root / "hf")
    path = root / "r.rnnedge"
    assert main(["export", "--adapter", "hf-rwkv", str(root / "hf"), "-o", str(path), "-q"]) == 0
    return path, model


def library_logits(model, ids: np.ndarray) -> np.ndarray:
    """The library's own recurrent forward over the whole sequence, its state carried."""
    with torch.no_grad():
        return model(torch.from_numpy(ids)[None], use_cache=True).logits[0].numpy()


def assert_parity(got: np.ndarray, ref: np.ndarray, what: str) -> None:
    rel = float(np.abs(got - ref).max() / np.abs(ref).max())
    assert rel <= REL, f"{what}: relative error {rel:.2e} > {REL:g}"
    assert (got.argmax(-1) == ref.argmax(-1)).all(), f"{what}: argmax differs"


def test_hf_rwkv_streams_like_the_library_on_every_backend(hf_bundle):
    path, model = hf_bundle
    ids = np.random.default_rng(5).integers(0, 64, TOKENS)
    ref = library_logits(model, ids)
    assert np.ptp(ref.argmax(-1)) > 0  # the argmax really moves
    for backend in available_backends():
        stream = rnnedge.load(path, backend=backend, precision="float").stream()
        got = np.asarray(stream.run(ids.reshape(-1, 1, 1))).reshape(TOKENS, -1)
        assert_parity(got, ref, f"hf-rwkv {backend}")


def test_hf_rwkv_streams_n_are_independent(hf_bundle):
    path, model = hf_bundle
    seqs = np.random.default_rng(6).integers(0, 64, (3, TOKENS))
    refs = [library_logits(model, s) for s in seqs]
    for backend in available_backends():
        many = rnnedge.load(path, backend=backend, precision="float").streams(3)
        got = np.stack([np.asarray(many.step(seqs[:, t].reshape(3, 1))) for t in range(TOKENS)])
        got = got.reshape(TOKENS, 3, -1)
        for i, ref in enumerate(refs):
            assert_parity(got[:, i], ref, f"hf-rwkv streams(3) {backend} stream {i}")


def test_state_names_and_initial_max_are_the_libraries(hf_bundle):
    path, model = hf_bundle
    step = ADAPTERS["hf-rwkv"](model)
    assert step.state_names[:5] == tuple(
        f"layers.0.{k}" for k in ("att_x", "att_num", "att_den", "att_max", "ffn_x")
    )
    manifest = rnnedge.load(path, backend="numpy").bundle.manifest
    assert [s.input for s in manifest.states][3] == "layers_0_att_max"
    assert (step.initial_states()[3] == np.float32(-1e30)).all()  # RwkvModel.forward: -= 1e30


def test_user_written_rwkv_step_exports_without_an_adapter(tmp_path):
    torch.manual_seed(1)
    model = UserRwkv4().eval()
    example = (torch.zeros(1, 1, dtype=torch.int64), *model.initial_states())
    path = export_bundle(model, example, tmp_path / "u.rnnedge")
    ids = np.random.default_rng(2).integers(0, 32, TOKENS)
    with torch.no_grad():  # the block stepped with its own state fed back
        states, ref = list(example[1:]), []
        for i in ids:
            y, *states = model(torch.tensor([[i]]), *states)
            ref.append(y.numpy()[0])
    ref = np.stack(ref)
    for backend in available_backends():
        got = np.asarray(rnnedge.load(path, backend=backend).stream().run(ids.reshape(-1, 1, 1)))
        assert_parity(got.reshape(TOKENS, -1), ref, f"user RWKV-4 block {backend}")


def test_adapter_refuses_other_models():
    with pytest.raises(ExportError, match="RwkvForCausalLM or RwkvModel"):
        adapt("hf-rwkv", torch.nn.GRU(4, 4))
    with pytest.raises(ExportError, match="unknown adapter 'rwkv9'"):
        adapt("rwkv9", torch.nn.GRU(4, 4))


class _PartialWrite(torch.nn.Module):
    def forward(self, x, h):  # writes one row of three: the rest keeps computed values
        out = h * 2
        out[:, 1] = x
        return out.sum(1), h + out


def test_a_partial_write_into_a_computed_tensor_is_refused():
    from rnnedge.export.capture.program import capture

    with pytest.raises(UnsupportedModelError, match="write into part of a computed tensor"):
        capture(_PartialWrite(), (torch.ones(1, 4), torch.zeros(1, 3, 4)))


def test_generate_is_the_libraries_greedy_loop(hf_bundle, capsys):
    path, model = hf_bundle
    prompt = "0123"  # byte-level ids 48-51, inside this model's 64-token vocabulary
    ids = list(prompt.encode())
    with torch.no_grad():  # the library: whole sequence, then one token at a time, state carried
        out = model(torch.tensor([ids]), use_cache=True)
        new = []
        for _ in range(30):
            new.append(int(out.logits[0, -1].argmax()))
            out = model(torch.tensor([[new[-1]]]), state=out.state, use_cache=True)
    for backend in available_backends():
        args = ["generate", str(path), "--prompt", prompt, "--tokens", "30", "--backend", backend]
        assert main(args) == 0
        text = capsys.readouterr().out.rstrip("\n")
        want = prompt + bytes(new).decode("utf-8", errors="replace")
        assert text == want.rstrip("\n"), backend


def test_the_cli_offers_every_registered_adapter():
    assert adapter_names() == list(ADAPTERS)

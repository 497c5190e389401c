"""boards/: statistics on synthetic timings, board profiles and their loader, board detection
from sample /proc contents, and the cost model's MAC counts against hand counts."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from models import build
from torch import nn

from rnnedge.boards.bench.latency import LatencyStats, time_calls, warm_up
from rnnedge.boards.cost import board_floor, graph_cost, step_bytes
from rnnedge.boards.profiles import (
    FIGURES,
    PROFILE_DIR,
    all_profiles,
    detect_board,
    get_profile,
    load_profile_file,
)
from rnnedge.errors import ProfileError
from rnnedge.export.capture.program import capture

# --- statistics ---------------------------------------------------------------------------


def test_percentiles_of_1_to_100_us():
    us = np.arange(1, 101, dtype=np.float64)
    ns = np.random.default_rng(0).permutation(us * 1000).astype(np.int64)
    s = LatencyStats.of(ns)
    # linear interpolation between ranks: q (n - 1) = i + f -> s[i] + f (s[i+1] - s[i]),
    # and s[i] = i + 1 here
    assert s.p50 == pytest.approx(50.5)  # 0.5 * 99 = 49.5 -> 50 + 0.5
    assert s.p90 == pytest.approx(90.1)  # 0.9 * 99 = 89.1 -> 90 + 0.1
    assert s.p99 == pytest.approx(99.01)  # 0.99 * 99 = 98.01 -> 99 + 0.01
    assert s.p999 == pytest.approx(99.901)  # 0.999 * 99 = 98.901 -> 99 + 0.901
    assert s.mean == pytest.approx(50.5)
    assert s.std == pytest.approx(math.sqrt((100**2 - 1) / 12))  # population std of 1..n
    assert (s.min, s.max, s.steps) == (1.0, 100.0, 100)


def test_percentiles_of_four_samples_and_what_is_reported():
    s = LatencyStats.of(np.array([40_000, 10_000, 30_000, 20_000]))
    assert s.p50 == pytest.approx(25.0)  # 1.5 -> 20 + 0.5 * 10
    assert s.p90 == pytest.approx(37.0)  # 2.7 -> 30 + 0.7 * 10
    assert s.std == pytest.approx(math.sqrt(125.0))  # deviations 15, 5, 5, 15
    reported = s.reported()
    assert reported["p50"] == pytest.approx(25.0)
    # 4 samples say nothing about the 90th, 99th or 99.9th percentile
    assert reported["p90"] is None and reported["p99"] is None and reported["p999"] is None


def test_p999_needs_a_thousand_samples():
    assert LatencyStats.of(np.ones(999, np.int64)).reported()["p999"] is None
    assert LatencyStats.of(np.ones(1000, np.int64)).reported()["p999"] == pytest.approx(0.001)


def test_loops_run_at_least_the_asked_steps():
    calls = []
    assert warm_up(lambda: calls.append(1), 7, 0.0) == 7
    t = time_calls(lambda: calls.append(1), steps=13, seconds=0.0)
    assert len(t) == 13 and len(calls) == 20 and (t >= 0).all()
    assert len(time_calls(lambda: None, steps=3, seconds=0.0, hop_s=1e-4)) == 3


# --- profiles -----------------------------------------------------------------------------

BOARDS = ("zero2w", "pi3bplus", "pi4b", "pi5", "host")


def test_every_profile_validates_and_every_figure_has_a_source():
    profiles = all_profiles()
    assert set(profiles) == set(BOARDS)
    for p in profiles.values():
        assert set(p.figures) == set(FIGURES)
        assert all(f.source.strip() for f in p.figures.values())
        assert p.value("clock_ghz") > 0 and p.value("cores") >= 1


def test_no_pi_figure_claims_to_be_measured():
    # the board page says so; this keeps the files honest until someone measures a board
    for name in ("zero2w", "pi3bplus", "pi4b", "pi5"):
        kinds = {f.kind for f in get_profile(name).figures.values()}
        assert "measured" not in kinds, name


def test_aliases_find_profiles():
    assert get_profile("pi4").name == "pi4b"
    assert get_profile("PI3").name == "pi3bplus"
    with pytest.raises(ProfileError, match="unknown board 'pi9'"):
        get_profile("pi9")


def _bad_profile(tmp_path, mutate) -> str:
    doc = json.loads((PROFILE_DIR / "pi4b.json").read_text())
    mutate(doc)
    (tmp_path / "pi4b.json").write_text(json.dumps(doc))
    with pytest.raises(ProfileError) as e:
        load_profile_file(tmp_path / "pi4b.json")
    return str(e.value)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d["figures"].pop("clock_ghz"), "'figures.clock_ghz'"),
        (lambda d: d["figures"]["l2_kib"].update(value="1 MB"), "'figures.l2_kib.value'"),
        (lambda d: d["figures"]["cores"].update(value=0), "'figures.cores.value'"),
        (lambda d: d["figures"]["dram_bandwidth_gbs"].pop("source"), "dram_bandwidth_gbs.source"),
        (lambda d: d["figures"]["clock_ghz"].update(kind="guess"), "'figures.clock_ghz.kind'"),
        (lambda d: d["figures"].update(bogus={}), "'figures.bogus'"),
        (lambda d: d.update(recommended_backend="tvm"), "'recommended_backend'"),
        (lambda d: d.pop("soc"), "'soc'"),
        (lambda d: d["detect"].update(revision_types=["0x11"]), "'detect.revision_types'"),
        (lambda d: d.update(name="pi4"), "'name'"),
    ],
)
def test_a_bad_profile_names_the_field(tmp_path, mutate, field):
    msg = _bad_profile(tmp_path, mutate)
    assert field in msg and "pi4b.json" in msg


def test_a_profile_that_is_not_json_says_so(tmp_path):
    (tmp_path / "pi5.json").write_text("{ clock: 2.4 ")
    with pytest.raises(ProfileError, match=r"pi5\.json: not valid JSON"):
        load_profile_file(tmp_path / "pi5.json")


def test_a_bad_file_in_the_profile_directory_fails_loudly(tmp_path):
    shutil.copy(PROFILE_DIR / "pi5.json", tmp_path / "pi5.json")
    (tmp_path / "zero2w.json").write_text('{"name": "zero2w"}')
    with pytest.raises(ProfileError, match=r"zero2w\.json: field 'detect'"):
        all_profiles(tmp_path)


# --- detection ----------------------------------------------------------------------------

CPUINFO_ARM = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08

Revision\t: {rev}
Serial\t\t: 10000000a1b2c3d4
Model\t\t: {model}
"""
CPUINFO_X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9654 96-Core Processor
cpu MHz\t\t: 2596.150
"""
PI_SAMPLES = {
    "pi4b": ("Raspberry Pi 4 Model B Rev 1.4", "c03114"),
    "pi5": ("Raspberry Pi 5 Model B Rev 1.0", "d04170"),
    "zero2w": ("Raspberry Pi Zero 2 W Rev 1.0", "902120"),
    "pi3bplus": ("Raspberry Pi 3 Model B Plus Rev 1.3", "a020d3"),
}


@pytest.mark.parametrize("board", PI_SAMPLES)
def test_detects_pis_from_the_device_tree(board):
    model, rev = PI_SAMPLES[board]
    cpuinfo = CPUINFO_ARM.format(rev=rev, model=model)
    name, why = detect_board(model + "\x00", cpuinfo)  # the file ends in a NUL byte
    assert name == board and model in why


@pytest.mark.parametrize("board", PI_SAMPLES)
def test_detects_pis_from_the_revision_code_alone(board):
    # a container may hide /proc/device-tree and show no Model line
    _, rev = PI_SAMPLES[board]
    cpuinfo = CPUINFO_ARM.format(rev=rev, model="").replace("Model\t\t: \n", "")
    name, why = detect_board(None, cpuinfo)
    assert name == board and "revision" in why


def test_detects_from_the_cpuinfo_model_line_without_a_device_tree():
    cpuinfo = CPUINFO_ARM.format(rev="0000", model="Raspberry Pi 5 Model B Rev 1.1")
    assert detect_board(None, cpuinfo)[0] == "pi5"


def test_an_x86_host_is_host():
    name, why = detect_board(None, CPUINFO_X86)
    assert name == "host" and "AMD EPYC 9654" in why


def test_an_old_style_revision_code_is_not_misread():
    # old-style codes (bit 23 clear, e.g. a Pi 1 "000e") carry no board type field
    assert detect_board(None, "Revision\t: 000e\n")[0] == "host"


# --- cost model ---------------------------------------------------------------------------


F_IN, H, OUT = 8, 16, 4


@pytest.mark.parametrize(
    "name, gates, biases",
    [
        # per step a layer's matmuls are gates x H x (I + H): GRU 3 gates, LSTM 4, RNN 1.
        # Biases after lowering: b_ih + b_hh are folded into one where they simply add (LSTM,
        # RNN, the GRU's r and z); the GRU's n gate keeps both, since r multiplies b_hn, and its
        # hidden-side linear (all three gates) carries zeros for r and z: 6 per unit.
        ("gru", 3, 6),
        ("lstm_2layer", 4, 4),
        ("rnn_tanh_2layer", 1, 1),
    ],
)
def test_mac_counts_equal_hand_counts(name, gates, biases):
    model, example = build(name)
    inputs = [F_IN] + [H] * (model.rnn.num_layers - 1)
    matrices = sum(gates * H * (i + H) for i in inputs) + H * OUT  # plus the Linear(H, 4) head
    cost = graph_cost(capture(model, example).graph)
    assert cost.macs == matrices  # batch 1: each weight element is one MAC per step
    assert cost.weight_params == matrices
    other = len(inputs) * biases * H + OUT
    assert step_bytes(cost, "float").weights == 4 * (matrices + other)
    # int8: one byte per matrix element plus a float scale per output row; biases stay 4 bytes
    rows = sum(gates * H * 2 for _ in inputs) + OUT  # each layer has an input and a hidden matrix
    assert step_bytes(cost, "int8").weights == matrices + 4 * rows + 4 * other


def test_lstm_cell_and_gru_cell_mac_counts():
    model, example = build("cells")  # LSTMCell(8, 16) -> GRUCell(16, 12) -> Linear(12, 5)
    cost = graph_cost(capture(model, example).graph)
    assert cost.macs == 4 * 16 * (8 + 16) + 3 * 12 * (16 + 12) + 12 * 5
    assert cost.state_elements == 16 + 16 + 12


def test_floor_is_compute_bound_in_cache_and_memory_bound_out_of_it():
    pi4 = get_profile("pi4b")
    small = graph_cost(capture(*build("gru")).graph)
    f = board_floor(small, pi4, "float")
    clock_hz = pi4.value("clock_ghz") * 1e9
    expected_us = small.macs / (pi4.value("fp32_macs_per_cycle") * clock_hz) * 1e6
    assert f.bound == "compute" and f.floor_us == pytest.approx(expected_us)
    assert f.resident_in == "L1"  # a few KiB of weights

    # GRU(40 -> 256) + Linear(256, 10): 926 KB of float weights; Zero 2 W has 512 KB of L2
    model = _Seq(nn.GRU(40, 256, batch_first=True), nn.Linear(256, 10))
    cost = graph_cost(capture(model.eval(), torch.zeros(1, 1, 40)).graph)
    zero = get_profile("zero2w")
    f = board_floor(cost, zero, "float")
    # matrices 3 x 256 x (40 + 256) + 256 x 10; biases 6 x 256 (two 3-gate linears) + 10
    n_bytes = 4 * (3 * 256 * 296 + 2560 + 6 * 256 + 10)
    assert f.resident_in == "DRAM" and f.bound == "memory"
    assert f.floor_us == pytest.approx(n_bytes / (zero.value("dram_bandwidth_gbs") * 1e9) * 1e6)
    # the same weights fit a Pi 4's 1 MB L2: compute-bound there
    assert board_floor(cost, get_profile("pi4b"), "float").resident_in == "L2"


class _Seq(nn.Module):
    def __init__(self, rnn: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.rnn, self.head = rnn, head

    def forward(self, x):
        return self.head(self.rnn(x)[0])

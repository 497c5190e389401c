"""Mixed precision's search (quantize/mixed.py): a bisection on the ranked groups finds the
fewest most sensitive groups to keep float in log2(groups) + 1 plans (one by one took a plan
per group: the RWKV export's search ran about 6 minutes), and says what it found."""

from __future__ import annotations

import math

import numpy as np
import torch

from rnnedge.export.capture.program import capture
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8 import plan_int8
from rnnedge.quantize.mixed import fewest_float, float_weights

GROUPS = 40


def _ranked(n: int) -> tuple[list[tuple[str, float, int]], dict[str, list[str]]]:
    ranked = [(f"g{i}", float(n - i), 0) for i in range(n)]  # worst first
    return ranked, {f"g{i}": [f"t{i}"] for i in range(n)}


def test_bisection_finds_the_fewest_groups_in_log_tries():
    ranked, groups = _ranked(GROUPS)
    for need in (1, 2, 7, 23, GROUPS):
        judged: list[int] = []

        def judge(keep: dict[str, str], need: int = need, judged: list = judged) -> bool:
            judged.append(len(keep))
            return all(f"t{i}" in keep for i in range(need))  # the `need` worst must be float

        lines: list[str] = []
        top, tries = fewest_float(ranked, {}, groups, judge, lines.append)
        assert top == need, (need, top)
        assert tries == len(judged) <= math.ceil(math.log2(GROUPS)) + 1, (need, judged)
        assert len(lines) == tries - 1 and all("budget" in line for line in lines)


def test_the_structural_floats_come_along_and_a_miss_with_all_float_is_said():
    ranked, groups = _ranked(8)
    rules = {"state": "accumulator"}
    seen: list[dict] = []

    def judge(keep: dict[str, str]) -> bool:
        seen.append(dict(keep))
        return False

    lines: list[str] = []
    assert fewest_float(ranked, rules, groups, judge, lines.append) == (None, 1)
    assert seen[0]["state"] == "accumulator" and len(seen[0]) == 9
    assert "misses even with all 8 groups float" in lines[0]


class Embedded(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table, self.out = torch.nn.Embedding(50, 8), torch.nn.Linear(8, 50)

    def forward(self, ids: torch.Tensor, h: torch.Tensor):
        h = torch.tanh(0.5 * h + self.table(ids))  # bounded: no float accumulator
        return self.out(h), h


def test_a_gather_kept_float_counts_its_table_as_float_weights():
    # the ranking puts groups that keep no weight float first: an embedding's output kept
    # float keeps its table float (without weight-only int8), and was ranked as if it cost
    # nothing; with weight-only int8 (the default) its table stays int8 and costs nothing
    torch.manual_seed(0)
    example = (torch.zeros(1, 1, dtype=torch.int64), torch.zeros(1, 1, 8))
    graph = capture(Embedded().eval(), example).graph
    rng = np.random.default_rng(0)
    ranges = calibrate(graph, [rng.integers(0, 50, (20, 1, 1)) for _ in range(2)])
    base = plan_int8(graph, ranges)
    (gather,) = [n for n in graph.nodes if n.op == "gather"]
    keep = {gather.outputs[0]: ""}
    kept = plan_int8(graph, ranges, keep_float=keep, float_weights=None)
    assert kept.weight(gather.outputs[0]) is None
    assert float_weights(graph, kept) - float_weights(graph, base) == 50 * 8
    weight_only = plan_int8(graph, ranges, keep_float=keep)
    assert weight_only.activation(gather.outputs[0]).dtype == "float32"
    assert weight_only.weight(gather.outputs[0]) is not None
    assert float_weights(graph, weight_only) == float_weights(graph, base)

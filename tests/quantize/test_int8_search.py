"""Mixed precision's search (quantize/mixed.py): a bisection on the ranked groups finds the
fewest most sensitive groups to keep float in log2(groups) + 1 plans (one by one took a plan
per group: the RWKV export's search ran about 6 minutes), and says what it found."""

from __future__ import annotations

import math

from rnnedge.quantize.mixed import fewest_float

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

"""Accuracy-aware mixed precision: int8 where it holds, float where it does not.

plan_within_budget(graph, ranges, calibration, held_out, budget) measures the all-int8 plan
against float on the calibration sequences and a held-out split (quantize/fidelity.py, the
real integer kernels, state carried). Within the budget, that plan is the answer. Otherwise:
  1. the tensors the graph's structure marks (stacked states, accumulators and their decays:
     quantize/mixed_rules.py) are left float;
  2. every remaining int8 group is ranked once by sensitivity: the float graph with only that
     group rounded to its int8 grid, its error against float on the first RANK_STEPS steps;
  3. a bisection on the ranked list finds the fewest most sensitive groups whose keeping float
     holds the budget (log2(groups) + 1 plans measured; one by one took a plan per group);
  4. each group step 3 kept float is tried back in int8 (last first): it stays int8 if the
     budget still holds, so the fewest stay float (step 1's never go back).
Steps 3-4 judge plans on calibration data at SEARCH_MARGIN of the budget, so that held-out
data, judged at the full budget, has room. Each step says what it found (progress lines).
strict=True refuses instead (ExportError with the numbers). A group (tensors tied by shape ops
or a state pair) moves as one: it shares one set of parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from rnnedge.errors import ExportError, InputError
from rnnedge.progress import Progress
from rnnedge.quantize.fidelity import (
    Fidelity,
    Judged,
    Streams,
    compare,
    fake_quant_outputs,
    float_outputs,
    int8_outputs,
    representable,
)
from rnnedge.quantize.int8 import activation_groups, plan_int8
from rnnedge.quantize.mixed_rules import structural_floats
from rnnedge.quantize.weight_only import rank_weights
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.quant.plan import QuantPlan, Ranges

SEARCH_STEPS = 1200  # steps of calibration data each candidate plan is judged on
RANK_STEPS = 300  # steps each group is ranked on (one fake-quant pass per group)
MEASURE_STEPS = 4000  # steps per split in the final record
MAX_TRIES = 24  # plans measured in the greedy and pruning passes, at most
SEARCH_MARGIN = 0.75  # the search's error budget, as a fraction of the user's


@dataclass(frozen=True, kw_only=True)
class Int8Budget:
    """What int8 must hold against float, per data output, on calibration and held-out data:
    max error at most `max_err_pct` % of the output's float range; no drift unless
    `allow_drift`; with `min_agreement`, decisions (argmax or threshold 0.5) agreeing on at
    least that fraction of steps (a task metric)."""

    max_err_pct: float = 2.0
    allow_drift: bool = False
    min_agreement: float | None = None

    def __post_init__(self) -> None:
        if not self.max_err_pct > 0:
            raise InputError(f"int8 budget max_err_pct must be > 0, got {self.max_err_pct!r}")
        if self.min_agreement is not None and not 0 < self.min_agreement <= 1:
            raise InputError(
                f"int8 budget min_agreement must be in (0, 1], got {self.min_agreement!r}"
            )

    def misses(self, f: Fidelity) -> list[str]:
        """One phrase per way `f` misses the budget (empty: it holds)."""
        out = []
        for o in f.outputs:
            if not np.isfinite(o.max_err_pct):
                out.append(f"{o.name!r} is NaN or Inf at some step")
            elif o.max_err_pct > self.max_err_pct:
                out.append(
                    f"{o.name!r} max error {o.max_err_pct:.2f}% of range "
                    f"(budget {self.max_err_pct:g}%)"
                )
            if o.drifting and not self.allow_drift:
                out.append(f"{o.name!r} drifts (late error {o.drift:.1f}x the early)")
            if (
                self.min_agreement is not None
                and o.agreement is not None
                and o.agreement < self.min_agreement
            ):
                out.append(f"{o.name!r} {o.decision} agrees on {100 * o.agreement:.1f}% of steps")
        return out

    def to_json(self) -> dict:
        return {"max_err_pct": self.max_err_pct, "allow_drift": self.allow_drift,
                "min_agreement": self.min_agreement}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Mixed:
    plan: QuantPlan
    kept: dict[str, str]  # tensor (a group's first member) -> why it stays float
    before: dict[str, Fidelity]  # split -> all-int8 fidelity
    after: dict[str, Fidelity]  # split -> the plan's
    met: bool


def plan_within_budget(
    graph: Graph,
    ranges: Ranges,
    calibration: list[np.ndarray],
    held_out: list[np.ndarray],
    budget: Int8Budget,
    *,
    strict: bool = False,
    say: Progress = lambda _m: None,
    judged: Judged = None,
) -> Mixed:
    """`judged`: the outputs the budget applies to (default: the data outputs)."""
    splits = {
        "calibration": _cap(calibration, MEASURE_STEPS),
        "held_out": _cap(held_out, MEASURE_STEPS),
    }
    refs = {k: float_outputs(graph, v, judged) for k, v in splits.items() if v}
    plan = plan_int8(graph, ranges)
    before = _measured(graph, plan, splits, refs, judged)
    misses = [m for f in before.values() for m in budget.misses(f)]
    if not misses:
        return Mixed(plan=plan, kept={}, before=before, after=before, met=True)
    if strict:
        raise ExportError(
            f"int8 misses its budget: {'; '.join(misses[:3])}; refusing (strict). Without "
            "strict, export keeps the most sensitive tensors float until the budget holds"
        )
    say(f"  int8 misses its budget ({misses[0]}): searching for tensors to keep float")
    search = _cap(calibration, SEARCH_STEPS)
    ref = float_outputs(graph, search, judged)
    judge = _judge(graph, ranges, search, ref, budget, judged)
    kept, holds = _search(graph, ranges, plan, search, judge, say, judged)
    weights = frozenset()
    if not holds:
        weights = _float_weights(graph, ranges, kept, search, judge, say, judged)
    plan = plan_int8(graph, ranges, keep_float=kept, float_weights=weights)
    after = _measured(graph, plan, splits, refs, judged)
    met = not any(budget.misses(f) for f in after.values())
    return Mixed(plan=plan, kept=kept, before=before, after=after, met=met)


class Judge(Protocol):
    """Whether the plan keeping `keep` float (and the matrices of `weights` float: weight-only
    int8 is the default for the others, quantize/weight_only.py) holds the search's budget."""

    def __call__(self, keep: dict[str, str], weights: frozenset[str] = frozenset()) -> bool: ...


def _measured(
    graph: Graph, plan: QuantPlan, splits: dict, refs: dict[str, Streams], judged: Judged
) -> dict[str, Fidelity]:
    """split -> the plan's fidelity, with the share of each int8 output's values clipped."""
    out = {}
    for k, ref in refs.items():
        held = representable(plan, ref)
        out[k] = compare(k, int8_outputs(graph, plan, splits[k], judged), ref, held)
    return out


def _judge(
    graph: Graph, ranges: Ranges, seqs: list, ref: Streams, budget: Int8Budget, judged: Judged
) -> Judge:
    # the search holds plans to a tighter budget than the final record: a max error is an
    # extreme value, and held-out data runs above the data a plan was picked on (measured,
    # RWKV-style recurrence: 1.9% on the search steps, 2.8% held out)
    budget = replace(budget, max_err_pct=SEARCH_MARGIN * budget.max_err_pct)

    def holds(keep: dict[str, str], weights: frozenset[str] = frozenset()) -> bool:
        plan = plan_int8(graph, ranges, keep_float=keep, float_weights=weights)
        return not budget.misses(compare("search", int8_outputs(graph, plan, seqs, judged), ref))

    return holds


def _search(
    graph: Graph,
    ranges: Ranges,
    plan: QuantPlan,
    seqs: list,
    judge: Judge,
    say: Progress,
    judged: Judged,
) -> tuple[dict[str, str], bool]:
    """(the tensors to keep float, whether that plan holds the search's budget)."""
    tied = activation_groups(graph)
    groups = _int8_groups(tied, plan)
    keep: dict[str, str] = {}
    for t, why in structural_floats(graph, ranges, plan).items():  # one per int8 group
        if tied.get(t) in groups and not any(tied[k] == tied[t] for k in keep):
            keep[t] = why
    rules = set(keep)  # stacked states, accumulators and decays stay float: never pruned
    tries = 1
    holds = judge(keep) if keep else False
    if keep:
        say(f"  {len(keep)} tensor group(s) float by structure: budget {_word(holds)}")
    if not holds:
        taken = {tied[k] for k in keep}
        t0 = time.perf_counter()
        ranked = _ranked(graph, ranges, plan, _cap(seqs, RANK_STEPS), groups, taken, judged)
        say(
            f"  ranked {len(ranked)} int8 tensor groups by sensitivity in "
            f"{time.perf_counter() - t0:.0f} s (each alone, on {RANK_STEPS} steps)"
        )
        top, n = fewest_float(ranked, keep, groups, judge, say)
        tries += n
        if top is None:
            return {**keep, **_kept(ranked, groups)}, False
        keep, holds = {**keep, **_kept(ranked[:top], groups)}, True
    for t in [t for t in keep if t not in rules][::-1]:  # fewest: back to int8 if it holds
        if tries >= MAX_TRIES:
            break
        trial = {k: w for k, w in keep.items() if k != t}
        tries += 1
        back = judge(trial)
        keep = trial if back else keep
        say(f"  {t} back to int8: budget {_word(back)}" + ("" if back else " (stays float)"))
    return keep, holds


def _float_weights(
    graph: Graph,
    ranges: Ranges,
    keep: dict[str, str],
    seqs: list,
    judge: Judge,
    say: Progress,
    judged: Judged,
) -> frozenset[str]:
    """The weight-only int8 matrices (quantize/weight_only.py) to keep float when the budget
    misses with every activation group the search could keep float: ranked by their rounding
    alone (the float graph with only that matrix rounded), then a bisection for the fewest
    most sensitive. None when keeping them all float does not hold it either: the budget
    misses anyway, and the int8 matrices keep the file small."""
    plan = plan_int8(graph, ranges, keep_float=keep)
    ranked = rank_weights(graph, plan, _cap(seqs, RANK_STEPS), judged)
    if not ranked or not judge(keep, frozenset(ranked)):
        say(f"  weight-only int8 kept on {len(ranked)} float linear(s)/table(s): float weights "
            "would not hold the budget either")  # fmt: skip
        return frozenset()
    lo, hi = 0, len(ranked)  # lo misses (the search's last plan), hi holds
    while hi - lo > 1:
        mid = (lo + hi) // 2
        hi, lo = (mid, lo) if judge(keep, frozenset(ranked[:mid])) else (hi, mid)
    say(f"  {hi} of {len(ranked)} weight-only int8 matrices kept float to hold the budget: "
        + ", ".join(ranked[:hi]))  # fmt: skip
    return frozenset(ranked[:hi])


def fewest_float(
    ranked: list[tuple[str, float, int]],
    keep: dict[str, str],
    groups: dict,
    judge: Judge,
    say: Progress,
) -> tuple[int | None, int]:
    """(the fewest leading groups of `ranked` that, kept float with `keep`, hold the budget,
    or None when all of them do not; the plans tried): a bisection, log2(groups) + 1 tries
    (kept float, a group only makes int8 better, as far as the ranking tells)."""
    if not judge({**keep, **_kept(ranked, groups)}):
        say(f"  the budget misses even with all {len(ranked)} groups float")
        return None, 1
    lo, hi, tries = 0, len(ranked), 1  # lo misses (the caller judged it), hi holds
    while hi - lo > 1:
        mid = (lo + hi) // 2
        tries += 1
        if judge({**keep, **_kept(ranked[:mid], groups)}):
            hi = mid
        else:
            lo = mid
        say(f"  the {mid} most sensitive group(s) float: budget {_word(hi == mid)}")
    return hi, tries


def _kept(ranked: list[tuple[str, float, int]], groups: dict) -> dict[str, str]:
    """A group's first member -> why, for the ranked groups (kept float by sensitivity)."""
    out = {}
    for root, err, cost in ranked:
        why = (
            f"sensitivity: int8 on it alone costs {err:.2f}% of the output range"
            if np.isfinite(err)
            else "sensitivity: int8 on it alone makes the output NaN or Inf"
        )
        out[groups[root][0]] = why + (f" (keeps {cost} weights float)" if cost else "")
    return out


def _word(holds: bool) -> str:
    return "holds" if holds else "misses"


def _ranked(
    graph: Graph,
    ranges: Ranges,
    plan: QuantPlan,
    seqs: list,
    groups: dict,
    taken: set,
    judged: Judged,
) -> list[tuple[str, float, int]]:
    """(group root, error in % of range, weights it makes float) for the int8 groups not yet
    kept: the float graph with only that group rounded to its int8 grid, against float.
    Groups that keep no weight float come first, worst first, then the rest: a float h read
    by a linear makes that linear's weights float, the whole layer's size (measured, LSTM
    128x2 at 2.2%: keeping h float gave 0.8% at 98% of the float file size)."""
    ref = float_outputs(graph, seqs, judged)
    base = float_weights(graph, plan)
    scores = []
    for root, members in groups.items():
        if root in taken:
            continue
        params = {m: plan.params(m) for m in members}
        err = compare("one", fake_quant_outputs(graph, params, seqs, judged), ref).worst_pct
        alone = plan_int8(graph, ranges, keep_float={members[0]: ""})
        scores.append((root, err, float_weights(graph, alone) - base))
    return sorted(scores, key=lambda s: (s[2] > 0, -s[1]))


def float_weights(graph: Graph, plan: QuantPlan) -> int:
    """How many weights of the graph's linears and embedding tables the plan leaves float (a
    gather kept float keeps its table float: a trained RWKV's 256 x 64 table, ranked among
    the groups that cost no weight, was kept float for 0.58% of the logits' range)."""
    weights = {"linear": 1, "gather": 0}  # op -> which input holds its matrix
    return sum(
        int(graph.constants[n.inputs[weights[n.op]]].size)
        for n in graph.nodes
        if n.op in weights
        and n.inputs[weights[n.op]] in graph.constants
        and plan.weight(n.outputs[0]) is None
    )


def _int8_groups(tied: dict[str, str], plan: QuantPlan) -> dict[str, list[str]]:
    """root -> members, of the activation groups the plan stores as integers."""
    out: dict[str, list[str]] = {}
    for name, root in tied.items():
        p = plan.activation(name)
        if p is not None and p.dtype != "float32":
            out.setdefault(root, []).append(name)
    return out


def _cap(seqs: list[np.ndarray], steps: int) -> list[np.ndarray]:
    """The sequences cut to `steps` steps in all (whole sequences first)."""
    out, left = [], steps
    for s in seqs:
        if left <= 0:
            break
        out.append(s[:left])
        left -= len(out[-1])
    return out


def int8_budget(d: dict) -> Int8Budget:
    """An Int8Budget from a dict of its fields (the CLI's and a config file's form)."""
    try:
        return Int8Budget(**d)
    except TypeError as e:  # an unknown key
        raise InputError(f"int8 budget {d!r}: {e}") from e

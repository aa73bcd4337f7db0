"""The rule that turns per-seed measurements of a claim into a verdict (results/claims.md).

Each claim is an effect in the paper's direction: a difference in points (positive: the way the
paper says), or a ratio (above 1: the way the paper says; judged on its logarithm, so that 2x
and 0.5x are equally far from 1). Over the n seeds, the 95% interval is Student's t-interval
of the per-seed values, mean +- t(0.975, n-1) * sd / sqrt(n). Then, in this order:

  no measurement                      -> "not run yet (needs a GPU)" for a full-size row, else "not run yet"
  fewer than MIN_SEEDS seeds          -> the same "not run yet" (one or two seeds cannot give an interval worth the name)
  the interval lies below 0           -> "not reproduced" (the other sign)
  above 0, and its top reaches the paper's effect (or the paper gives no number)
                                      -> "reproduced"
  above 0, below the paper's effect   -> "same sign, smaller"
  it holds 0 and lies below the paper's effect
                                      -> "not reproduced" (the paper's effect is ruled out; none may be left)
  it holds 0 and reaches the paper's effect (or the paper gives no number)
                                      -> "not distinguishable from noise" (neither the effect nor its absence is shown)
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SEEDS = 3
REPRODUCED, SMALLER, NOT_REPRODUCED, NOISE = "reproduced", "same sign, smaller", "not reproduced", "not distinguishable from noise"
NOT_RUN, NOT_RUN_GPU = "not run yet", "not run yet (needs a GPU)"
VERDICTS = (REPRODUCED, SMALLER, NOT_REPRODUCED, NOISE, NOT_RUN_GPU, NOT_RUN)
# t(0.975, df), df = 1..30 (any statistics table; tests check them against scipy); above 30: 1.96
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


def t975(df: int) -> float:
    return T975[df - 1] if df <= len(T975) else 1.96


def t_interval(values: Sequence[float]) -> Interval:
    """Student's 95% interval of the mean of >= 2 values."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half)


def interval_of(values: Sequence[float], ratio: bool) -> Interval | None:
    """The interval on the claim's scale (a ratio's is computed on logarithms and mapped back); None under 2 values."""
    if len(values) < 2:
        return None
    if not ratio:
        return t_interval(values)
    i = t_interval([math.log(v) for v in values])
    return Interval(math.exp(i.mean), math.exp(i.low), math.exp(i.high))


def verdict(values: Sequence[float] | None, paper: float | None, ratio: bool = False, needs_gpu: bool = False) -> str:
    """The verdict of the module docstring. values: per seed, in the claim's direction; paper: the
    paper's effect on the same scale (None: no number, only the direction)."""
    if not values or len(values) < MIN_SEEDS:
        return NOT_RUN_GPU if needs_gpu else NOT_RUN
    i = interval_of(values, ratio)
    zero = 1.0 if ratio else 0.0
    reaches_paper = paper is None or i.high >= paper
    if i.high < zero:
        return NOT_REPRODUCED
    if i.low > zero:
        return REPRODUCED if reaches_paper else SMALLER
    return NOISE if reaches_paper else NOT_REPRODUCED

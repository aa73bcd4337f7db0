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
  it holds 0 and reaches the paper's effect, and the smallest effect this size can detect (below)
  is larger than the paper's     -> "this size cannot decide" (the test had too little power to see
                                      the paper's effect: more seeds or less noise, not a finding)
  it holds 0 and reaches the paper's effect (or the paper gives no number)
                                      -> "not distinguishable from noise" (neither the effect nor its absence is shown)

The smallest detectable effect (80% power, two-sided 5% test, from the measured spread sd of the
n per-seed values): MDE = (t(0.975, n-1) + t(0.8, n-1)) * sd / sqrt(n) (a ratio's: on logarithms,
mapped back). Read together, the rows are many tests at once: each row's p-value (two-sided
one-sample t-test of "no effect") is also given Holm-adjusted over the rows measured at the same
size (holm()), and the table says how many 5% rejections chance alone would give.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SEEDS = 3
REPRODUCED, SMALLER, NOT_REPRODUCED, NOISE = "reproduced", "same sign, smaller", "not reproduced", "not distinguishable from noise"
CANNOT_DECIDE = "this size cannot decide"
NOT_RUN, NOT_RUN_GPU = "not run yet", "not run yet (needs a GPU)"
VERDICTS = (REPRODUCED, SMALLER, NOT_REPRODUCED, CANNOT_DECIDE, NOISE, NOT_RUN_GPU, NOT_RUN)
# t(0.975, df), df = 1..30 (any statistics table; tests check them against scipy); above 30: 1.96
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
# t(0.8, df), df = 1..30 (80% power); above 30: 0.842
T80 = (1.376, 1.061, 0.978, 0.941, 0.920, 0.906, 0.896, 0.889, 0.883, 0.879, 0.876, 0.873, 0.870, 0.868, 0.866,
       0.865, 0.863, 0.862, 0.861, 0.860, 0.859, 0.858, 0.858, 0.857, 0.856, 0.856, 0.855, 0.855, 0.854, 0.854)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


def t975(df: int) -> float:
    return T975[df - 1] if df <= len(T975) else 1.96


def t80(df: int) -> float:
    return T80[df - 1] if df <= len(T80) else 0.842


def _sd(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def t_interval(values: Sequence[float]) -> Interval:
    """Student's 95% interval of the mean of >= 2 values."""
    n = len(values)
    mean = sum(values) / n
    half = t975(n - 1) * _sd(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half)


def _scale(values: Sequence[float], ratio: bool) -> list[float]:
    return [math.log(v) for v in values] if ratio else list(values)


def smallest_detectable(values: Sequence[float], ratio: bool) -> float | None:
    """MDE at 80% power, two-sided 5%, from the values' spread (a ratio's on logarithms, mapped back);
    None under 2 values."""
    if len(values) < 2:
        return None
    n, x = len(values), _scale(values, ratio)
    mde = (t975(n - 1) + t80(n - 1)) * _sd(x) / math.sqrt(n)
    return math.exp(mde) if ratio else mde


def p_value(values: Sequence[float], ratio: bool) -> float | None:
    """Two-sided p of the one-sample t-test of "no effect" (0, or a ratio 1); None under 2 values."""
    if len(values) < 2:
        return None
    from scipy import stats  # a dependency of the package (pyproject.toml); here only for the t distribution
    n, x = len(values), _scale(values, ratio)
    sd = _sd(x)
    if sd == 0:
        return 0.0 if sum(x) != 0 else 1.0
    t = (sum(x) / n) / (sd / math.sqrt(n))
    return float(2 * stats.t.sf(abs(t), n - 1))


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the i-th smallest of m p-values times (m - i), kept monotone, capped at 1."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


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
    if not reaches_paper:
        return NOT_REPRODUCED
    return CANNOT_DECIDE if paper is not None and smallest_detectable(values, ratio) > paper else NOISE


CHANCE_SHARE = 0.95  # a final training loss within 5% of chance's ln(classes): the run learned nothing


def failed_run(final_loss: float, classes: int) -> bool:
    """A training failure, not an accuracy: the run diverged (non-finite loss) or ended at chance.
    Counted per arm as a failure rate and kept out of the accuracy effect (the table's rule)."""
    return not math.isfinite(final_loss) or final_loss >= CHANCE_SHARE * math.log(classes)

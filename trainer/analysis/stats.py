"""The statistics behind a comparison's verdicts: intervals, paired tests, Holm, ranks with ties.

Pure functions on plain floats. Seeds are the unit of replication: a variant's runs differ in
model init and batch order, and two variants run with the same seed share both, so comparisons
pair runs by seed (Bouthillier et al. 2021, "Accounting for variance in machine learning
benchmarks"). Intervals are estimates, never a bare mean (Agarwal et al. 2021, "Deep
reinforcement learning at the edge of the statistical precipice").
"""

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import optimize
from scipy import stats as scipy_stats

ALPHA = 0.05  # two-sided level of every test and 1 - ALPHA the coverage of every interval
POWER = 0.8  # the power at which the minimum detectable effect is stated (Cohen 1988)


@dataclass(frozen=True)
class Interval:
    """Mean, sample std and the two-sided t-interval of ``n`` values (NaN where undefined)."""

    n: int
    mean: float
    std: float
    low: float
    high: float


@dataclass(frozen=True)
class Paired:
    """A variant against a reference over seeds both ran: ``diff`` = variant - reference."""

    n: int  # shared seeds
    diff: Interval
    p_value: float  # two-sided paired t-test, uncorrected
    p_improve: float  # share of seed pairs the variant wins in the task's direction, ties half
    mde: float  # smallest |mean difference| the test detects with POWER at ALPHA


def _check_mode(mode: str) -> int:
    if mode not in ("max", "min"):
        raise ValueError(f"stats: expected mode 'max' or 'min', got {mode!r}")
    return 1 if mode == "max" else -1


def t_interval(values: Sequence[float], confidence: float = 1 - ALPHA) -> Interval:
    """Student-t interval of the mean: ``mean ± t_{(1+c)/2, n-1} · s / √n``; NaN values are dropped.

    One value has a mean but no spread: std and bounds are NaN, never ± 0.

    >>> t_interval([0.80, 0.82, 0.84])
    Interval(n=3, mean=0.82, std=0.0199..., low=0.7703..., high=0.8696...)
    >>> t_interval([0.8]).std
    nan
    """
    finite = [float(v) for v in values if not math.isnan(v)]
    n = len(finite)
    if n == 0:
        return Interval(0, math.nan, math.nan, math.nan, math.nan)
    mean = statistics.fmean(finite)
    if n == 1:
        return Interval(1, mean, math.nan, math.nan, math.nan)
    std = statistics.stdev(finite)
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * std / math.sqrt(n))
    return Interval(n, mean, std, mean - half, mean + half)


def power_paired_t(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with ``n`` pairs at standardised effect ``effect``
    (mean difference / std of differences): ``P(|T'| > t_{1-α/2, n-1})`` for the noncentral
    ``T' ~ t(n - 1, effect · √n)``, both tails as upper tails (``scipy.stats.nct.sf``; its ``cdf``
    returns NaN deep in the lower tail).

    >>> round(power_paired_t(0.0, 5), 6)
    0.05
    """
    df, noncentrality = n - 1, effect * math.sqrt(n)
    critical = scipy_stats.t.ppf(1 - alpha / 2, df)
    return float(
        scipy_stats.nct.sf(critical, df, noncentrality)
        + scipy_stats.nct.sf(critical, df, -noncentrality)
    )


def min_detectable_effect(
    n: int, std_diff: float, alpha: float = ALPHA, power: float = POWER
) -> float:
    """Smallest mean paired difference a two-sided paired t-test with ``n`` pairs detects with
    probability ``power`` at level ``alpha``, given the std of the differences: the effect ``d``
    solving ``power_paired_t(d, n) = power`` (noncentral t, exact), times ``std_diff``.
    NaN below 2 pairs or without a finite std.

    >>> round(min_detectable_effect(3, 1.0), 2)  # three seeds: over three stds of the differences
    3.26
    """
    if n < 2 or not math.isfinite(std_diff):
        return math.nan
    high = 1.0
    while power_paired_t(high, n, alpha) < power:
        high *= 2
    effect = optimize.brentq(lambda d: power_paired_t(d, n, alpha) - power, 0.0, high, xtol=1e-10)
    return effect * std_diff


def paired(variant: Mapping[int, float], reference: Mapping[int, float], mode: str) -> Paired:
    """Compare a variant with a reference over their shared seeds (``{seed: metric}``; NaN
    values drop out): the t-interval of the differences, the paired t-test
    (``scipy.stats.ttest_rel``) and the probability of improvement.

    Identical differences have no spread: the test is then decided by the sign alone (p = 0 for a
    nonzero difference, the limit of t → ∞, and p = 1 for none), where ``ttest_rel`` gives NaN.

    >>> result = paired({0: 0.9, 1: 0.8, 2: 0.85}, {0: 0.8, 1: 0.78, 2: 0.8}, "max")
    >>> result.n, round(result.diff.mean, 4), result.p_improve
    (3, 0.0567, 1.0)
    """
    sign = _check_mode(mode)
    seeds = sorted(
        s
        for s in variant.keys() & reference.keys()
        if not (math.isnan(variant[s]) or math.isnan(reference[s]))
    )
    x = [float(variant[s]) for s in seeds]
    y = [float(reference[s]) for s in seeds]
    diffs = [a - b for a, b in zip(x, y, strict=True)]
    interval = t_interval(diffs)
    n = len(seeds)
    if n == 0:
        return Paired(0, interval, math.nan, math.nan, math.nan)
    wins = sum(1.0 if sign * d > 0 else 0.5 if d == 0 else 0.0 for d in diffs)
    if n < 2:
        p_value = math.nan
    elif interval.std == 0:
        p_value = 0.0 if interval.mean != 0 else 1.0
    else:
        p_value = float(scipy_stats.ttest_rel(x, y).pvalue)
    return Paired(n, interval, p_value, wins / n, min_detectable_effect(n, interval.std))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (Holm 1979, "A simple sequentially rejective multiple test
    procedure"): the i-th smallest of m p-values becomes ``max_{j ≤ i} min(1, (m - j + 1) p_(j))``.
    NaN entries (tests that could not run) stay NaN and do not count in m.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(order)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def verdict(p_holm: float, mean_diff: float, n_pairs: int, mode: str) -> str:
    """``better`` / ``worse`` than the reference when the Holm-adjusted p is below ``ALPHA`` (the
    direction from the mean difference and the mode), else ``tie``; ``n/a`` below two pairs.

    >>> verdict(0.01, -0.3, 3, "min"), verdict(0.2, 0.1, 3, "max"), verdict(math.nan, 0.1, 1, "max")
    ('better', 'tie', 'n/a')
    """
    sign = _check_mode(mode)
    if n_pairs < 2 or math.isnan(p_holm):
        return "n/a"
    if p_holm >= ALPHA or mean_diff == 0:
        return "tie"
    return "better" if sign * mean_diff > 0 else "worse"


def ranks_with_ties(means: Sequence[float], p_holm_vs_top: Sequence[float], mode: str) -> list:
    """Competition ranks: the best mean and every variant not separable from it (Holm-adjusted
    paired p vs the top at or above ``ALPHA``, or untestable: NaN) share rank 1; the others follow
    by mean, each ranked one plus the number ranked before it. A NaN mean gets no rank (None).
    ``p_holm_vs_top`` holds NaN for the top itself.

    >>> ranks_with_ties([0.80, 0.83, 0.70, 0.82], [0.001, math.nan, 0.01, 0.3], "max")
    [3, 1, 4, 1]
    """
    sign = _check_mode(mode)
    scored = [i for i, m in enumerate(means) if not math.isnan(m)]
    if not scored:
        return [None] * len(means)
    top = max(scored, key=lambda i: sign * means[i])
    tied = [i for i in scored if i == top or not p_holm_vs_top[i] < ALPHA]
    rest = sorted((i for i in scored if i not in tied), key=lambda i: -sign * means[i])
    ranks: list = [None] * len(means)
    for i in tied:
        ranks[i] = 1
    for position, i in enumerate(rest):
        ranks[i] = len(tied) + position + 1
    return ranks

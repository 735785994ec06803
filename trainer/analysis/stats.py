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

import numpy as np
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
    diffs: tuple[float, ...] = ()  # the differences, by seed


def _check_mode(mode: str) -> int:
    if mode not in ("max", "min"):
        raise ValueError(f"stats: expected mode 'max' or 'min', got {mode!r}")
    return 1 if mode == "max" else -1


def t_interval(values: Sequence[float], confidence: float = 1 - ALPHA) -> Interval:
    """Student-t interval of the mean: ``mean ± t_{(1+c)/2, n-1} · s / √n``; NaN values are dropped.

    One value has a mean but no spread: std and bounds are NaN, never ± 0; identical values have
    std 0 and NaN bounds (no interval).

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
    if std == 0:  # identical values: a point, which would claim a certainty no sample has
        return Interval(n, mean, 0.0, math.nan, math.nan)
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

    Identical differences have no spread, where ``ttest_rel`` gives NaN (or p → 0, the limit of
    t → ∞, which would claim more than n pairs can show): the exact sign-flip test
    (:func:`sign_flip_p`) decides then, whose smallest p is ``2 / 2^n`` (0.25 for three seeds).

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
        p_value = sign_flip_p(diffs)
    else:
        p_value = float(scipy_stats.ttest_rel(x, y).pvalue)
    mde = min_detectable_effect(n, interval.std)
    return Paired(n, interval, p_value, wins / n, mde, tuple(diffs))


MAX_EXACT_PAIRS = 20  # 2^20 sign assignments: exact enumeration stays under a second


def sign_flip_p(diffs: Sequence[float], alternative: str = "two-sided") -> float:
    """Exact paired permutation test of the mean difference: under the null each difference is
    as likely positive as negative, so the p-value is the share of the ``2^n`` sign assignments
    whose mean is at least as extreme (two-sided: in absolute value). Its smallest value is
    ``2 / 2^n`` two-sided, ``1 / 2^n`` one-sided.

    Enumerated here rather than through ``scipy.stats.permutation_test``, whose tie tolerance
    is relative to the observed mean: an observed mean that is zero up to rounding then misses
    the assignments tied with it. Ties here are within ``1e-9`` of the differences' scale.

    >>> sign_flip_p([0.01, 0.01, 0.01]), sign_flip_p([0.01, 0.01, 0.01], "greater")
    (0.25, 0.125)
    """
    values = np.asarray(diffs, dtype=np.float64)
    if not values.any():
        return 1.0
    if len(values) > MAX_EXACT_PAIRS:
        raise ValueError(f"sign_flip_p: exact up to {MAX_EXACT_PAIRS} pairs, got {len(values)}")
    signs = 1 - 2 * ((np.arange(2 ** len(values))[:, None] >> np.arange(len(values))) & 1)
    means = (signs * values).mean(axis=1)
    observed, tie = values.mean(), 1e-9 * np.abs(values).max()
    if alternative == "greater":
        return float(np.mean(means >= observed - tie))
    if alternative == "less":
        return float(np.mean(means <= observed + tie))
    return float(np.mean(np.abs(means) >= abs(observed) - tie))


def one_sided_p(diffs: Sequence[float], null: float, alternative: str) -> float:
    """One-sided test of the mean difference against ``null`` (H1: mean > null for
    ``greater``, < for ``less``): the one-sample t-test, or the exact sign-flip test of
    ``diffs - null`` where those have no spread. NaN below two differences.

    >>> round(one_sided_p([0.02, 0.03, 0.04], 0.0, "greater"), 4)  # t = 5.196, 2 df
    0.0175
    """
    values = [float(d) - null for d in diffs]
    if len(values) < 2:
        return math.nan
    if statistics.stdev(values) == 0:
        return sign_flip_p(values, alternative)
    return float(scipy_stats.ttest_1samp(values, 0.0, alternative=alternative).pvalue)


def equivalence_p(diffs: Sequence[float], margin: float) -> float:
    """Two one-sided tests (Schuirmann 1987, "A comparison of the two one-sided tests procedure
    and the power approach for assessing the equivalence of average bioavailability"): the
    mean difference lies within ``(-margin, margin)`` when both ``mean > -margin`` and
    ``mean < margin`` reject; the p-value is the larger of the two.

    >>> round(equivalence_p([0.001, -0.002, 0.0, 0.001], 0.01), 5)
    0.00038
    """
    return max(one_sided_p(diffs, -margin, "greater"), one_sided_p(diffs, margin, "less"))


def noninferiority_p(diffs: Sequence[float], margin: float, mode: str) -> float:
    """Non-inferiority: H1 says the variant is worse than the reference by less than
    ``margin`` (in the task's direction: ``mode``), i.e. the oriented mean difference is above
    ``-margin``; one-sided (:func:`one_sided_p`).

    >>> round(noninferiority_p([0.0, 0.001, -0.001, 0.002], 0.01, "max"), 5)
    0.00025
    """
    sign = _check_mode(mode)
    return one_sided_p([sign * d for d in diffs], -margin, "greater")


def power_one_sided_t(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the one-sided paired t-test with ``n`` pairs at standardised effect ``effect``:
    ``P(T' > t_{1-α, n-1})``, ``T' ~ t(n - 1, effect · √n)`` (noncentral t).

    >>> round(power_one_sided_t(0.0, 5), 6)
    0.05
    """
    df = n - 1
    return float(scipy_stats.nct.sf(scipy_stats.t.ppf(1 - alpha, df), df, effect * math.sqrt(n)))


MAX_SEEDS = 1000  # beyond this, "more seeds" is not an answer: the effect is out of reach


def seeds_needed(
    effect: float, std_diff: float, test: str = "superiority", alpha: float = ALPHA
) -> int | None:
    """The fewest seeds (pairs) whose test detects a true mean difference of ``effect`` with
    probability ``POWER`` at level ``alpha``, given the spread of the differences (the observed
    one; pass ``ALPHA / m`` for a test that is one of a Holm family of ``m``):
    the two-sided paired t-test (``superiority``), the one-sided test against a margin
    ``effect`` when the true difference is 0 (``noninferiority``), or the two one-sided tests
    with margin ``effect`` when it is 0 (``equivalence``; power from the bound
    ``1 - 2 (1 - power_one_sided)``, so the count is on the safe side). None when no spread is
    known or more than :data:`MAX_SEEDS` would be needed.

    >>> seeds_needed(1.0, 1.0), seeds_needed(1.0, 1.0, "noninferiority")
    (10, 8)
    """
    if not (math.isfinite(std_diff) and std_diff > 0 and effect > 0):
        return None
    power = {
        "superiority": lambda d, n: power_paired_t(d, n, alpha),
        "noninferiority": lambda d, n: power_one_sided_t(d, n, alpha),
        "equivalence": lambda d, n: 1 - 2 * (1 - power_one_sided_t(d, n, alpha)),
    }[test]
    standardised = effect / std_diff
    for n in range(2, MAX_SEEDS + 1):
        if power(standardised, n) >= POWER:
            return n
    return None


def sign_flip_seeds(two_sided: bool = True, alpha: float = ALPHA) -> int:
    """The fewest pairs whose exact sign-flip test can reach ``alpha``: its smallest p is
    ``2 / 2^n`` two-sided (``1 / 2^n`` one-sided), reached when every difference has one sign.

    >>> sign_flip_seeds(), sign_flip_seeds(two_sided=False)
    (6, 5)
    """
    n = 1
    while (2 if two_sided else 1) / 2**n >= alpha:
        n += 1
    return n


def adjusted_interval(diffs: Sequence[float], p_raw: float, p_holm: float) -> Interval:
    """The t-interval of the differences at the level its Holm-adjusted test uses: confidence
    ``1 - ALPHA · p_raw / p_holm``, so the interval excludes 0 exactly when ``p_holm < ALPHA``
    (``p_raw < ALPHA · p_raw / p_holm``), as the verdict says. For the first Holm step
    (``p_holm = m · p_raw``) that is Bonferroni's ``1 - ALPHA / m``; never narrower than the
    unadjusted interval. NaN bounds when the test could not run.

    >>> iv = adjusted_interval([0.02, 0.03, 0.04], 0.0351, 0.0702)  # first of two: p x 2
    >>> round(iv.low, 4), round(iv.high, 4)  # the 97.5 % interval: holds 0, as p_holm > 0.05
    (-0.0058, 0.0658)
    """
    if math.isnan(p_raw) or math.isnan(p_holm) or p_holm <= 0:
        return _no_bounds(diffs)
    return t_interval(diffs, confidence=1 - ALPHA * p_raw / p_holm)


def _no_bounds(values: Sequence[float]) -> Interval:
    interval = t_interval(values)
    return Interval(interval.n, interval.mean, interval.std, math.nan, math.nan)


def within(interval: Interval, low: float, high: float) -> Interval:
    """The interval intersected with ``[low, high]``, the range its quantity can take (a metric
    in [0, 1], or its difference in [-1, 1]). The true value lies in that range, so the
    intersection covers it whenever the interval does: the coverage stays what it was.

    >>> within(Interval(3, 0.95, 0.04, 0.85, 1.05), 0.0, 1.0).high
    1.0
    """

    def clip(value: float) -> float:
        return value if math.isnan(value) else min(max(value, low), high)

    return Interval(
        interval.n, interval.mean, interval.std, clip(interval.low), clip(interval.high)
    )


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

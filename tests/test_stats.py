"""The comparison statistics on fixed numbers, against scipy.stats and hand-computed cases."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from trainer.analysis import stats

SCORES = [0.812, 0.827, 0.809, 0.831, 0.820]


def test_t_interval_matches_scipy():
    iv = stats.t_interval(SCORES)
    x = np.array(SCORES, dtype=np.float64)
    low, high = scipy_stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=scipy_stats.sem(x))
    assert iv.n == 5
    assert iv.mean == pytest.approx(x.mean(), abs=1e-15)
    assert iv.std == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert (iv.low, iv.high) == pytest.approx((low, high), rel=1e-12)


def test_t_interval_of_one_value_has_no_spread_and_nan_values_drop_out():
    one = stats.t_interval([0.8])
    assert one.n == 1 and one.mean == 0.8
    assert math.isnan(one.std) and math.isnan(one.low) and math.isnan(one.high)  # never ± 0
    assert stats.t_interval([0.8, math.nan, 0.9]) == stats.t_interval([0.8, 0.9])
    assert math.isnan(stats.t_interval([]).mean) and stats.t_interval([]).n == 0


def test_paired_matches_scipy_ttest_rel_and_its_interval():
    variant = {0: 0.832, 1: 0.826, 2: 0.838, 3: 0.829}
    baseline = {0: 0.822, 1: 0.821, 2: 0.823, 3: 0.824}
    result = stats.paired(variant, baseline, "max")
    x, y = np.array(list(variant.values())), np.array(list(baseline.values()))
    reference = scipy_stats.ttest_rel(x, y)
    ci = reference.confidence_interval(0.95)
    assert result.n == 4
    assert result.diff.mean == pytest.approx((x - y).mean(), abs=1e-15)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert (result.diff.low, result.diff.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert result.p_improve == 1.0


def test_paired_uses_only_the_shared_seeds_and_counts_ties_half_in_the_tasks_direction():
    # regression (mode min): lower is better; seed 3 has no baseline, seed 4 a NaN variant value
    variant = {0: 0.50, 1: 0.40, 2: 0.70, 3: 0.10, 4: math.nan, 5: 0.30}
    baseline = {0: 0.60, 1: 0.40, 2: 0.65, 4: 0.55, 5: 0.35}
    result = stats.paired(variant, baseline, "min")
    assert result.n == 4  # seeds 0, 1, 2, 5
    # wins: seed 0 (0.50 < 0.60), seed 5; tie: seed 1; loss: seed 2 -> (2 + 0.5) / 4
    assert result.p_improve == 0.625
    shared = [0, 1, 2, 5]
    expected = scipy_stats.ttest_rel([variant[s] for s in shared], [baseline[s] for s in shared])
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10)
    assert stats.paired(variant, baseline, "max").p_improve == 1 - 0.625


def test_paired_with_identical_differences_takes_the_exact_sign_flip_test():
    # no spread: the t-test is undefined, and p = 0 would claim more than n pairs can show;
    # the exact test's p is the share of the 2^n sign flips as extreme: 2 of 4 here
    same = stats.paired({0: 1.0, 1: 2.0}, {0: 0.5, 1: 1.5}, "max")
    assert same.p_value == 0.5 and same.diff.std == 0.0
    assert math.isnan(same.diff.low) and math.isnan(same.diff.high)  # no interval from no spread
    three = stats.paired({0: 1.0, 1: 2.0, 2: 3.0}, {0: 0.5, 1: 1.5, 2: 2.5}, "max")
    assert three.p_value == 0.25  # the floor with three seeds
    equal = stats.paired({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}, "max")
    assert equal.p_value == 1.0 and equal.p_improve == 0.5


def test_paired_below_two_pairs_has_no_test():
    one = stats.paired({0: 0.9, 1: 0.8}, {1: 0.7}, "max")
    assert one.n == 1 and math.isnan(one.p_value) and math.isnan(one.mde)
    assert one.p_improve == 1.0 and one.diff.mean == pytest.approx(0.1)


def test_holm_on_a_hand_computed_case():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> max(0.06, .04)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # a Benjamini-Hochberg adjustment would give [0.02, 0.04, 0.04, 0.02]: Holm is not BH
    bh = scipy_stats.false_discovery_control([0.01, 0.04, 0.03, 0.005])
    assert not np.allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), bh)
    # NaN (untestable) stays NaN and does not count in m; adjusted values cap at 1
    adjusted = stats.holm([math.nan, 0.02, 0.5])
    assert math.isnan(adjusted[0]) and adjusted[1:] == pytest.approx([0.04, 0.5])
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0]
    assert stats.holm([]) == []


@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8),
    st.sampled_from([0.01, 0.05, 0.1, 0.2]),
)
def test_holm_rejects_what_the_sequential_procedure_rejects(p_values, alpha):
    # Holm 1979: walk the sorted p-values, reject while p_(k) <= alpha / (m - k), then stop
    m, rejected = len(p_values), set()
    for k, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        if p_values[i] > alpha / (m - k):
            break
        rejected.add(i)
    adjusted = stats.holm(p_values)
    # the float product (m - k) * p may round across alpha where p <= alpha / (m - k) did not
    borderline = {i for i in range(m) if math.isclose(adjusted[i], alpha, rel_tol=1e-9)}
    assert {i for i in range(m) if adjusted[i] <= alpha} - borderline == rejected - borderline


@pytest.mark.parametrize(
    ("p_holm", "diff", "n", "mode", "expected"),
    [
        (0.01, 0.02, 3, "max", "better"),
        (0.01, -0.02, 3, "max", "worse"),
        (0.01, -0.02, 3, "min", "better"),
        (0.01, 0.02, 3, "min", "worse"),
        (0.05, 0.02, 3, "max", "tie"),  # not below 0.05
        (0.2, -0.3, 5, "min", "tie"),
        (math.nan, 0.1, 1, "max", "n/a"),
        (0.0, 0.1, 1, "max", "n/a"),  # one pair: no test, whatever p says
    ],
)
def test_verdict(p_holm, diff, n, mode, expected):
    assert stats.verdict(p_holm, diff, n, mode) == expected


def test_verdict_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="stats: expected mode 'max' or 'min', got 'up'"):
        stats.verdict(0.01, 0.1, 3, "up")


@pytest.mark.parametrize(
    ("means", "p_vs_top", "mode", "expected"),
    [
        # 0.83 tops; 0.82 not separable (p 0.3): both rank 1; then 0.80, 0.70 by mean
        ([0.80, 0.83, 0.70, 0.82], [0.001, math.nan, 0.01, 0.3], "max", [3, 1, 4, 1]),
        # lower is better; an untestable variant (NaN p) cannot be separated from the top
        ([0.5, 0.2, 0.9, 0.4], [0.01, math.nan, 0.02, math.nan], "min", [3, 1, 4, 1]),
        # no score: no rank
        ([math.nan, 0.6, 0.5], [math.nan, math.nan, 0.04], "max", [None, 1, 2]),
        ([0.9, 0.8, 0.7], [math.nan, 0.04, 0.06], "max", [1, 3, 1]),
    ],
)
def test_ranks_with_ties(means, p_vs_top, mode, expected):
    assert stats.ranks_with_ties(means, p_vs_top, mode) == expected


@pytest.mark.parametrize("n", [3, 10])
def test_min_detectable_effect_has_the_stated_power(n):
    std = 0.004
    effect = stats.min_detectable_effect(n, std)
    # Monte Carlo, independent of the noncentral t: paired differences ~ N(effect, std)
    rng = np.random.default_rng(20260)
    trials = 200_000
    diffs = rng.normal(effect, std, size=(trials, n))
    power = (scipy_stats.ttest_1samp(diffs, 0.0, axis=1).pvalue < 0.05).mean()
    # binomial standard error of the simulated power: sqrt(0.8 * 0.2 / 200000) ~ 0.0009
    assert power == pytest.approx(0.8, abs=0.0045)
    normal = (scipy_stats.norm.ppf(0.975) + scipy_stats.norm.ppf(0.8)) * std / math.sqrt(n)
    assert effect > normal  # the t-test needs more than the known-variance z-test
    assert stats.min_detectable_effect(n, 2 * std) == pytest.approx(2 * effect, rel=1e-8)


def test_min_detectable_effect_is_undefined_below_two_pairs_or_without_spread():
    assert math.isnan(stats.min_detectable_effect(1, 0.01))
    assert math.isnan(stats.min_detectable_effect(3, math.nan))


def _all_sign_flips_p(diffs: list[float], alternative: str) -> float:
    """The exact permutation p by enumeration of every sign assignment (float64)."""
    values = np.asarray(diffs, dtype=np.float64)
    observed = values.mean()
    means = np.array(
        [(values * signs).mean() for signs in itertools.product((1.0, -1.0), repeat=len(values))]
    )
    tol = 1e-9  # the observed assignment itself must count, whatever the rounding (grid: 1e-3)
    if alternative == "greater":
        return float(np.mean(means >= observed - tol))
    if alternative == "less":
        return float(np.mean(means <= observed + tol))
    return float(np.mean(np.abs(means) >= abs(observed) - tol))


# differences on a grid of 0.001: sums of them compare exactly enough for ties to be ties
GRID_DIFFS = st.lists(st.integers(-50, 50).map(lambda k: k / 1000), min_size=2, max_size=8)


@given(GRID_DIFFS, st.sampled_from(["two-sided", "greater", "less"]))
def test_sign_flip_p_is_the_share_of_sign_assignments_as_extreme(diffs, alternative):
    if not any(diffs):
        assert stats.sign_flip_p(diffs, alternative) == 1.0
        return
    expected = _all_sign_flips_p(diffs, alternative)
    assert stats.sign_flip_p(diffs, alternative) == pytest.approx(expected, abs=1e-12)


def _t_p(diffs: list[float], null: float, alternative: str) -> float:
    x = np.asarray(diffs, dtype=np.float64) - null
    t = x.mean() / (x.std(ddof=1) / math.sqrt(len(x)))
    return float(
        scipy_stats.t.sf(t, len(x) - 1)
        if alternative == "greater"
        else scipy_stats.t.cdf(t, len(x) - 1)
    )


DIFFS = [0.004, -0.003, 0.006, 0.001, -0.001]


def test_equivalence_is_the_larger_of_two_one_sided_t_tests():
    margin = 0.01
    expected = max(_t_p(DIFFS, -margin, "greater"), _t_p(DIFFS, margin, "less"))
    assert stats.equivalence_p(DIFFS, margin) == pytest.approx(expected, rel=1e-10)
    assert stats.equivalence_p(DIFFS, margin) < 0.05  # within ±0.01: shown
    assert stats.equivalence_p(DIFFS, 0.002) > 0.05  # not within ±0.002
    # no spread: the exact one-sided sign-flip tests, 1 / 2^n each
    assert stats.equivalence_p([0.001] * 3, 0.01) == 0.125
    assert stats.equivalence_p([0.02] * 3, 0.01) == 1.0


def test_noninferiority_is_one_sided_in_the_tasks_direction():
    margin = 0.01
    assert stats.noninferiority_p(DIFFS, margin, "max") == pytest.approx(
        _t_p(DIFFS, -margin, "greater"), rel=1e-10
    )
    # lower is better (mode min): the variant may be higher by less than the margin
    worse = [d + 0.008 for d in DIFFS]
    assert stats.noninferiority_p(worse, margin, "min") == pytest.approx(
        _t_p([-d for d in worse], -margin, "greater"), rel=1e-10
    )
    assert stats.noninferiority_p([-0.05, -0.06, -0.04], margin, "max") > 0.5


@pytest.mark.parametrize("test", ["superiority", "noninferiority", "equivalence"])
@pytest.mark.parametrize(("effect", "std"), [(0.015, 0.02), (0.5, 1.0), (0.01, 0.002)])
def test_seeds_needed_is_the_first_n_with_the_stated_power(test, effect, std):
    def power(n: int) -> float:  # noncentral t, written out here
        df, nc = n - 1, effect / std * math.sqrt(n)
        if test == "superiority":
            c = scipy_stats.t.ppf(0.975, df)
            return scipy_stats.nct.sf(c, df, nc) + scipy_stats.nct.sf(c, df, -nc)
        one = scipy_stats.nct.sf(scipy_stats.t.ppf(0.95, df), df, nc)
        return one if test == "noninferiority" else 1 - 2 * (1 - one)

    n = stats.seeds_needed(effect, std, test)
    assert n is not None and power(n) >= 0.8
    assert n == 2 or power(n - 1) < 0.8
    assert stats.seeds_needed(effect, 0.0, test) is None
    assert stats.seeds_needed(1e-6, 1.0, test) is None  # beyond MAX_SEEDS


@given(GRID_DIFFS.filter(lambda d: len(d) >= 3), st.integers(1, 400).map(lambda k: k / 2000))
def test_the_adjusted_interval_excludes_zero_exactly_when_holm_rejects(diffs, other_p):
    if np.std(diffs) < 1e-6:
        return
    p = float(scipy_stats.ttest_1samp(diffs, 0.0).pvalue)
    p_holm = stats.holm([p, other_p])[0]
    interval = stats.adjusted_interval(diffs, p, p_holm)
    excludes = interval.low > 0 or interval.high < 0
    assert excludes == (p_holm < stats.ALPHA) or abs(p_holm - stats.ALPHA) < 1e-9
    unadjusted = stats.t_interval(diffs)
    assert interval.low <= unadjusted.low + 1e-12 and interval.high >= unadjusted.high - 1e-12


def test_within_keeps_an_interval_in_the_metrics_range():
    dice = stats.t_interval([0.36, 0.99, 0.98])  # the t-interval reaches past 1
    assert dice.high > 1
    kept = stats.within(dice, 0.0, 1.0)
    assert dice.low < 0 and (kept.low, kept.high) == (0.0, 1.0) and kept.mean == dice.mean
    ece = stats.within(stats.t_interval([0.001, 0.03, 0.002]), 0.0, 1.0)
    assert ece.low == 0.0
    assert stats.within(dice, -math.inf, math.inf) == dice

"""The comparison statistics on fixed numbers, against scipy.stats and hand-computed cases."""

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


def test_paired_with_identical_differences_is_decided_by_the_sign():
    same = stats.paired({0: 1.0, 1: 2.0}, {0: 0.5, 1: 1.5}, "max")
    assert same.p_value == 0.0 and same.diff.std == 0.0
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

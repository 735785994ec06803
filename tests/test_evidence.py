"""Evidence labels and outcomes (trainer/analysis/evidence.py, findings' ``judge``) on
hand-made per-seed values: each rule has a case that reads differently without it."""

import math

import pytest
from scipy import stats as scipy_stats

from trainer.analysis import evidence, stats
from trainer.analysis.evidence import Expectation
from trainer.analysis.findings.evaluation import judge
from trainer.analysis.findings.spec import Check

BASE = {0: 0.80, 1: 0.82, 2: 0.78, 3: 0.81, 4: 0.79}


def shifted(diffs: list[float]) -> dict[int, float]:
    return {seed: BASE[seed] + d for seed, d in enumerate(diffs)}


def labelled(kind: str, effect: float, diffs: list[float], mode: str = "max") -> dict:
    check = Check("test/dice", mode, {"v": Expectation(kind, effect)})
    result = judge(check, "b", {"b": BASE, "v": shifted(diffs)}, {}, (0.0, 1.0))
    return result.rows[1]


CLEAR_GAIN = [0.030, 0.028, 0.033, 0.031, 0.029]  # about +0.03, consistent
SMALL_GAIN = [0.0012, -0.0006, 0.0015, 0.0002, 0.0009]  # about +0.0006: far below 0.015
NOISY = [0.05, -0.04, 0.06, -0.03, 0.01]  # holds 0 and 0.015


@pytest.mark.parametrize(
    ("kind", "effect", "diffs", "mode", "label"),
    [
        ("better", 0.015, CLEAR_GAIN, "max", "supported"),
        ("better", 0.015, [-d for d in CLEAR_GAIN], "max", "contradicted"),  # the other way
        ("better", 0.015, SMALL_GAIN, "max", "contradicted"),  # the interval is short of 0.015
        ("better", 0.015, NOISY, "max", "not shown"),
        ("worse", 0.015, CLEAR_GAIN, "min", "supported"),  # higher is worse when lower is better
        ("better", 0.015, CLEAR_GAIN, "min", "contradicted"),
        ("similar", 0.01, SMALL_GAIN, "max", "supported"),
        ("similar", 0.01, CLEAR_GAIN, "max", "contradicted"),  # wholly beyond +0.01
        ("similar", 0.01, NOISY, "max", "not shown"),
        ("at_least_as_good", 0.01, SMALL_GAIN, "max", "supported"),
        ("at_least_as_good", 0.01, CLEAR_GAIN, "max", "supported"),  # better is at least as good
        ("at_least_as_good", 0.01, [-d for d in CLEAR_GAIN], "max", "contradicted"),
        ("at_least_as_good", 0.01, NOISY, "max", "not shown"),
    ],
)
def test_labels(kind, effect, diffs, mode, label):
    assert labelled(kind, effect, diffs, mode)["label"] == label


def test_a_tie_is_not_similarity_and_not_shown_names_the_seeds_it_needs():
    row = labelled("better", 0.015, NOISY)
    assert row["verdict"] == "tie" and row["label"] == "not shown"
    std = float(scipy_stats.tstd(NOISY))
    n = row["seeds_needed"]
    df = n - 1
    c = scipy_stats.t.ppf(0.975, df)
    nc = 0.015 / std * math.sqrt(n)
    assert scipy_stats.nct.sf(c, df, nc) + scipy_stats.nct.sf(c, df, -nc) >= 0.8
    assert f"about {n} seeds would show it" in row["reason"]


def test_zero_spread_is_not_shown_not_certain():
    row = labelled("better", 0.015, [0.02] * 5)
    # the exact sign-flip test: 2 / 2^5 = 0.0625, not below 0.05; no spread, no interval
    assert row["p_holm"] == pytest.approx(2 / 32) and row["label"] == "not shown"
    assert row["diff_ci_low"] is None  # no spread, no interval
    # were every seed to keep that difference, 6 seeds reach 2 / 2^6 < 0.05
    assert row["seeds_needed"] == 6 and "exact sign-flip" in row["reason"]
    three = judge(
        Check("test/dice", "max", {"v": Expectation("better", 0.015)}),
        "b",
        {"b": {0: 0.8, 1: 0.8, 2: 0.8}, "v": {0: 0.82, 1: 0.82, 2: 0.82}},
        {},
        (0.0, 1.0),
    ).rows[1]
    assert three["p_holm"] == 0.25  # never 0


def test_one_holm_family_per_table_and_the_interval_at_its_level():
    check = Check("test/dice", "max", {"v": Expectation("better", 0.015)})
    other = shifted([0.01, 0.012, 0.009, 0.011, 0.01])
    result = judge(check, "b", {"b": BASE, "v": shifted(CLEAR_GAIN), "w": other}, {}, (0.0, 1.0))
    rows = {r["key"]: r for r in result.rows}
    p = {
        k: scipy_stats.ttest_rel(list(rows[k]["per_seed"].values()), list(BASE.values())).pvalue
        for k in ("v", "w")
    }
    first, second = sorted(p.values())
    holm = {k: 2 * first if p[k] == first else max(2 * first, second) for k in p}
    for key in ("v", "w"):  # the unexpected variant counts in the family too
        assert rows[key]["p_holm"] == pytest.approx(holm[key], rel=1e-10)
        level = 1 - 0.05 * p[key] / holm[key]
        diffs = [rows[key]["per_seed"][s] - BASE[int(s)] for s in rows[key]["per_seed"]]
        ci = scipy_stats.ttest_1samp(diffs, 0.0).confidence_interval(level)
        assert (rows[key]["diff_ci_low"], rows[key]["diff_ci_high"]) == pytest.approx(
            (ci.low, ci.high), rel=1e-9
        )
    assert rows["w"]["expected"] == "" and "label" not in rows["w"]


def test_equivalence_claims_form_their_own_holm_family():
    check = Check(
        "test/dice",
        "max",
        {"v": Expectation("similar", 0.01), "w": Expectation("similar", 0.01)},
    )
    values = {"b": BASE, "v": shifted(SMALL_GAIN), "w": shifted([d / 2 for d in SMALL_GAIN])}
    rows = {r["key"]: r for r in judge(check, "b", values, {}, (0.0, 1.0)).rows}
    raw = [
        stats.equivalence_p([d for d in SMALL_GAIN], 0.01),
        stats.equivalence_p([d / 2 for d in SMALL_GAIN], 0.01),
    ]
    assert [rows["v"]["label_p"], rows["w"]["label_p"]] == pytest.approx(stats.holm(raw), rel=1e-9)


def test_means_stay_in_the_metrics_range():
    check = Check("test/dice", "max", {"v": Expectation("better", 0.015)})
    near_one = {0: 0.999, 1: 0.97, 2: 0.995}
    result = judge(check, "b", {"b": {0: 0.5, 1: 0.6, 2: 0.55}, "v": near_one}, {}, (0.0, 1.0))
    assert result.rows[1]["ci_high"] == 1.0


@pytest.mark.parametrize(
    ("labels", "outcome", "driver"),
    [
        (["supported", "supported"], "reproduced", None),
        (["supported", "not shown"], "partly shown", 1),
        (["not shown", "n/a"], "not shown", 0),
        (["supported", "not shown", "contradicted"], "contradicted", 2),
        (["supported", "out of regime"], "out of regime", 1),
        (["supported", "blocked"], "blocked", 1),
    ],
)
def test_outcome_and_what_drove_it(labels, outcome, driver):
    assert evidence.outcome(labels) == outcome
    assert evidence.driver(labels, outcome) == driver


def test_expectations_need_an_effect():
    assert Expectation.parse({"better": 0.015}, "x") == Expectation("better", 0.015)
    for bad in ("better", {"better": 0}, {"better": True}, {"faster": 1.0}):
        with pytest.raises(ValueError):
            Expectation.parse(bad, "x")


def test_the_seeds_a_check_needs_count_its_holm_family():
    """Among five variants Holm's strictest step tests at 0.05 / 5: the seed count is the
    first n with 80 % power there (noncentral t written out here), more than one test needs."""
    others = {f"o{i}": shifted([0.001 * i, -0.002, 0.003, 0.0, 0.001]) for i in range(4)}
    check = Check("test/dice", "max", {"v": Expectation("better", 0.015)})
    rows = judge(check, "b", {"b": BASE, "v": shifted(NOISY), **others}, {}, (0.0, 1.0)).rows
    row = next(r for r in rows if r["key"] == "v")
    std, n = float(scipy_stats.tstd(NOISY)), row["seeds_needed"]

    def power(k: int, alpha: float) -> float:
        c, nc = scipy_stats.t.ppf(1 - alpha / 2, k - 1), 0.015 / std * math.sqrt(k)
        return scipy_stats.nct.sf(c, k - 1, nc) + scipy_stats.nct.sf(c, k - 1, -nc)

    assert power(n, 0.01) >= 0.8 > power(n - 1, 0.01)
    assert n > labelled("better", 0.015, NOISY)["seeds_needed"]
    assert "0.05 / 5 Holm tests" in row["reason"]


def test_not_shown_with_enough_seeds_says_the_sample_fell_short():
    """A spread small enough for 5 seeds to detect 0.015, a mean short of it: the reason must
    not ask for fewer seeds than were run."""
    diffs = [0.0, 0.015, 0.0, 0.015, 0.0075]  # mean 0.0075, std 0.0075: p 0.089, 0.015 at 2 std
    row = labelled("better", 0.015, diffs)
    assert row["label"] == "not shown", row
    assert row["seeds_needed"] <= 5 and "already give it 80 % power" in row["reason"]

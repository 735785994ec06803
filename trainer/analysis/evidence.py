"""What a comparison shows about a declared expectation: ``supported``, ``contradicted``, ``not
shown`` (with the seeds that would show it) or ``out of regime``; and a finding's outcome from
its checks' labels.

An expectation states the effect it expects and the smallest one that matters: ``better: 0.015``
(the variant beats the baseline by at least 0.015 in the task's direction), ``worse: 0.015``,
``similar: 0.01`` (within ±0.01) or ``at_least_as_good: 0.01`` (worse by less than 0.01).
``better``/``worse`` read the table's two-sided paired t-test, Holm-adjusted over the table;
``similar`` and ``at_least_as_good`` read the two one-sided tests (equivalence) and the
one-sided non-inferiority test, Holm-adjusted among the check's own such claims. A ``tie`` of
the plain verdicts is never evidence of similarity.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trainer.analysis import stats

KINDS = ("better", "worse", "similar", "at_least_as_good")
LABELS = ("supported", "contradicted", "not shown", "out of regime", "n/a")
OUTCOMES = ("reproduced", "contradicted", "partly shown", "not shown", "out of regime", "blocked")
SEEDS_TEST = {  # the test whose power decides how many seeds an expectation needs
    "better": "superiority",
    "worse": "superiority",
    "similar": "equivalence",
    "at_least_as_good": "noninferiority",
}


@dataclass(frozen=True)
class Expectation:
    """``kind`` (one of :data:`KINDS`) and ``effect``: for better/worse the smallest effect
    that matters, for similar/at_least_as_good the margin; in the metric's units, > 0."""

    kind: str
    effect: float

    @classmethod
    def parse(cls, raw: object, where: str) -> "Expectation":
        """``{better: 0.015}`` as a spec writes it; a bare ``better`` is refused, since a
        label needs the effect it is measured against."""
        if not isinstance(raw, Mapping) or len(raw) != 1:
            raise ValueError(
                f"{where}: expected one of {{{', '.join(f'{k}: EFFECT' for k in KINDS)}}} "
                f"(the smallest effect that matters, or the margin), got {raw!r}"
            )
        ((kind, effect),) = raw.items()
        if kind not in KINDS:
            raise ValueError(f"{where}: expected one of {KINDS}, got {kind!r}")
        if isinstance(effect, bool) or not isinstance(effect, int | float) or not effect > 0:
            raise ValueError(f"{where}: {kind}: expected an effect > 0, got {effect!r}")
        return cls(str(kind), float(effect))

    def __str__(self) -> str:
        joint = "by" if self.kind in ("better", "worse") else "within"
        return f"{self.kind.replace('_', ' ')} {joint} {self.effect:g}"


@dataclass(frozen=True)
class Evidence:
    """An expectation's label, the Holm-adjusted p of its test, the difference's interval at
    the adjusted level (within the metric's range), the seeds that would show it when it is
    ``not shown``, and the reason in words."""

    label: str
    p_holm: float
    interval: stats.Interval
    seeds_needed: int | None
    reason: str


def raw_p(expectation: Expectation, paired: stats.Paired, mode: str) -> float:
    """The unadjusted p of the test the expectation calls for."""
    if paired.n < 2:
        return math.nan
    if expectation.kind == "similar":
        return stats.equivalence_p(paired.diffs, expectation.effect)
    if expectation.kind == "at_least_as_good":
        return stats.noninferiority_p(paired.diffs, expectation.effect, mode)
    return paired.p_value


def _oriented(expectation: Expectation, mode: str) -> int:
    """+1 where the expected direction is the metric's better one, -1 for ``worse``."""
    sign = 1 if mode == "max" else -1
    return -sign if expectation.kind == "worse" else sign


def label(
    expectation: Expectation,
    paired: stats.Paired,
    p_holm: float,
    interval: stats.Interval,
    mode: str,
    family: int = 1,
) -> Evidence:
    """The label (see the module docstring), given the table's ``interval`` of the difference
    (Holm-consistent, within range) and the expectation's Holm-adjusted ``p_holm`` from a Holm
    family of ``family`` tests:

    - better / worse: ``supported`` when significant in the expected direction;
      ``contradicted`` when significant the other way, or when the whole interval falls short
      of the smallest effect that matters; else ``not shown``;
    - similar: ``supported`` when the two one-sided tests reject; ``contradicted`` when the
      interval lies wholly outside ``±margin``; else ``not shown``;
    - at_least_as_good: ``supported`` when non-inferiority is shown; ``contradicted`` when the
      interval lies wholly beyond ``-margin`` (worse by more than the margin); else ``not shown``.
    """
    if paired.n < 2 or math.isnan(p_holm):
        return Evidence("n/a", p_holm, interval, None, "fewer than two paired seeds")
    e, direction = expectation.effect, _oriented(expectation, mode)
    low, high = sorted((direction * interval.low, direction * interval.high))
    mean = direction * paired.diff.mean
    significant = p_holm < stats.ALPHA
    kind = expectation.kind
    if kind in ("better", "worse"):
        if significant and mean > 0:
            return Evidence("supported", p_holm, interval, None, f"significant, {kind}")
        if significant:
            return Evidence("contradicted", p_holm, interval, None, "significant the other way")
        if high < e:
            reason = f"the whole interval is below the smallest effect that matters ({e:g})"
            return Evidence("contradicted", p_holm, interval, None, reason)
    elif kind == "similar":
        if significant:
            return Evidence("supported", p_holm, interval, None, f"equivalent within ±{e:g}")
        if low > e or high < -e:
            return Evidence("contradicted", p_holm, interval, None, f"differs by more than {e:g}")
    else:
        if significant:
            return Evidence("supported", p_holm, interval, None, f"non-inferior within {e:g}")
        if high < -e:
            return Evidence("contradicted", p_holm, interval, None, f"worse by more than {e:g}")
    return _not_shown(expectation, paired, p_holm, interval, mean, family)


def _not_shown(
    expectation: Expectation,
    paired: stats.Paired,
    p_holm: float,
    iv: stats.Interval,
    mean: float,
    family: int,
) -> Evidence:
    """``not shown``, with why and the seeds that would show it: at 80 % power from the
    observed spread, or, where the differences have none, the fewest seeds whose exact
    sign-flip test can reach the level when every one keeps the observed difference. The
    level is ``ALPHA / family``, Holm's first (strictest) step, so the count is on the safe
    side for any place the test takes in its family. When the seeds run already had that
    power, the reason says so, with the difference the sample showed."""
    kind, e = expectation.kind, expectation.effect
    where = {
        "better": f"the interval holds both 0 and {e:g}",
        "worse": f"the interval holds both 0 and {e:g}",
        "similar": f"the interval reaches beyond ±{e:g} without lying wholly outside it",
        "at_least_as_good": f"the interval reaches below -{e:g} without lying wholly below it",
    }[kind]
    alpha = stats.ALPHA / family
    level = f"at α {alpha:.3g} (0.05 / {family} Holm tests)" if family > 1 else "at α 0.05"
    if paired.diff.std == 0:
        reaches = mean >= e if kind in ("better", "worse") else abs(mean) < e
        two_sided = kind in ("better", "worse")
        needed = stats.sign_flip_seeds(two_sided, alpha) if reaches else None
        basis = f"with no spread, by the exact sign-flip test {level}"
    else:
        needed = stats.seeds_needed(e, paired.diff.std, SEEDS_TEST[kind], alpha)
        basis = f"80 % power from the observed spread {level}"
        if kind in ("similar", "at_least_as_good"):
            basis += ", if the true difference were 0"
    if needed is None:
        more = "no seed count in reach shows it"
    elif needed <= paired.n:
        more = (
            f"{paired.n} seeds already give it 80 % power at this spread ({needed} would); "
            f"the observed difference {mean:.3g} fell short"
        )
    else:
        more = f"about {needed} seeds would show it"
    return Evidence("not shown", p_holm, iv, needed, f"{where}; {more} ({basis})")


def outcome(labels: Sequence[str]) -> str:
    """A finding's outcome from its checks' labels: ``blocked`` when a metric is missing,
    ``out of regime`` when its precondition failed, ``contradicted`` when any check is,
    ``reproduced`` when every one is supported, ``partly shown`` when some are, else ``not
    shown`` (``n/a``: a check could not be compared, which shows nothing).

    >>> outcome(["supported", "supported"]), outcome(["supported", "not shown"])
    ('reproduced', 'partly shown')
    >>> outcome(["supported", "contradicted"]), outcome(["n/a", "not shown"])
    ('contradicted', 'not shown')
    """
    if not labels:
        raise ValueError("outcome: no labels")
    if "blocked" in labels:
        return "blocked"
    if "out of regime" in labels:
        return "out of regime"
    if "contradicted" in labels:
        return "contradicted"
    if all(lb == "supported" for lb in labels):
        return "reproduced"
    return "partly shown" if "supported" in labels else "not shown"


def driver(labels: Sequence[str], outcome_: str) -> int | None:
    """The index of the label that decided the outcome: the first blocked, out-of-regime or
    contradicted one, or the first not supported for partly/not shown; None when every label
    is supported."""
    wanted = {
        "blocked": ("blocked",),
        "out of regime": ("out of regime",),
        "contradicted": ("contradicted",),
    }.get(outcome_, ("not shown", "n/a"))
    return next((i for i, lb in enumerate(labels) if lb in wanted), None)

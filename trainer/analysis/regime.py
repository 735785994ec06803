"""Whether a variant's runs are in the regime a verdict needs: trained long enough, better than
the trivial predictor, all of them finished. Each check gives a flag in words, or nothing.

The flags qualify a verdict; they do not change it. A finding may also declare a precondition
of its own (``regime:`` in its spec), which turns its labels into ``out of regime`` when it
fails (``trainer.analysis.findings``).
"""

from collections.abc import Mapping, Sequence

from trainer.analysis.runs import Curve

STILL_RISING_SHARE = 0.1  # the last quarter of validations gained >= 10 % of the run's gain
MIN_VALIDATIONS = 3  # fewer points do not tell a plateau from a rise


def still_improving(curve: Curve, mode: str, tag: str) -> str | None:
    """``budget too short`` when the seed-mean validation curve still rose materially at the
    end: over its last quarter of validations (at least the last one), the metric gained at
    least :data:`STILL_RISING_SHARE` of what it gained from the first validation to the last,
    and the last validation is the best. None with fewer than :data:`MIN_VALIDATIONS` points.

    >>> curve = [(10, 0.5), (20, 0.7), (30, 0.8)]
    >>> still_improving(curve, "max", "val/dice")
    'budget too short: val/dice still improved by 0.1 over its last 1 of 3 validations (33...'
    >>> still_improving([(10, 0.5), (20, 0.79), (30, 0.8)], "max", "val/dice") is None
    True
    """
    values = [point[1] for point in curve]
    if len(values) < MIN_VALIDATIONS:
        return None
    sign = 1 if mode == "max" else -1
    tail = max(1, len(values) // 4)
    gain = sign * (values[-1] - values[0])
    late = sign * (values[-1] - values[-1 - tail])
    best_last = sign * values[-1] >= max(sign * v for v in values)
    if gain <= 0 or late < STILL_RISING_SHARE * gain or not best_last:
        return None
    return (
        f"budget too short: {tag} still improved by {late:.3g} over its last {tail} of "
        f"{len(values)} validations ({late / gain:.0%} of its gain {gain:.3g})"
    )


def worse_than_trivial(loss: float, prior_loss: float, plain_loss: str) -> str | None:
    """A baseline trained with the task's plain loss whose test loss is above that of the
    constant predictor of the training split's prior (``test/prior_loss``): it has not learned
    what a constant knows, and every verdict against it says little.

    >>> worse_than_trivial(0.114, 0.098, "bce")
    'worse than the trivial predictor: test/loss (bce) 0.114 vs 0.098 for the training prior'
    """
    if not loss > prior_loss:
        return None
    return (
        f"worse than the trivial predictor: test/loss ({plain_loss}) {loss:.3g} vs "
        f"{prior_loss:.3g} for the training prior"
    )


def unfinished(statuses: Sequence[str]) -> str | None:
    """The runs that did not complete (failed, stopped on a non-finite loss, still running),
    named by count: a mean over the completed ones leaves them out.

    >>> unfinished(["completed", "stopped", "completed"])
    'not completed: 1 stopped of 3 runs'
    """
    counts: Mapping[str, int] = {s: statuses.count(s) for s in sorted(set(statuses))}
    others = {s: n for s, n in counts.items() if s != "completed"}
    if not others:
        return None
    listed = ", ".join(f"{n} {s}" for s, n in others.items())
    return f"not completed: {listed} of {len(statuses)} runs"

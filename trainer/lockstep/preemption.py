"""A lockstep group's preemption: the group's one preemption callback, which checkpoints into every
variant's run dir, each variant's record of the stop, and whether a preempted group continues as
a group when its sweep runs again."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L

from trainer.callbacks.preemption import Preemption, write_checkpoint
from trainer.preemption import Preempted
from trainer.records import StatusRecord, first_stop_reason, read_status

# how a variant that was not preempted can have ended before the signal, its group still
# continuing: stopped by its guard (masked out of the group's training), or failed before
# training (its loss or model could not be built)
ENDED_BEFORE = ("stopped", "failed")


class GroupPreemption(Preemption):
    """The one preemption callback of a lockstep group, made of each variant's own (``members``,
    each instantiated from its variant's config: its path): the group's checkpoint goes into the
    run dir of every variant that still trains, each file that variant's part in its sequential
    run's layout (``VariantCheckpointIO``); a variant its guard stopped keeps the files it has.
    The stop's record names each variant's checkpoint (``variant_checkpoints``)."""

    def __init__(self, members: Sequence[Preemption]) -> None:
        first = members[0].path
        super().__init__(str(first.parent), first.stem, [s.name for s in members[0].signals])
        self.paths = [member.path for member in members]

    def write_checkpoints(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        saved = {k: path for k, path in enumerate(self.paths) if pl_module.is_active(k)}
        for path in saved.values():
            write_checkpoint(trainer, path)
        return {"variant_checkpoints": {k: str(path) for k, path in saved.items()}}


def record_preemption(
    stop: Preempted,
    statuses: Sequence[StatusRecord],
    callbacks: Sequence[Sequence[L.Callback]],
    fit_metrics: Sequence[Mapping[str, float]],
) -> None:
    """Each variant's ``status.json`` after its group's preemption: ``preempted``, the record naming
    its own checkpoint, as its sequential run's would; a variant its guard had stopped,
    ``stopped`` with the reason and the metrics its fit ended with (its test would have come
    after the group's fit: the group continues without it)."""
    saved = stop.record.get("variant_checkpoints", {})
    shared = {
        key: value
        for key, value in stop.record.items()
        if key not in ("signal", "variant_checkpoints")
    }
    for k, status in enumerate(statuses):
        if k in saved:
            status.fail(Preempted(stop.signum, {**shared, "checkpoint": saved[k]}))
        else:
            reason = first_stop_reason(callbacks[k])
            status.update(status="stopped", stop_reason=reason, metrics=dict(fit_metrics[k]))


def continuation_blocker(preempted: Sequence[bool], run_dirs: Sequence[Path]) -> str | None:
    """Why a group some of whose variants were preempted (``preempted[k]``: variant ``k``'s run
    dir says so, and it continues from its checkpoint) cannot continue as a group, or None when
    it can or has nothing to continue.

    A group continues when every variant that was still training at the signal was preempted,
    all at the same step: the others had ended before it (stopped by their guard, or failed
    before training) and keep their records. Any other state (a variant completed, say, after
    ``resume=`` continued it on its own) leaves each job to continue alone."""
    if not any(preempted):
        return None
    steps = set()
    for was_preempted, run_dir in zip(preempted, run_dirs, strict=True):
        record = read_status(run_dir)
        if was_preempted:
            steps.add(record["preemptions"][-1]["step"])
        elif record.get("status") not in ENDED_BEFORE:
            state = record.get("status", "without a status.json")
            return f"{run_dir} is {state}, neither preempted nor ended before the preemption"
    if len(steps) > 1:
        return f"its variants were preempted at different steps ({sorted(steps)})"
    return None

"""What a preempted run leaves to its process: the :class:`Preempted` stop, and the hand-over of
the signal that caused it to whoever requeues the job (submitit, or SLURM through ``scontrol``).

Light to import (no torch, no Lightning): ``train.py`` catches the stop at its front door. The
training side, the callback that saves the checkpoint and raises the stop, is
``trainer.callbacks.preemption``.
"""

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

# SIGTERM: a spot instance's or a scheduler's notice, or `kill`; SIGUSR2: what submitit asks SLURM
# to send `signal_delay_s` before a job's time limit (conf/hydra/launcher/slurm.yaml)
DEFAULT_SIGNALS = ("SIGTERM", "SIGUSR2")


def signal_numbers(names: list[str] | tuple[str, ...]) -> list[signal.Signals]:
    """``["SIGTERM", "SIGUSR2"]`` as signals; an unknown name is one line that lists them.

    >>> [s.name for s in signal_numbers(["SIGTERM", "USR2"])]
    ['SIGTERM', 'SIGUSR2']
    """
    found = []
    for name in names:
        full = name if name.startswith("SIG") else f"SIG{name}"
        if full not in signal.Signals.__members__ or full in ("SIGKILL", "SIGSTOP"):
            raise ValueError(
                f"preemption: expected signal names such as SIGTERM or SIGUSR2 (SIGKILL and "
                f"SIGSTOP cannot be caught), got {name!r}"
            )
        found.append(signal.Signals[full])
    return found


class Preempted(Exception):
    """A run stopped for a preemption signal at a safe point, after saving its checkpoint
    (``checkpoint``; None when it had nothing new to save): ``record`` is what ``status.json``
    keeps of it."""

    def __init__(self, signum: int, record: dict[str, Any]) -> None:
        self.signum = signum
        self.record = {"signal": signal.Signals(signum).name, **record}
        where = f"step {record.get('step')}"
        saved = record.get("checkpoint")
        super().__init__(
            f"preempted by {self.record['signal']} at {where}"
            + (f": checkpoint {saved}" if saved else "")
        )


@contextmanager
def handlers_restored() -> Iterator[None]:
    """The process's signal handlers as they were before the body, whatever it installed: a run's
    preemption callback and Lightning each install their own, and a job that submitit launched
    needs submitit's back for :func:`hand_over` (and a sweep's next job, the defaults)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread handles signals: nothing is installed elsewhere
        return
    catchable = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
    before = {signum: signal.getsignal(signum) for signum in catchable}
    try:
        yield
    finally:
        for signum, handler in before.items():
            if handler is not None and signal.getsignal(signum) is not handler:
                signal.signal(signum, handler)


def slurm_job_id() -> str | None:
    """The SLURM job this process runs in (``ARRAYID_TASKID`` for an array task), None off
    SLURM."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None and "SLURM_ARRAY_TASK_ID" in os.environ:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def hand_over(stop: Preempted) -> None:
    """After the preempted run's records are written, its signal goes where it would have gone
    without the run: to the handler the process had before the run (in a job that submitit
    launched, submitit's, which requeues the job on its pre-limit signal and exits; the
    requeued job finds the run dir and resumes). A run that SLURM started directly (``sbatch``
    running ``train.py``) requeues itself on a signal other than SIGTERM, as submitit would: on
    SIGTERM, a preemption, SLURM requeues the job itself when the partition's ``PreemptMode`` is
    ``REQUEUE``. Returns when nothing requeued and exited the process."""
    handler = signal.getsignal(stop.signum)
    if callable(handler):
        handler(stop.signum, None)
        return
    job = slurm_job_id()
    if job is None or stop.signum == signal.SIGTERM:
        return
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if result.returncode == 0:
        log.info("requeued SLURM job %s: it resumes from the checkpoint", job)
    else:
        log.warning("scontrol requeue %s failed: %s", job, result.stderr.strip())

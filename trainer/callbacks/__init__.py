"""Callbacks every run uses: the non-finite guard (with gradient norm), the checkpoints, the
preemption checkpoint, the picture grid, the task's figures and PR curves, the embedding projector
and the throughput meter; one module each, the configs name them from here
(``conf/callbacks/default.yaml``).

The ones that look at a run's model, metrics, loggers or run dir derive from
:class:`~trainer.callbacks.variant.VariantCallback` and take a ``variant``: None in a sequential
run; in a lockstep run (``trainer.lockstep``) each variant gets its own instance, which sees only
that variant.
"""

from trainer.callbacks.checkpoint import Checkpoint, TaskCheckpoint
from trainer.callbacks.nonfinite import NonFiniteError, NonFiniteGuard
from trainer.callbacks.pictures import EmbeddingProjector, PictureGrid, TaskFigures
from trainer.callbacks.preemption import Preemption
from trainer.callbacks.throughput import Throughput
from trainer.callbacks.variant import Scope, VariantCallback

__all__ = [
    "Checkpoint",
    "EmbeddingProjector",
    "NonFiniteError",
    "NonFiniteGuard",
    "PictureGrid",
    "Preemption",
    "Scope",
    "TaskCheckpoint",
    "TaskFigures",
    "Throughput",
    "VariantCallback",
]

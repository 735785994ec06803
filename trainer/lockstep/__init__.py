"""Lockstep: train K loss variants in one process, one pass over the data, paired by construction.

A loss comparison is K runs that differ only in the loss. The lockstep launcher
(``hydra/launcher=lockstep``, ``hydra_plugins/losscmp/lockstep_launcher.py``) groups such jobs and
hands each group to :func:`train_lockstep`: one Trainer, one data pass, one validation and test
loop, with the K experiments (model + loss + metrics, each a :class:`LossExperiment`) side by
side in one :class:`LockstepExperiment`. Every batch goes through every variant's model in turn;
one backward pass through the sum of the K losses gives each model its own gradients (the
models share no parameter, and the sum's gradient with respect to each loss is exactly 1), and
one optimizer holds one parameter group per variant, so each variant's update is the update of
its sequential run.

How the variants are batched, by measurement on the 2-core CPU this project is developed on:
the K models run one after another inside each step rather than stacked into one batched model
(``torch.func.stack_module_state`` + ``vmap``, or grouped convolutions). Stacking 8 MLPs under
``vmap`` was no faster than the loop (about 5 ms per forward-backward step either way,
``scripts/bench_lockstep.py --stacking``), and at these model sizes the framework's per-step
and per-job work, not the arithmetic, is the cost. Running the models as they are also keeps
what stacking would have to rebuild: BatchNorm running statistics per variant (in-place
updates do not work under ``vmap``), every shipped model without a stacked twin, Lightning
moving real modules to the device. On a GPU, where one small model leaves the device idle,
stacking may pay; it is not implemented.

What stays the sequential run's, per variant:

- **Trajectory.** The same seed gives the same initial weights (each variant's model is built
  from the random state its sequential run has after seeding and building the data), the same
  batches (the samplers draw from their own seeded generators), and the same random numbers
  inside the step: every variant's forward pass and loss start from the same random state
  (``torch.random.fork_rng``), so dropout masks and random mining draws are paired across
  variants. AdamW's update is per parameter, so one optimizer with K groups steps each group
  as K optimizers would; the scheduler scales every group alike. ``tests/test_lockstep.py``
  checks weights and metrics against sequential runs on every task.
- **Files.** Each variant has its own run dir with ``.hydra/`` (written by Hydra's ``run_job``),
  ``status.json``, its own loggers (TensorBoard events with every scalar, picture and its
  HParams values, under the names a sequential run uses; the sweep writes the HParams columns
  when it ends, as for any multirun), ``nonfinite.json`` and checkpoints at
  the same cadence in the sequential layout, so ``resume=`` can continue a variant on its own.
- **Preemption.** The group's one preemption callback (``trainer/lockstep/preemption.py``)
  writes the group's checkpoint into the run dir of every variant that still trains
  (``checkpoints/last.ckpt``, each its part in the sequential layout), and each of those
  variants' ``status.json`` says ``preempted``, naming its own checkpoint; a variant its guard
  had stopped says ``stopped`` (its fit's metrics, no test). The same sweep run again with the
  same ``hydra.sweep.dir`` (a requeued job) continues the group: every variant that was still
  training must be preempted, at the same step; the group's checkpoint is put together from
  theirs (:func:`~trainer.lockstep.routing.group_checkpoint`) and restored by Lightning, and
  the variants that had ended keep their records. Otherwise each job continues alone, with one
  line saying why.
- **Non-finite values.** Each variant has its own guard: a skipped step drops only that
  variant's gradients (its parameter group is left out of the update, moments and step count
  included); a stopped variant is masked out of the rest of training while the others go on.
  Gradient clipping, when configured, is per variant.

Names: in the Trainer's logged values a variant's names carry its prefix (``variant3/val/dice``)
and its parameter group is named ``variant3`` (``lr-AdamW/variant3``); :class:`VariantLoggers`
strips them on the way to that variant's loggers, and :class:`VariantCheckpointIO` writes each
variant's part of a checkpoint under the sequential run's keys, and reads a group's back from
its variants' parts.
"""

from trainer.lockstep.run import Variant, lockstep_blocker, train_lockstep

__all__ = ["Variant", "lockstep_blocker", "train_lockstep"]

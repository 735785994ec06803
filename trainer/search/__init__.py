"""Hyperparameter searches on validation: spaces, stored studies run in batches, pruning, results.

``python train.py -m hparams_search=focal`` searches one loss (``conf/hparams_search/<loss>.yaml``)
and ``python train.py -m suite=NAME tune=true`` searches every variant of a suite with the same
number of trials, then retrains each winner (Musgrave et al. 2020, "A metric learning reality
check": compare losses at equal tuning budgets, hyperparameters chosen on validation only).

Why our own sweeper drives Optuna's ask-and-tell API rather than Hydra's ``hydra-optuna-sweeper``:
that plugin's last release (1.3.0) requires ``optuna<3.0.0``, from before Optuna's current
distributions, and it *replaces* the sweeper, so a tuned suite (a search per variant, then the
winners on the suite's seeds) could not be one command on top of the suite sweeper. With
ask-and-tell the suite sweeper (``hydra_plugins/losscmp/suite_sweeper.py``) runs every trial as an
ordinary job through whichever launcher is configured, and one mechanism serves both commands.

A trial is a run of ``train.py`` with ``skip_test=true`` (the test split never guides a search);
its objective is ``selection.value`` in its ``status.json``: the validation value of the ranking
metric of the checkpoint that would be tested, in the task's direction. A failed trial is told
to Optuna as failed and the search goes on.

The study lives in the sweep dir, in an Optuna journal file (``optuna_journal.log``, one study
per search, named after it: a tuned suite's variants share the file, so one
``optuna-dashboard <sweep dir>/optuna_journal.log`` shows them all). A journal is an append-only
log written under a lock file, which works on shared file systems: every trial's process, on any
machine, opens the study itself. That gives three things:

- batches: ``search.parallel=N`` asks N trials, launches them as one batch of the launcher
  (joblib, submitit and slurm run them at once), and tells them in trial-number order once all
  ended. Each trial's values are drawn by a sampler seeded from (``search.sampler_seed``, its
  number), so the same seed and N propose the same trials whatever order they end in;
- pruning by Optuna's own ``MedianPruner``: the trial's ``OptunaPruning`` callback
  (``pruning.py``) reports the validation metric after every epoch and stops the run when the
  study's pruner says so (``status.json``: stopped, ``pruned at epoch ...``). The pruner
  compares with COMPLETE trials only, and a batch is told only when all of it ended, so the
  trials of one batch never prune each other;
- resuming: the same command with the same ``hydra.sweep.dir`` loads the study; the trials that
  ended count, and a trial the killed search left running is told from its run dir if its
  ``status.json`` says it ended, and run again (same number, values and run dir) otherwise. The
  per-trial seeds make a resumed search propose what an uninterrupted one would have.
"""

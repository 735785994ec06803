"""Hyperparameter searches on validation: search spaces, trials, median pruning, results.

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
to Optuna as failed and the search goes on. Pruning follows Optuna's ``MedianPruner`` rule, but
across processes: the sweeper passes the per-epoch median of the completed trials' validation
curves into each new trial's config, and :class:`MedianStop` ends a trial that is worse than that
median after the warm-up epochs; the sweeper then tells Optuna the trial was pruned, with the
intermediate values its curve file holds.
"""

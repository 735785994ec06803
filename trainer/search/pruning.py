"""In a trial: the callback that reports each validation epoch to the search's stored study and
stops the fit when the study's pruner says so."""

from pathlib import Path

import lightning as L

from trainer.search.study import open_trial


class OptunaPruning(L.Callback):
    """Trial ``trial_number`` of the study ``study_name`` in the journal file ``journal``: after
    every validation epoch, report the task's validation metric (``val/<monitor>``) with the epoch
    as its step, and end the fit when the study's pruner
    (:func:`~trainer.search.study.median_pruner`) prunes the trial. ``stop_reason`` (``pruned at
    epoch ...``) makes the run's status ``stopped``, which the sweeper tells Optuna as pruned."""

    def __init__(self, journal: str, study_name: str, trial_number: int) -> None:
        self.journal = Path(journal)
        self.study_name = study_name
        self.trial_number = trial_number
        self.stop_reason: str | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.trial = open_trial(self.journal, self.study_name, self.trial_number)
        task = pl_module.task
        direction = "maximize" if task.mode == "max" else "minimize"
        if self.trial.study.direction.name.lower() != direction:
            raise ValueError(
                f"trial {self.trial_number} of {self.study_name}: the study does not "
                f"{direction} val/{task.monitor}, which the task does"
            )
        # a relaunched trial (its search was stopped) reported these epochs already: Optuna keeps
        # the first report of a step
        stored = self.trial.study.trials[self.trial_number]
        self.reported = set(stored.intermediate_values)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the module's on_validation_epoch_end, which logs the epoch's metrics
        if trainer.sanity_checking:
            return
        metric = f"val/{pl_module.task.monitor}"
        value = float(trainer.callback_metrics[metric])
        epoch = trainer.current_epoch
        if epoch not in self.reported:
            self.trial.report(value, epoch)
            self.reported.add(epoch)
        if self.trial.should_prune():
            self.stop_reason = (
                f"pruned at epoch {epoch}: {metric} {value:.4g}; its best so far is worse than "
                "the completed trials' median at this epoch (Optuna's MedianPruner)"
            )
            trainer.should_stop = True

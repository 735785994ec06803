"""The Hydra callback that writes the sweep's records when a multirun ends: TensorBoard's HParams
experiment and the comparison report, into the sweep dir."""

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class CompareOnMultirunEnd(Callback):
    """Hydra callback: when a multirun ends, write into the sweep dir TensorBoard's one HParams
    experiment for all its runs (``trainer.hparams_experiment``), then the comparison report and
    the per-variant TensorBoard seed means (``suite.select`` and ``suite.baseline`` honoured)."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if config.hydra.sweeper.get("dry_run"):  # the suite sweeper's setting: nothing ran
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        # TensorBoard (no Lightning), scipy and matplotlib load here, not when Hydra builds the
        # callback: a dry run or a command-line mistake answers without them
        from trainer.hparams_experiment import write_sweep_experiment

        try:  # a search's trials too: they are TensorBoard runs of the sweep
            runs = write_sweep_experiment(sweep_dir)
            log.info("TensorBoard HParams experiment of %d runs in %s", runs, sweep_dir)
        except Exception as error:  # the runs' own records are on disk: the report still runs
            log.error("TensorBoard HParams experiment failed: %s", error)
        if config.get("hparams_search"):  # untested trials: optimization_results.yaml says it
            return
        from trainer.analysis.report import write_report

        try:
            report = write_report(sweep_dir, tensorboard_view=True)
            log.info("comparison report: %s", report.summary)
        except Exception as error:  # the runs' own results are already on disk: keep them
            log.error("comparison report failed: %s", error)
